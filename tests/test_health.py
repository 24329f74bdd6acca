"""Circuit breakers: one contract for the in-memory and the Redis breaker, then BreakerSender.

The contract runs the memory breaker on a fake clock and the Redis breaker on the server's real
clock with short periods (0.4 s open, a 1 s window) and margins of 0.15 s or more on each side
of every boundary. The multi-process proofs are in ``tests/test_health_processes.py``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import pytest
from redis.asyncio import Redis

from gocomm.errors import (
    CircuitOpen,
    ConfigError,
    InvalidRecipient,
    Limited,
    LimiterError,
    PermanentError,
    SendError,
    SendTimeout,
    is_retryable,
)
from gocomm.health import (
    BreakerSender,
    CircuitBreaker,
    MemoryCircuitBreaker,
    RedisCircuitBreaker,
    is_health_failure,
)
from gocomm.ratelimit.base import Decision
from gocomm.testing import ScriptedSender

BACKENDS = ["memory", "redis"]

OPEN_FOR = 0.4
WINDOW = 1.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend(Protocol):
    def make(self, **params: Any) -> CircuitBreaker: ...

    async def wait(self, seconds: float) -> None: ...

    async def settle(self, breaker: CircuitBreaker) -> None: ...


class MemoryBackend:
    def __init__(self) -> None:
        self.clock = FakeClock()

    def make(self, **params: Any) -> CircuitBreaker:
        return MemoryCircuitBreaker(clock=self.clock, **params)

    async def wait(self, seconds: float) -> None:
        self.clock.now += seconds

    async def settle(self, breaker: CircuitBreaker) -> None:
        return None


class RedisBackend:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def make(self, **params: Any) -> CircuitBreaker:
        return RedisCircuitBreaker(self.redis, **params)

    async def wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def settle(self, breaker: CircuitBreaker) -> None:
        assert isinstance(breaker, RedisCircuitBreaker)
        await breaker.flush()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "memory":
        return MemoryBackend()
    return RedisBackend(request.getfixturevalue("redis_client"))


def params(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "failure_ratio": 0.5,
        "minimum_calls": 4,
        "window": WINDOW,
        "open_for": OPEN_FOR,
        "half_open_calls": 1,
    }
    base.update(overrides)
    return base


async def outcomes(backend: Backend, breaker: CircuitBreaker, name: str, *oks: bool) -> None:
    for ok in oks:
        await breaker.record(name, ok)
    await backend.settle(breaker)


async def open_circuit(backend: Backend, breaker: CircuitBreaker, name: str = "v") -> None:
    await outcomes(backend, breaker, name, False, False, False, False)
    assert (await breaker.allow(name)).limited


# ---------------------------------------------------------------------------------- contract


async def test_a_new_circuit_is_closed(backend: Backend) -> None:
    breaker = backend.make(**params())
    assert isinstance(breaker, CircuitBreaker)
    decision = await breaker.allow("v")
    assert decision == Decision(False) or not decision.limited
    assert not decision.limited


async def test_fewer_calls_than_minimum_never_open(backend: Backend) -> None:
    breaker = backend.make(**params())
    await outcomes(backend, breaker, "v", False, False, False)  # 3 of 3 failed, minimum 4
    assert not (await breaker.allow("v")).limited


async def test_opens_when_the_ratio_is_reached_over_minimum_calls(backend: Backend) -> None:
    breaker = backend.make(**params())
    await outcomes(backend, breaker, "v", True, True, False)
    assert not (await breaker.allow("v")).limited
    await outcomes(backend, breaker, "v", False)  # 2 of 4: ratio 0.5 reached
    decision = await breaker.allow("v")
    assert decision.limited
    assert decision.retry_after is not None
    assert OPEN_FOR - 0.15 < decision.retry_after <= OPEN_FOR


async def test_a_ratio_below_the_threshold_stays_closed(backend: Backend) -> None:
    breaker = backend.make(**params())
    await outcomes(backend, breaker, "v", True, True, True, False, True, True, False)
    assert not (await breaker.allow("v")).limited


async def test_circuits_are_separate_by_name(backend: Backend) -> None:
    breaker = backend.make(**params())
    await open_circuit(backend, breaker, "down")
    assert not (await breaker.allow("up")).limited


async def test_outcomes_leave_the_window(backend: Backend) -> None:
    breaker = backend.make(**params())
    await outcomes(backend, breaker, "v", False, False, False)
    await backend.wait(WINDOW + 0.3)  # those three are out of the window now
    await outcomes(backend, breaker, "v", False)
    assert not (await breaker.allow("v")).limited


async def test_half_open_admits_probes_then_refuses(backend: Backend) -> None:
    breaker = backend.make(**params(half_open_calls=2))
    await open_circuit(backend, breaker)
    await backend.wait(OPEN_FOR + 0.15)
    first, second, third = [await breaker.allow("v") for _ in range(3)]
    assert getattr(first, "probe", None) is True and not first.limited
    assert getattr(second, "probe", None) is True and not second.limited
    assert third.limited
    assert third.retry_after is not None and 0 < third.retry_after <= OPEN_FOR


async def test_a_probe_success_closes_with_a_fresh_window(backend: Backend) -> None:
    breaker = backend.make(**params())
    await open_circuit(backend, breaker)
    await backend.wait(OPEN_FOR + 0.15)
    assert not (await breaker.allow("v")).limited
    await outcomes(backend, breaker, "v", True)
    decision = await breaker.allow("v")
    assert not decision.limited and not getattr(decision, "probe", False)
    await outcomes(backend, breaker, "v", False)  # the failures before opening are forgotten
    assert not (await breaker.allow("v")).limited


async def test_a_probe_failure_opens_again_for_a_whole_period(backend: Backend) -> None:
    breaker = backend.make(**params())
    await open_circuit(backend, breaker)
    await backend.wait(OPEN_FOR + 0.15)
    assert not (await breaker.allow("v")).limited
    await outcomes(backend, breaker, "v", False)
    decision = await breaker.allow("v")
    assert decision.limited
    assert decision.retry_after is not None and decision.retry_after > OPEN_FOR - 0.15


async def test_outcomes_while_open_change_nothing(backend: Backend) -> None:
    breaker = backend.make(**params())
    await open_circuit(backend, breaker)
    await outcomes(backend, breaker, "v", True, True)  # late answers of calls admitted before
    assert (await breaker.allow("v")).limited


async def test_a_probe_that_never_reports_frees_its_slot_after_open_for(backend: Backend) -> None:
    breaker = backend.make(**params())
    await open_circuit(backend, breaker)
    await backend.wait(OPEN_FOR + 0.15)
    assert not (await breaker.allow("v")).limited  # this probe's caller vanishes
    assert (await breaker.allow("v")).limited
    await backend.wait(OPEN_FOR + 0.15)
    assert not (await breaker.allow("v")).limited


async def test_a_released_probe_slot_is_taken_again(backend: Backend) -> None:
    breaker = backend.make(**params())
    await open_circuit(backend, breaker)
    await backend.wait(OPEN_FOR + 0.15)
    assert not (await breaker.allow("v")).limited
    await breaker.release("v")  # type: ignore[attr-defined]
    await backend.settle(breaker)
    assert not (await breaker.allow("v")).limited


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failure_ratio", 0),
        ("failure_ratio", 1.5),
        ("minimum_calls", 0),
        ("window", -1),
        ("open_for", 0),
        ("half_open_calls", 0),
    ],
)
async def test_bad_parameters_are_config_errors_naming_them(
    backend: Backend, field: str, value: object
) -> None:
    with pytest.raises(ConfigError, match=field):
        backend.make(**params(**{field: value}))


# ------------------------------------------------------------------- memory: exact boundaries


def test_memory_boundaries_on_a_fake_clock() -> None:
    clock = FakeClock()
    breaker = MemoryCircuitBreaker(
        failure_ratio=0.5, minimum_calls=2, window=10, open_for=5, clock=clock
    )
    breaker.record_now("v", False)
    breaker.record_now("v", False)
    assert breaker.allow_now("v").retry_after == 5
    clock.now += 4.999
    assert breaker.allow_now("v").limited
    clock.now += 0.001
    assert breaker.allow_now("v").probe


async def test_redis_keys_carry_a_ttl(redis_client: Redis) -> None:
    breaker = RedisCircuitBreaker(redis_client, **params())
    await breaker.record("v", True)
    await breaker.flush()
    ttl = await redis_client.pttl(breaker.redis_key("v"))
    assert 0 < ttl <= 2 * OPEN_FOR * 1000 + WINDOW * 1000 + 1000
    await open_circuit(RedisBackend(redis_client), breaker)
    assert await redis_client.pttl(breaker.redis_key("v")) > 0


async def test_redis_breaker_recovers_from_a_script_flush(redis_client: Redis) -> None:
    breaker = RedisCircuitBreaker(redis_client, **params())
    await open_circuit(RedisBackend(redis_client), breaker)
    await redis_client.script_flush()
    assert (await breaker.allow("v")).limited


async def test_redis_breakers_share_a_circuit(redis_client: Redis, redis_url: str) -> None:
    other_client = Redis.from_url(redis_url)
    try:
        one = RedisCircuitBreaker(redis_client, **params())
        two = RedisCircuitBreaker(other_client, **params())
        await open_circuit(RedisBackend(redis_client), one)
        assert (await two.allow("v")).limited
    finally:
        await other_client.aclose()


# ------------------------------------------------------------------------------ BreakerSender


def test_circuit_open_is_a_retryable_send_error() -> None:
    error = CircuitOpen("open", vendor="v", retry_after=3.0, unsent=("+1",))
    assert isinstance(error, SendError)
    assert is_retryable(error)
    assert error.retry_after == 3.0


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (TimeoutError(), True),
        (SendTimeout("slow"), True),
        (ConnectionResetError(), True),
        (SendError("HTTP 503"), True),
        (PermanentError("bad credentials"), False),
        (InvalidRecipient("bad number"), False),
        (Limited("k"), False),
        (LimiterError("redis down"), False),
        (CircuitOpen("open"), False),
        (KeyError("a bug"), False),
    ],
)
def test_only_health_evidence_counts(error: Exception, counts: bool) -> None:
    assert is_health_failure(error) is counts


async def test_breaker_sender_refuses_without_calling_the_vendor(backend: Backend) -> None:
    breaker = backend.make(**params())
    vendor = ScriptedSender([SendTimeout("slow")] * 4, name="acme")
    sender = BreakerSender(vendor, breaker)
    for _ in range(4):
        with pytest.raises(SendTimeout):
            await sender.send("login", {}, "+15550000001")
    await backend.settle(breaker)
    with pytest.raises(CircuitOpen) as caught:
        await sender.send("login", {}, "+15550000001", "+15550000002")
    assert len(vendor.calls) == 4
    assert caught.value.unsent == ("+15550000001", "+15550000002")
    assert caught.value.vendor == "acme"
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= OPEN_FOR
    assert "acme" in str(caught.value)


@pytest.mark.parametrize(
    "error",
    [PermanentError("template rejected"), InvalidRecipient("bad"), Limited("k")],
)
async def test_permanent_errors_and_limits_never_open(backend: Backend, error: Exception) -> None:
    breaker = backend.make(**params())
    sender = BreakerSender(ScriptedSender([error] * 10, name="acme"), breaker)
    for _ in range(10):
        with pytest.raises(type(error)):
            await sender.send("login", {}, "+15550000001")
    await backend.settle(breaker)
    assert not (await breaker.allow("acme")).limited


async def test_cancellation_counts_nothing_and_frees_the_probe(backend: Backend) -> None:
    breaker = backend.make(**params())
    await open_circuit(backend, breaker, "acme")
    await backend.wait(OPEN_FOR + 0.15)
    sender = BreakerSender(ScriptedSender([60.0], name="acme"), breaker)
    task = asyncio.create_task(sender.send("login", {}, "+15550000001"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await backend.settle(breaker)
    assert not (await breaker.allow("acme")).limited  # the slot is free for the next probe


async def test_a_probe_with_a_permanent_error_frees_its_slot(backend: Backend) -> None:
    breaker = backend.make(**params())
    await open_circuit(backend, breaker, "acme")
    await backend.wait(OPEN_FOR + 0.15)
    sender = BreakerSender(ScriptedSender([PermanentError("bad template")], name="acme"), breaker)
    with pytest.raises(PermanentError):
        await sender.send("login", {}, "+15550000001")
    await backend.settle(breaker)
    receipt = await sender.send("login", {}, "+15550000001")  # the next probe, and it closes
    assert receipt is not None
    await backend.settle(breaker)
    decision = await breaker.allow("acme")
    assert not decision.limited and not getattr(decision, "probe", False)


async def test_a_breaker_that_fails_lets_the_send_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        async def allow(self, name: str) -> Decision:
            raise LimiterError("Redis unreachable")

        async def record(self, name: str, ok: bool) -> None:
            raise LimiterError("Redis unreachable")

    vendor = ScriptedSender(name="acme")
    with caplog.at_level(logging.WARNING, logger="gocomm.health"):
        receipt = await BreakerSender(vendor, Broken()).send("login", {}, "+15550000001")
    assert receipt is not None and len(vendor.sent) == 1
    assert "calling the vendor anyway" in caplog.text


async def test_redis_breaker_on_an_unreachable_server_fails_open() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        breaker = RedisCircuitBreaker(client, **params(), timeout=0.5)
        vendor = ScriptedSender(name="acme")
        assert await BreakerSender(vendor, breaker).send("login", {}, "+15550000001")
        await breaker.aclose()  # the outcome cannot reach Redis either: logged, not raised
    finally:
        await client.aclose()


async def test_breaker_sender_closes_its_vendor_not_the_breaker() -> None:
    vendor = ScriptedSender(name="acme")
    sender = BreakerSender(vendor, MemoryCircuitBreaker())
    async with sender:
        pass
    assert vendor.closed
    assert sender.name == "acme"


def test_breaker_sender_checks_what_it_is_given() -> None:
    with pytest.raises(ConfigError, match="CircuitBreaker"):
        BreakerSender(ScriptedSender(), object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="send"):
        BreakerSender(object(), MemoryCircuitBreaker())  # type: ignore[arg-type]


def test_circuit_open_is_re_exported() -> None:
    import gocomm
    import gocomm.health

    assert gocomm.health.CircuitOpen is CircuitOpen is gocomm.CircuitOpen


async def test_concurrent_asks_in_half_open_admit_only_the_probes(backend: Backend) -> None:
    breaker = backend.make(**params(half_open_calls=2))
    await open_circuit(backend, breaker)
    await backend.wait(OPEN_FOR + 0.15)
    decisions = await asyncio.gather(*(breaker.allow("v") for _ in range(20)))
    # The Redis breaker answers the sends asking while its decision is on the way from that
    # decision's predecessor (open): fewer probes at once, never more.
    assert 1 <= sum(not d.limited for d in decisions) <= 2
    assert all(getattr(d, "probe", False) for d in decisions if not d.limited)


async def test_concurrent_asks_on_a_closed_circuit_all_pass(backend: Backend) -> None:
    breaker = backend.make(**params())
    decisions = await asyncio.gather(*(breaker.allow("v") for _ in range(50)))
    assert not any(d.limited for d in decisions)


async def test_timeout_failover_moves_past_an_open_breaker_within_the_send() -> None:
    from gocomm.failover import TimeoutFailoverSender

    breaker = MemoryCircuitBreaker(minimum_calls=1, open_for=60)
    breaker.record_now("first", False)  # the first vendor's breaker is open
    first, second = ScriptedSender(name="first"), ScriptedSender(name="second")
    sender = TimeoutFailoverSender(
        [BreakerSender(first, breaker), BreakerSender(second, breaker)], threshold=3
    )
    receipt = await sender.send("login", {}, "+15550000001")
    assert receipt is not None and receipt.vendor == "second"
    assert sender.current_index == 1 and first.calls == []
    breaker.record_now("second", False)  # now both are open: the error, no endless loop
    with pytest.raises(CircuitOpen):
        await sender.send("login", {}, "+15550000001")
    await sender.aclose()
