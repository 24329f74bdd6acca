"""gocomm.events: what each stage emits, in order, for one send; the cost with no listener;
listeners that raise; nothing from a message or an address in any event (but the limiter key)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gocomm import events
from gocomm.containers import build_container
from gocomm.errors import Limited, SendError
from gocomm.events import (
    BreakerChanged,
    Event,
    FailoverSwitched,
    LimiterDecided,
    ObservedVendor,
    RetryScheduled,
    SendFinished,
    SendScope,
    VendorAttempted,
    add_listener,
    current_send,
    remove_listener,
)
from gocomm.failover import FailoverSender, TimeoutFailoverSender
from gocomm.health import BreakerSender, MemoryCircuitBreaker
from gocomm.retryable import IntervalRetrySender, fixed
from gocomm.testing import MemorySender, ScriptedSender

PHONE = "+8613800000000"
SMS = {"code": "secret-code-4242"}

STACK = {
    "sms": {
        "vendors": [{"plugin": "memory"}, {"plugin": "memory"}],
        "ratelimit": {"algorithm": "sliding_window", "rate": 1, "window": 60, "key": "sms:{to}"},
        "retry": {"max_attempts": 2},
    }
}


class Recorder:
    """A listener keeping every event with the send scope it was emitted in."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.scopes: list[SendScope | None] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.scopes.append(current_send())

    def of(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    add_listener(recorder)
    yield recorder
    remove_listener(recorder)


@pytest.fixture
async def stack() -> AsyncIterator[Any]:
    container = build_container(STACK)
    a = ScriptedSender([SendError("a is down", vendor="a")], name="a")
    b = ScriptedSender([SendError("b is down", vendor="b")], name="b")
    with container.sms.vendors.override([a, b]):
        yield await container.sms.sender()
    await container.shutdown_resources()


def without_timing(event: Event) -> Event:
    fields = {"duration": 0.0} if hasattr(event, "duration") else {}
    if isinstance(event, VendorAttempted):
        fields["started"] = 0.0
    return dataclasses.replace(event, **fields)  # type: ignore[type-var]


async def test_a_retried_failed_over_send_emits_each_step_in_order(
    stack: Any, recorder: Recorder
) -> None:
    receipt = await stack.send("login", SMS, PHONE)

    assert receipt is not None and receipt.vendor == "a" and receipt.attempts == 2
    assert [without_timing(e) for e in recorder.events] == [
        LimiterDecided(f"sms:{PHONE}", False, None),
        VendorAttempted("a", "login", 1, "failed", "SendError", 0.0, 0.0),
        FailoverSwitched("a", "b", "error"),
        VendorAttempted("b", "login", 1, "failed", "SendError", 0.0, 0.0),
        RetryScheduled(1, 0.0, "AllSendersFailed"),
        VendorAttempted("a", "login", 1, "sent", None, 0.0, 0.0),
        SendFinished("sms", "login", "a", 1, "sent", None, 0.0),
    ]
    # Every event of the send knows it: one scope, on the sms channel.
    assert len(set(recorder.scopes)) == 1
    scope = recorder.scopes[0]
    assert scope is not None and scope.channel == "sms"
    finished = recorder.of(SendFinished)[0]
    attempts = recorder.of(VendorAttempted)
    assert finished.duration >= sum(a.duration for a in attempts) > 0
    assert attempts[0].started <= attempts[1].started <= attempts[2].started
    assert current_send() is None  # the scope ends with the send


async def test_a_limited_send_and_a_refused_recipient_finish_too(
    stack: Any, recorder: Recorder
) -> None:
    await stack.send("login", SMS, PHONE)
    recorder.events.clear()

    with pytest.raises(Limited):
        await stack.send("login", SMS, PHONE)
    with pytest.raises(ValueError):
        await stack.send("login", SMS, "not a number")

    limited, invalid = recorder.of(SendFinished)
    assert (limited.outcome, limited.error_type, limited.vendor) == ("limited", "Limited", None)
    assert (invalid.outcome, invalid.error_type) == ("failed", "InvalidRecipient")
    decision = recorder.of(LimiterDecided)[0]
    assert decision.limited and decision.retry_after is not None and decision.retry_after > 0
    assert not recorder.of(VendorAttempted)  # no vendor was called


async def test_no_event_holds_the_message_or_an_address_but_the_limiter_key(
    stack: Any, recorder: Recorder
) -> None:
    await stack.send("login", SMS, PHONE)
    for event in recorder.events:
        for field in dataclasses.fields(event):  # type: ignore[arg-type]
            value = str(getattr(event, field.name))
            assert "secret-code" not in value
            if not (isinstance(event, LimiterDecided) and field.name == "key"):
                assert "13800000000" not in value, (event, field.name)


async def test_without_listeners_a_vendor_call_is_handed_over_untouched() -> None:
    vendor = MemorySender("v")
    observed = ObservedVendor(vendor)
    call = observed.send("login", SMS, PHONE)
    # The vendor's own coroutine, not a wrapper: the cost is the one `if _listeners:` check.
    assert call.cr_code is MemorySender.send.__code__  # type: ignore[attr-defined]
    await call
    assert not events._listeners


async def test_a_listener_that_raises_never_breaks_a_send_and_is_logged_once(
    caplog: pytest.LogCaptureFixture, recorder: Recorder
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    add_listener(broken)
    try:
        sender = ObservedVendor(MemorySender("v"))
        with caplog.at_level(logging.ERROR, logger="gocomm.events"):
            for _ in range(3):
                assert await sender.send("login", SMS, PHONE) is not None
    finally:
        remove_listener(broken)
    logged = [r for r in caplog.records if r.name == "gocomm.events"]
    assert len(logged) == 1 and "listener bug" in (logged[0].exc_text or "")
    assert len(recorder.of(VendorAttempted)) == 3  # the other listener saw every event


async def test_cancellation_is_an_outcome_and_still_propagates(recorder: Recorder) -> None:
    import asyncio

    sender = ObservedVendor(ScriptedSender([10.0], name="slow"))
    task = asyncio.ensure_future(sender.send("login", SMS, PHONE))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (attempt,) = recorder.of(VendorAttempted)
    assert (attempt.outcome, attempt.error_type) == ("cancelled", "CancelledError")


async def test_timeout_failover_switches_and_restores(loop_clock: Any, recorder: Recorder) -> None:
    a = ScriptedSender([TimeoutError()], name="a")
    b = MemorySender("b")
    failover = TimeoutFailoverSender([a, b], threshold=1, restore_after=10)
    with pytest.raises(TimeoutError):
        await failover.send("login", SMS, PHONE)
    await failover.send("login", SMS, PHONE)  # the switch happens at this send
    await loop_clock.advance(11)
    assert recorder.of(FailoverSwitched) == [
        FailoverSwitched("a", "b", "timeouts"),
        FailoverSwitched("b", "a", "restore"),
    ]
    await failover.aclose()


async def test_breaker_changes_are_seen_at_decisions(recorder: Recorder) -> None:
    now = [0.0]
    breaker = MemoryCircuitBreaker(minimum_calls=2, open_for=5, clock=lambda: now[0])
    vendor = ScriptedSender([ConnectionError(), ConnectionError()], name="v")
    sender = BreakerSender(vendor, breaker, name="sms.vendors[0].v")
    for _ in range(3):  # two failures open it; the third is refused
        with pytest.raises(Exception):  # noqa: B017 - the vendor's error, then CircuitOpen
            await sender.send("login", SMS, PHONE)
    now[0] = 6.0
    await sender.send("login", SMS, PHONE)  # a probe, which succeeds
    await sender.send("login", SMS, PHONE)
    assert recorder.of(BreakerChanged) == [
        BreakerChanged("sms.vendors[0].v", "closed", "open"),
        BreakerChanged("sms.vendors[0].v", "open", "half_open"),
        BreakerChanged("sms.vendors[0].v", "half_open", "closed"),
    ]


async def test_strategies_log_records_carry_structured_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = ScriptedSender([SendError("a is down", vendor="a", retry_after=0.01)], name="a")
    retry = IntervalRetrySender(FailoverSender([a, MemorySender("b")]), 2, fixed(0))
    b_down = ScriptedSender([SendError("b is down", vendor="b")], name="b")
    plain = IntervalRetrySender(b_down, 2, fixed(0.001))
    with caplog.at_level(logging.WARNING, logger="gocomm"):
        await retry.send("login", SMS, PHONE)
        await plain.send("login", SMS, PHONE)
    by_logger = {r.name: r for r in caplog.records}
    failover = by_logger["gocomm.failover"]
    assert (failover.gocomm_vendor, failover.gocomm_error_type) == ("a", "SendError")  # type: ignore[attr-defined]
    retried = by_logger["gocomm.retryable"]
    assert retried.gocomm_vendor == "b"  # type: ignore[attr-defined]
    assert retried.gocomm_attempt == 1  # type: ignore[attr-defined]
    assert retried.gocomm_wait == pytest.approx(0.001)  # type: ignore[attr-defined]
    assert retried.gocomm_error_type == "SendError"  # type: ignore[attr-defined]
