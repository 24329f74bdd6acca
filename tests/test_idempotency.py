"""IdempotentSender over both stores (one contract), and the Redis store across processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Connection, Redis

from gocomm import Email, Receipt
from gocomm.errors import (
    CommError,
    ConfigError,
    DuplicateInFlight,
    IdempotencyConflict,
    SendError,
    is_retryable,
)
from gocomm.idempotency import (
    IdempotencyStore,
    IdempotentSender,
    MemoryIdempotencyStore,
    RedisIdempotencyStore,
    idempotency_key,
    use_key,
)
from gocomm.payload import fingerprint
from gocomm.testing import MemorySender, ScriptedSender

PARAMS = {"code": "1234"}


class Gate:
    """A sender that waits for ``open`` before it sends, so a send can be held in flight."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.open = asyncio.Event()
        self.sent: list[tuple[str, ...]] = []

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        self.entered.set()
        await self.open.wait()
        self.sent.append(to)
        return Receipt(vendor="gate", message_ids=(f"gate-{len(self.sent)}",))


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[IdempotencyStore]:
    if request.param == "memory":
        yield MemoryIdempotencyStore()
        return
    redis = Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        await redis.flushdb()
        yield RedisIdempotencyStore(redis)
    finally:
        await redis.aclose()


async def test_without_a_key_every_send_goes_through(store: IdempotencyStore) -> None:
    inner = MemorySender()
    sender = IdempotentSender(inner, store)
    await sender.send("login", PARAMS, "+8613800000000")
    await sender.send("login", PARAMS, "+8613800000000")
    assert len(inner.sent) == 2


async def test_a_repeated_send_under_one_key_is_replayed(store: IdempotencyStore) -> None:
    inner = MemorySender()
    sender = IdempotentSender(inner, store)
    with use_key("order-42"):
        first = await sender.send("login", PARAMS, "+8613800000000")
        second = await sender.send("login", dict(reversed(PARAMS.items())), "+8613800000000")
    assert len(inner.sent) == 1
    assert first is not None and not first.replayed
    assert second == Receipt(vendor="memory", message_ids=first.message_ids, replayed=True)
    assert idempotency_key.get() is None  # use_key restored the context


async def test_the_key_function_wins_over_the_context(store: IdempotencyStore) -> None:
    inner = MemorySender()
    sender = IdempotentSender(inner, store, key=lambda biz, args, to: f"{biz}:{args['code']}")
    with use_key("ignored"):
        await sender.send("login", PARAMS, "+8613800000000")
    await sender.send("login", PARAMS, "+8613800000000")
    await sender.send("login", {"code": "9"}, "+8613800000000")
    assert [m.args["code"] for m in inner.sent] == ["1234", "9"]


async def test_email_with_attachments_is_recognised(store: IdempotencyStore) -> None:
    from gocomm.messages import Attachment

    inner = MemorySender()
    sender: IdempotentSender[Email] = IdempotentSender(inner, store)
    mail = Email(subject="hi", text="x", attachments=(Attachment("a.bin", b"\x00\x01"),))
    with use_key("mail-1"):
        await sender.send("", mail, "a@example.com")
        again = await sender.send("", mail, "a@example.com")
        changed = Email(subject="hi", text="x", attachments=(Attachment("a.bin", b"\x00"),))
        with pytest.raises(IdempotencyConflict):
            await sender.send("", changed, "a@example.com")
    assert again is not None and again.replayed and len(inner.sent) == 1


async def test_a_key_reused_for_another_message_is_a_conflict(store: IdempotencyStore) -> None:
    inner = MemorySender()
    sender = IdempotentSender(inner, store)
    with use_key("order-42"):
        await sender.send("login", PARAMS, "+8613800000000")
        with pytest.raises(IdempotencyConflict, match="order-42") as caught:
            await sender.send("login", {"code": "0000"}, "+8613800000000")
        with pytest.raises(IdempotencyConflict):
            await sender.send("reset", PARAMS, "+8613800000000")
    assert isinstance(caught.value, ConfigError) and not is_retryable(caught.value)
    assert len(inner.sent) == 1


async def test_a_send_in_flight_holds_the_key(store: IdempotencyStore) -> None:
    gate = Gate()
    sender = IdempotentSender(gate, store, lease=30.0)
    with use_key("k"):
        first = asyncio.create_task(sender.send("login", PARAMS, "+8613800000000"))
        await gate.entered.wait()
        with pytest.raises(DuplicateInFlight) as caught:
            await sender.send("login", PARAMS, "+8613800000000")
        gate.open.set()
        sent = await first
        replay = await sender.send("login", PARAMS, "+8613800000000")
    assert is_retryable(caught.value) and isinstance(caught.value, CommError)
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 30.0
    assert gate.sent == [("+8613800000000",)]
    assert replay is not None and replay.replayed and replay.message_ids == sent.message_ids


async def test_a_partial_send_is_retried_only_to_those_still_owed(
    store: IdempotencyStore,
) -> None:
    partial = SendError("b failed", vendor="scripted", unsent=["+8613800000002"])
    inner = ScriptedSender([partial])
    sender = IdempotentSender(inner, store)
    to = ("+8613800000001", "+8613800000002")
    with use_key("k"):
        with pytest.raises(SendError):
            await sender.send("login", PARAMS, *to)
        retry = await sender.send("login", PARAMS, *to)
        replay = await sender.send("login", PARAMS, *to)
    assert [c.to for c in inner.calls] == [to, ("+8613800000002",)]
    assert retry is not None and not retry.replayed
    assert replay is not None and replay.replayed and "scripted-2" in replay.message_ids


async def test_a_failed_send_releases_every_recipient(store: IdempotencyStore) -> None:
    inner = ScriptedSender([SendError("down", vendor="scripted")])
    sender = IdempotentSender(inner, store)
    with use_key("k"):
        with pytest.raises(SendError):
            await sender.send("login", PARAMS, "+8613800000001", "+8613800000002")
        await sender.send("login", PARAMS, "+8613800000001", "+8613800000002")
    assert len(inner.calls) == 2 and inner.calls[0].to == inner.calls[1].to


async def test_a_retry_after_some_were_sent_reports_only_the_owed_as_unsent(
    store: IdempotencyStore,
) -> None:
    inner = ScriptedSender([None, SendError("down", vendor="scripted")])
    sender = IdempotentSender(inner, store)
    with use_key("k"):
        await sender.send("login", PARAMS, "+8613800000001")
        with pytest.raises(SendError) as caught:
            await sender.send("login", PARAMS, "+8613800000001", "+8613800000002")
    assert caught.value.unsent == ("+8613800000002",)
    assert inner.calls[1].to == ("+8613800000002",)


async def test_a_cancelled_send_releases_its_hold(store: IdempotencyStore) -> None:
    gate = Gate()
    sender = IdempotentSender(gate, store)
    with use_key("k"):
        first = asyncio.create_task(sender.send("login", PARAMS, "+8613800000000"))
        await gate.entered.wait()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await sender.aclose()  # waits for the release
        gate.open.set()
        receipt = await IdempotentSender(gate, store).send("login", PARAMS, "+8613800000000")
    assert receipt is not None and not receipt.replayed


async def test_a_dead_holder_releases_the_key_when_its_lease_ends(
    store: IdempotencyStore,
) -> None:
    from gocomm.payload import fingerprint

    # A holder that claimed and then died: nobody renews or settles its claim.
    claim = await store.claim("k", fingerprint("login", PARAMS), ["+1"], "dead", 0.2, 60.0)
    assert claim.status == "ok"
    inner = MemorySender()
    sender = IdempotentSender(inner, store, lease=5.0)
    with use_key("k"):
        with pytest.raises(DuplicateInFlight):
            await sender.send("login", PARAMS, "+1")
        await asyncio.sleep(0.5)  # generous: the lease is 0.2 s
        await sender.send("login", PARAMS, "+1")
    assert len(inner.sent) == 1


async def test_a_slow_send_renews_its_lease(store: IdempotencyStore) -> None:
    inner = ScriptedSender([0.8])
    sender = IdempotentSender(inner, store, lease=0.3)
    with use_key("k"):
        slow = asyncio.create_task(sender.send("login", PARAMS, "+1"))
        await asyncio.sleep(0.5)  # past the first lease: only renewal keeps the hold
        with pytest.raises(DuplicateInFlight):
            await sender.send("login", PARAMS, "+1")
        await slow
    assert len(inner.calls) == 1


async def test_sends_in_flight_together_each_keep_their_hold(store: IdempotencyStore) -> None:
    # One renewal task serves every send in flight: a send that starts after it began is
    # renewed too, and one still running after another ended keeps being renewed.
    inner = ScriptedSender([0.9, 0.5])
    sender = IdempotentSender(inner, store, lease=0.3)
    with use_key("a"):
        first = asyncio.create_task(sender.send("login", PARAMS, "+1"))
    await asyncio.sleep(0.15)
    with use_key("b"):
        second = asyncio.create_task(sender.send("login", PARAMS, "+2"))
    await asyncio.sleep(0.4)  # past the second's first lease
    with use_key("b"), pytest.raises(DuplicateInFlight):
        await sender.send("login", PARAMS, "+2")
    await second
    await asyncio.sleep(0.2)  # the first outlived two leases and the second send
    with use_key("a"), pytest.raises(DuplicateInFlight):
        await sender.send("login", PARAMS, "+1")
    await first
    await sender.aclose()
    assert len(inner.calls) == 2


async def test_then_follows_a_recorded_success_and_never_a_failure(
    store: IdempotencyStore,
) -> None:
    # `then` is a queue worker's acknowledgement: a rival claim made inside it must already
    # see the recipient sent (the record came first, on Redis in the same round trip).
    seen: list[tuple[str, tuple[str, ...]]] = []

    async def then() -> None:
        rival = await store.claim("k", fingerprint("login", PARAMS), ["+1"], "rival", 5.0, 60.0)
        seen.append((rival.status, tuple(rival.done)))

    inner = ScriptedSender([SendError("down", vendor="scripted")])
    sender = IdempotentSender(inner, store)
    with use_key("k"):
        with pytest.raises(SendError):
            await sender.send("login", PARAMS, "+1", then=then)
        assert seen == []  # a failure is the caller's to handle (re-enqueue, dead letter)
        await sender.send("login", PARAMS, "+1", then=then)
        replay = await sender.send("login", PARAMS, "+1", then=then)
    await sender.send("login", PARAMS, "+1", then=then)  # no key: passes through, then `then`
    assert replay is not None and replay.replayed and len(inner.calls) == 3
    assert seen == [("ok", ("+1",))] * 3


async def test_bad_lease_and_ttl_are_refused() -> None:
    with pytest.raises(ValueError, match="lease"):
        IdempotentSender(MemorySender(), MemoryIdempotencyStore(), lease=10, ttl=5)


async def test_memory_store_forgets_keys_after_their_ttl() -> None:
    now = [0.0]
    store = MemoryIdempotencyStore(clock=lambda: now[0])
    inner = MemorySender()
    sender = IdempotentSender(inner, store, ttl=10.0, lease=1.0)
    for i in range(100):
        with use_key(f"k{i}"):
            await sender.send("login", PARAMS, "+1")
    now[0] = 11.0
    with use_key("k0"):
        await sender.send("login", PARAMS, "+1")
    assert len(store) == 1 and len(inner.sent) == 101


async def test_every_redis_key_has_a_ttl(redis_client: Redis) -> None:
    sender = IdempotentSender(MemorySender(), RedisIdempotencyStore(redis_client), ttl=100.0)
    with use_key("k"):
        await sender.send("login", PARAMS, "+1", "+2")
        await sender.send("login", PARAMS, "+1", "+3")
    keys = await redis_client.keys("gocomm:idem:*")
    assert keys == [b"gocomm:idem:k"]
    assert 0 < await redis_client.pttl(keys[0]) <= 100_000


async def test_redis_store_recovers_from_a_flushed_script_cache(redis_client: Redis) -> None:
    inner = MemorySender()
    sender = IdempotentSender(inner, RedisIdempotencyStore(redis_client))
    with use_key("k"):
        await sender.send("login", PARAMS, "+1")
        await redis_client.script_flush()
        again = await sender.send("login", PARAMS, "+1")
    assert again is not None and again.replayed and len(inner.sent) == 1


@pytest.fixture
async def recorded(redis_url: str) -> AsyncIterator[tuple[Redis, list[list[str]]]]:
    """A client on real connections that note, for each pipeline sent (one round trip), the
    key of each script call in it (or "SCRIPT LOAD")."""
    pipelines: list[list[str]] = []

    class Recording(Connection):
        def pack_commands(self, commands: Any) -> Any:
            pipelines.append(
                [str(c[3]) if c[0] == "EVALSHA" else f"{c[0]} {c[1]}" for c in commands]
            )
            return super().pack_commands(commands)

    client = Redis.from_url(redis_url, connection_class=Recording)
    try:
        await client.flushdb()
        yield client, pipelines
    finally:
        await client.aclose()


async def test_concurrent_decisions_share_round_trips(
    recorded: tuple[Redis, list[list[str]]],
) -> None:
    client, pipelines = recorded
    inner = MemorySender()
    sender = IdempotentSender(inner, RedisIdempotencyStore(client))

    async def one(key: str, to: str) -> Receipt | None:
        with use_key(key):
            return await sender.send("login", PARAMS, to)

    await one("warm-up", "+1")  # the scripts loaded: no SCRIPT LOAD round trip below
    pipelines.clear()
    # 50 keys: 50 claims and 50 settles, made together.
    first = await asyncio.gather(*(one(f"k{i}", f"+86138{i:08d}") for i in range(50)))
    decisions = [key for p in pipelines for key in p if key.startswith("gocomm:idem:")]
    assert len(decisions) == 100 and len(pipelines) <= 10
    assert len(inner.sent) == 51 and not any(r is None or r.replayed for r in first)
    # One key wanted by 50 sends at once: one claim wins inside the shared round trip.
    pipelines.clear()
    outcomes = await asyncio.gather(
        *(one("same", "+8613800000000") for _ in range(50)), return_exceptions=True
    )
    assert len(inner.sent) == 52 and len(pipelines) <= 10
    assert sum(isinstance(o, DuplicateInFlight) for o in outcomes) == 49
    replay = await one("same", "+8613800000000")
    assert replay is not None and replay.replayed


async def test_a_script_call_made_by_then_rides_with_the_record(
    recorded: tuple[Redis, list[list[str]]],
) -> None:
    client, pipelines = recorded
    store = RedisIdempotencyStore(client)
    digest = fingerprint("login", PARAMS)
    claim = await store.claim("k", digest, ["+1"], "mine", 5.0, 60.0)
    assert claim.claimed == ("+1",)
    pipelines.clear()
    rivals: list[Any] = []

    async def then() -> None:  # the stream broker's acknowledgement is such a script call
        rivals.append(await store.claim("k", digest, ["+1"], "rival", 5.0, 60.0))

    await store.settle("k", "mine", ["+1"], '{"vendor": "v"}', [], 60.0, then)
    assert pipelines == [["gocomm:idem:k", "gocomm:idem:k"]]  # one round trip, record first
    assert rivals[0].status == "ok" and rivals[0].done == {"+1": '{"vendor": "v"}'}


async def test_an_unreachable_redis_is_a_retryable_error() -> None:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    client = Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    try:
        sender = IdempotentSender(MemorySender(), RedisIdempotencyStore(client))
        with use_key("k"), pytest.raises(CommError, match="idempotency store") as caught:
            await sender.send("login", PARAMS, "+1")
        assert is_retryable(caught.value)
    finally:
        await client.aclose()


async def test_a_record_that_failed_is_reported_even_when_then_fails_too() -> None:
    # The record's failure is what a retry of the settle must fix: it wins over then's own.
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    client = Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))

    async def acknowledge() -> None:
        raise RuntimeError("the acknowledgement failed")

    try:
        store = RedisIdempotencyStore(client, timeout=1.0)
        with pytest.raises(CommError, match="idempotency store") as caught:
            await store.settle("k", "mine", ["+1"], '{"vendor": "v"}', [], 60.0, acknowledge)
        assert isinstance(caught.value.__context__, RuntimeError)
    finally:
        await client.aclose()


_PROCESS = textwrap.dedent(
    """
    import asyncio, json, sys
    from redis.asyncio import Redis
    from gocomm.errors import DuplicateInFlight
    from gocomm.idempotency import IdempotentSender, RedisIdempotencyStore, use_key
    from gocomm.sender import Receipt

    class Counting:
        def __init__(self, redis):
            self.redis = redis
        async def send(self, biz, args, *to):
            await self.redis.incr("test:vendor-calls")
            await asyncio.sleep(0.05)
            return Receipt(vendor="counting", message_ids=("m-1",))

    async def main():
        redis = Redis.from_url(sys.argv[1], max_connections=64)
        sender = IdempotentSender(Counting(redis), RedisIdempotencyStore(redis))
        while not await redis.exists("test:go"):
            await asyncio.sleep(0.005)
        async def one():
            with use_key("same-key"):
                try:
                    receipt = await sender.send("login", {"code": "1"}, "+8613800000000")
                except DuplicateInFlight:
                    return "in-flight"
                return "replayed" if receipt.replayed else "sent"
        results = await asyncio.gather(*(one() for _ in range(50)))
        print(json.dumps(results))
        await redis.aclose()

    asyncio.run(main())
    """
)


async def test_200_concurrent_sends_in_4_processes_send_once(
    redis_client: Redis, redis_url: str
) -> None:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _PROCESS, redis_url, stdout=subprocess.PIPE
        )
        for _ in range(4)
    ]
    await asyncio.sleep(0.5)  # let them import and connect; the start flag is the barrier
    await redis_client.set("test:go", 1)
    outputs = [await p.communicate() for p in processes]
    results = [r for out, _ in outputs for r in json.loads(out)]
    assert len(results) == 200 and all(p.returncode == 0 for p in processes)
    assert results.count("sent") == 1
    assert set(results) <= {"sent", "in-flight", "replayed"}
    assert int(await redis_client.get("test:vendor-calls") or 0) == 1
