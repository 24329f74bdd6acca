"""RetrySender and IntervalRetrySender: go-comm's retryable tests ported, then the new semantics.

go-comm's ``retryable/service_test.go`` and ``interval_test.go`` each run three cases against
one sender: ``normal``, ``service_error`` (every call fails: "retried n times" wrapping the
error) and ``timeout_error`` (the caller's context is already past its deadline). Here the
caller's deadline is an ``asyncio.timeout`` around the call and cancellation is
``asyncio.CancelledError``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from gocomm.errors import (
    ConfigError,
    InvalidRecipient,
    Limited,
    PermanentError,
    RetryExhausted,
    SendError,
    is_retryable,
)
from gocomm.failover import FailoverSender
from gocomm.retryable import IntervalRetrySender, RetrySender, exponential, fixed, uniform
from gocomm.sender import Receipt
from gocomm.testing import MemorySender, ScriptedSender, SentMessage

from .conftest import LoopClock

MAX_ATTEMPTS = 3


class FailsAfterYield(ScriptedSender):
    """A vendor that fails after giving the loop a turn, as a network call would."""

    def __init__(self, error: Exception) -> None:
        super().__init__(name="yielding")
        self.error = error

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        self.calls.append(SentMessage(biz, args, to))
        await asyncio.sleep(0)
        raise self.error


class NoneSender:
    """A user's sender that returns None, as the protocol allows."""

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, biz: str, args: Any, *to: str) -> None:
        self.calls += 1


STRATEGIES = ["retry", "interval"]


def build(kind: str, inner: Any, **kwargs: Any) -> RetrySender[Any] | IntervalRetrySender[Any]:
    if kind == "retry":
        return RetrySender(inner, MAX_ATTEMPTS, **kwargs)
    return IntervalRetrySender(inner, MAX_ATTEMPTS, fixed(0.001), **kwargs)


# --------------------------------------------------------------------------- go-comm's cases


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_a_first_success_is_returned_after_one_attempt(kind: str) -> None:
    # go-comm: retryable/service_test.go and interval_test.go, case "normal".
    inner = ScriptedSender([None], name="vendor")
    receipt = await build(kind, inner).send("login", {"code": "1"}, "+8613888888888")
    assert receipt == Receipt(vendor="vendor", message_ids=("vendor-1",), attempts=1)
    assert [c.to for c in inner.calls] == [("+8613888888888",)]


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_every_attempt_failing_raises_retry_exhausted_with_the_last_error(kind: str) -> None:
    # go-comm: retryable/service_test.go and interval_test.go, case "service_error".
    boom = SendError("simulated vendor error", vendor="vendor")
    inner = ScriptedSender([boom] * MAX_ATTEMPTS, name="vendor")
    with pytest.raises(RetryExhausted) as caught:
        await build(kind, inner).send("login", {}, "+8613888888888")
    assert caught.value.attempts == MAX_ATTEMPTS
    assert caught.value.last_error is boom
    assert caught.value.__cause__ is boom
    assert caught.value.unsent == ("+8613888888888",)
    assert f"{MAX_ATTEMPTS} attempts" in str(caught.value)
    assert len(inner.calls) == MAX_ATTEMPTS


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_a_caller_deadline_already_passed_raises_timeout_without_a_retry(kind: str) -> None:
    # go-comm: retryable/service_test.go and interval_test.go, case "timeout_error": a context
    # whose deadline has passed yields DeadlineExceeded, not a retry.
    inner = FailsAfterYield(SendError("simulated vendor error"))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):
            await build(kind, inner).send("login", {}, "+8613888888888")
    assert len(inner.calls) == 1


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_caller_deadline_during_vendor_call_is_not_retried(kind: str) -> None:
    inner = ScriptedSender([30.0], name="slow")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await build(kind, inner).send("login", {}, "+8613888888888")
    assert loop.time() - started < 5
    assert len(inner.calls) == 1


# --------------------------------------------------------------------------- new semantics


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_success_after_failures_reports_attempts(kind: str) -> None:
    inner = ScriptedSender([SendError("flaky"), TimeoutError("slow"), None], name="vendor")
    receipt = await build(kind, inner).send("login", {}, "a@example.com")
    assert receipt is not None
    assert receipt.attempts == 3
    assert receipt.vendor == "vendor"
    assert len(inner.calls) == 3


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_attempts_is_set_by_this_layer(kind: str) -> None:
    # An inner retry reports its own attempts; the outer layer reports its own calls.
    inner = RetrySender(ScriptedSender([SendError("flaky")], name="vendor"), 2)
    receipt = await build(kind, inner).send("login", {}, "a@example.com")
    assert receipt is not None
    assert receipt.attempts == 1


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_non_retryable_error_is_raised_as_is_after_one_call(kind: str) -> None:
    bad = InvalidRecipient("bad recipient 'x'", vendor="vendor")
    inner = ScriptedSender([bad], name="vendor")
    with pytest.raises(InvalidRecipient) as caught:
        await build(kind, inner).send("login", {}, "x")
    assert caught.value is bad
    assert bad.unsent is None  # nothing narrowed: still "all of to"
    assert len(inner.calls) == 1


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_limited_is_not_retried_by_default_but_can_be(kind: str) -> None:
    inner = ScriptedSender([Limited("k")], name="vendor")
    with pytest.raises(Limited):
        await build(kind, inner).send("login", {}, "a@example.com")
    assert len(inner.calls) == 1

    inner = ScriptedSender([Limited("k")], name="vendor")
    retry_limits = build(kind, inner, retry_on=lambda e: isinstance(e, Limited) or is_retryable(e))
    receipt = await retry_limits.send("login", {}, "a@example.com")
    assert receipt is not None
    assert receipt.attempts == 2


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_custom_retry_on_refusal_raises_as_is(kind: str) -> None:
    boom = RuntimeError("not for retrying")
    inner = ScriptedSender([boom], name="vendor")
    sender = build(kind, inner, retry_on=lambda e: not isinstance(e, RuntimeError))
    with pytest.raises(RuntimeError) as caught:
        await sender.send("login", {}, "a@example.com")
    assert caught.value is boom
    assert len(inner.calls) == 1


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_cancelled_error_from_vendor_is_never_retried(kind: str) -> None:
    inner = ScriptedSender([asyncio.CancelledError()], name="vendor")
    with pytest.raises(asyncio.CancelledError):
        await build(kind, inner).send("login", {}, "a@example.com")
    assert len(inner.calls) == 1


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_cancelled_error_is_not_retried_even_if_retry_on_says_yes(kind: str) -> None:
    inner = ScriptedSender([asyncio.CancelledError()], name="vendor")
    with pytest.raises(asyncio.CancelledError):
        await build(kind, inner, retry_on=lambda exc: True).send("login", {}, "a@example.com")
    assert len(inner.calls) == 1


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_task_cancel_during_vendor_call_propagates(kind: str) -> None:
    inner = ScriptedSender([30.0], name="slow")
    task = asyncio.create_task(build(kind, inner).send("login", {}, "a@example.com"))
    await asyncio.sleep(0)  # the task runs up to its vendor call before this resumes
    assert len(inner.calls) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(inner.calls) == 1


async def test_cancelled_wait_ends_at_once() -> None:
    inner = ScriptedSender([SendError("flaky")], name="vendor")
    sender = IntervalRetrySender(inner, MAX_ATTEMPTS, fixed(30.0))
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(sender.send("login", {}, "a@example.com"))
    await asyncio.sleep(0)  # the task fails once and starts its 30 s wait before this resumes
    assert len(inner.calls) == 1
    started = loop.time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert loop.time() - started < 1
    assert len(inner.calls) == 1


async def test_caller_deadline_during_wait_ends_it() -> None:
    inner = ScriptedSender([SendError("flaky")], name="vendor")
    sender = IntervalRetrySender(inner, MAX_ATTEMPTS, fixed(30.0))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await sender.send("login", {}, "a@example.com")
    assert loop.time() - started < 5
    assert len(inner.calls) == 1


async def test_retry_sender_never_waits() -> None:
    # Even when the error asks for a wait: RetrySender retries at once.
    inner = ScriptedSender([SendError("busy", retry_after=30.0)] * 2, name="vendor")
    loop = asyncio.get_running_loop()
    started = loop.time()
    receipt = await RetrySender(inner, MAX_ATTEMPTS).send("login", {}, "a@example.com")
    assert receipt is not None
    assert receipt.attempts == 3
    assert loop.time() - started < 5


async def test_interval_is_called_with_attempt_numbers_not_after_the_last() -> None:
    seen: list[int] = []

    def interval(attempt: int) -> float:
        seen.append(attempt)
        return 0.0

    inner = ScriptedSender([SendError("flaky")] * 4, name="vendor")
    with pytest.raises(RetryExhausted):
        await IntervalRetrySender(inner, 4, interval).send("login", {}, "a@example.com")
    assert seen == [1, 2, 3]
    assert len(inner.calls) == 4


async def test_interval_wait_is_kept(loop_clock: LoopClock) -> None:
    inner = ScriptedSender([SendError("flaky")], name="vendor")
    task = asyncio.create_task(
        IntervalRetrySender(inner, MAX_ATTEMPTS, fixed(5.0)).send("login", {}, "a")
    )
    await loop_clock.advance(4.9)
    assert len(inner.calls) == 1
    assert not task.done()
    await loop_clock.advance(0.2)
    assert task.done()  # no real waiting
    receipt = await task
    assert receipt is not None
    assert receipt.attempts == 2


async def test_wait_is_at_least_retry_after(loop_clock: LoopClock) -> None:
    inner = ScriptedSender([SendError("throttled", retry_after=10.0)], name="vendor")
    sender = IntervalRetrySender(inner, MAX_ATTEMPTS, fixed(1.0))
    task = asyncio.create_task(sender.send("login", {}, "a@example.com"))
    await loop_clock.advance(9.9)
    assert len(inner.calls) == 1
    assert not task.done()
    await loop_clock.advance(0.2)
    assert task.done()  # no real waiting
    receipt = await task
    assert receipt is not None
    assert receipt.attempts == 2


async def test_max_delay_caps_each_wait(loop_clock: LoopClock) -> None:
    inner = ScriptedSender([SendError("flaky"), SendError("busy", retry_after=2.0)], name="vendor")
    sender = IntervalRetrySender(inner, MAX_ATTEMPTS, fixed(30.0), max_delay=3.0)
    task = asyncio.create_task(sender.send("login", {}, "a@example.com"))
    await loop_clock.advance(2.9)
    assert len(inner.calls) == 1
    await loop_clock.advance(0.2)  # 3.1: the 30 s interval was capped at 3 s
    assert len(inner.calls) == 2
    await loop_clock.advance(3.1)  # retry_after 2 s within max_delay: the wait is min(30, 3)
    assert task.done()  # no real waiting
    receipt = await task
    assert receipt is not None
    assert receipt.attempts == 3


async def test_retry_after_beyond_max_delay_stops_at_once() -> None:
    throttled = SendError("throttled", retry_after=60.0, vendor="vendor")
    inner = ScriptedSender([throttled], name="vendor")
    sender = IntervalRetrySender(inner, MAX_ATTEMPTS, fixed(0.0), max_delay=1.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RetryExhausted) as caught:
        await sender.send("login", {}, "a@example.com")
    assert caught.value.attempts == 1
    assert caught.value.__cause__ is throttled
    assert len(inner.calls) == 1
    assert loop.time() - started < 1


async def test_retry_after_of_failover_group_is_honoured(loop_clock: LoopClock) -> None:
    # Both vendors ask for a wait: the retry waits for the shorter one.
    a = ScriptedSender([SendError("busy", retry_after=10.0)], name="a")
    b = ScriptedSender([SendError("busy", retry_after=50.0)], name="b")
    sender = IntervalRetrySender(FailoverSender([a, b]), 2, fixed(0.0))
    task = asyncio.create_task(sender.send("login", {}, "a@example.com"))
    await loop_clock.advance(9.9)
    assert not task.done()
    await loop_clock.advance(0.2)
    assert task.done()  # no real waiting
    receipt = await task
    assert receipt is not None
    assert receipt.attempts == 2
    assert (len(a.calls), len(b.calls)) == (2, 1)


async def test_retry_after_of_failover_group_is_none_if_one_vendor_needs_no_wait(
    loop_clock: LoopClock,
) -> None:
    a = ScriptedSender([SendError("busy", retry_after=10.0)], name="a")
    b = ScriptedSender([SendError("down")], name="b")
    sender = IntervalRetrySender(FailoverSender([a, b]), 2, fixed(1.0))
    task = asyncio.create_task(sender.send("login", {}, "a@example.com"))
    await loop_clock.advance(1.1)
    assert task.done()  # no real waiting
    receipt = await task
    assert receipt is not None
    assert receipt.attempts == 2


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_retry_goes_only_to_recipients_still_owed(kind: str) -> None:
    partial = SendError("c failed", unsent=["c"])
    inner = ScriptedSender([partial], name="vendor")
    receipt = await build(kind, inner).send("login", {}, "a", "b", "c")
    assert receipt is not None
    assert receipt.attempts == 2
    assert [c.to for c in inner.calls] == [("a", "b", "c"), ("c",)]


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_exhaustion_names_recipients_still_owed(kind: str) -> None:
    inner = ScriptedSender(
        [
            SendError("b, c failed", unsent=["c", "b"]),
            SendError("c failed", unsent=["c"]),
            SendError("still down"),
        ],
        name="vendor",
    )
    with pytest.raises(RetryExhausted) as caught:
        await build(kind, inner).send("login", {}, "a", "b", "c")
    assert caught.value.unsent == ("c",)
    assert [c.to for c in inner.calls] == [("a", "b", "c"), ("b", "c"), ("c",)]


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_refused_error_is_narrowed_to_recipients_still_owed(kind: str) -> None:
    bad = PermanentError("template rejected", vendor="vendor")
    inner = ScriptedSender([SendError("c failed", unsent=["c"]), bad], name="vendor")
    with pytest.raises(PermanentError) as caught:
        await build(kind, inner).send("login", {}, "a", "b", "c")
    assert caught.value is bad
    assert bad.unsent == ("c",)


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_error_with_nobody_unsent_is_a_send(kind: str) -> None:
    inner = ScriptedSender(
        [SendError("flaky", unsent=["b"]), SendError("odd", unsent=[])], name="vendor"
    )
    receipt = await build(kind, inner).send("login", {}, "a", "b")
    assert receipt == Receipt(vendor="vendor", attempts=2)
    assert len(inner.calls) == 2


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_none_receipt_passes_through(kind: str) -> None:
    inner = NoneSender()
    assert await build(kind, inner).send("login", {}, "a") is None
    assert inner.calls == 1


async def test_retry_around_failover_never_repeats_a_recipient() -> None:
    # a reaches "x" but fails "y"; b fails outright; the retry starts again at a, for "y" only.
    a = ScriptedSender([SendError("y failed", unsent=["y"]), None], name="a")
    b = ScriptedSender([SendError("b down")], name="b")
    sender = RetrySender(FailoverSender([a, b]), MAX_ATTEMPTS)
    receipt = await sender.send("login", {}, "x", "y")
    assert receipt is not None
    assert receipt.vendor == "a"
    assert receipt.attempts == 2
    assert [c.to for c in a.calls] == [("x", "y"), ("y",)]
    assert [c.to for c in b.calls] == [("y",)]
    got_x = [c for c in a.calls + b.calls if "x" in c.to]
    assert len(got_x) == 1


# --------------------------------------------------------------------------- logging, closing


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_custom_logger_gets_each_absorbed_failure_once(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("test.retry.custom")
    inner = ScriptedSender([SendError("flaky one"), SendError("flaky two")], name="vendor")
    with caplog.at_level(logging.WARNING, logger="test.retry.custom"):
        await build(kind, inner, logger=logger).send("login", {"code": "SECRET-123"}, "a")
    records = [r for r in caplog.records if r.name == "test.retry.custom"]
    assert len(records) == 2
    assert "flaky one" in records[0].getMessage()
    assert "vendor" in records[0].getMessage()
    assert all("SECRET-123" not in r.getMessage() for r in records)


async def test_default_logger_is_under_gocomm(caplog: pytest.LogCaptureFixture) -> None:
    inner = ScriptedSender([SendError("flaky")], name="vendor")
    with caplog.at_level(logging.WARNING, logger="gocomm.retryable"):
        await RetrySender(inner, 2).send("login", {}, "a")
    assert [r.name for r in caplog.records] == ["gocomm.retryable"]


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_aclose_closes_inner_once_and_works_as_context_manager(kind: str) -> None:
    inner = MemorySender()
    async with build(kind, inner) as sender:
        await sender.send("login", {}, "a")
    assert inner.closed
    assert sender.closed
    await sender.aclose()  # idempotent
    assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running


async def test_aclose_tolerates_inner_without_aclose() -> None:
    sender = RetrySender(NoneSender(), 1)
    await sender.aclose()
    assert sender.closed


# --------------------------------------------------------------------------- construction


def test_strategies_build_without_an_event_loop() -> None:
    inner = MemorySender()
    assert RetrySender(inner, 1).max_attempts == 1
    interval = IntervalRetrySender(inner, 2, exponential(0.1, 1.0), max_delay=5)
    assert interval.max_delay == 5.0
    assert "max_attempts=2" in repr(interval)


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "3", None])
def test_max_attempts_must_be_a_positive_integer(bad: Any) -> None:
    with pytest.raises(ConfigError, match="max_attempts"):
        RetrySender(MemorySender(), bad)
    with pytest.raises(ValueError, match="max_attempts"):
        IntervalRetrySender(MemorySender(), bad, fixed(1))


def test_other_arguments_are_checked() -> None:
    with pytest.raises(ConfigError, match="interval"):
        IntervalRetrySender(MemorySender(), 2, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_delay"):
        IntervalRetrySender(MemorySender(), 2, fixed(1), max_delay=-1)
    with pytest.raises(ConfigError, match="retry_on"):
        RetrySender(MemorySender(), 2, retry_on="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="send"):
        RetrySender(object(), 2)  # type: ignore[arg-type]


async def test_interval_returning_a_bad_wait_is_reported() -> None:
    inner = ScriptedSender([SendError("flaky")], name="vendor")
    sender = IntervalRetrySender(inner, 2, lambda attempt: -1.0)
    with pytest.raises(ConfigError, match="interval"):
        await sender.send("login", {}, "a")


# --------------------------------------------------------------------------- interval helpers


def test_fixed() -> None:
    wait = fixed(0.25)
    assert [wait(n) for n in (1, 2, 10)] == [0.25, 0.25, 0.25]


def test_uniform_stays_in_range_and_varies() -> None:
    wait = uniform(0.1, 0.15)
    samples = [wait(1) for _ in range(500)]
    assert all(0.1 <= s <= 0.15 for s in samples)
    assert len(set(samples)) > 100


def test_exponential_without_jitter_doubles_up_to_the_cap() -> None:
    wait = exponential(0.5, 10.0, jitter=False)
    assert [wait(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert exponential(1.0, 100.0, multiplier=3.0, jitter=False)(3) == 9.0
    assert wait(100_000) == 10.0  # no float overflow far past the cap


def test_exponential_jitter_is_full_and_stays_random_at_the_cap() -> None:
    wait = exponential(0.5, 10.0)
    early = [wait(2) for _ in range(500)]
    assert all(0.0 <= s <= 1.0 for s in early)
    assert len(set(early)) > 100
    at_cap = [wait(50) for _ in range(500)]
    assert all(0.0 <= s <= 10.0 for s in at_cap)
    assert len(set(at_cap)) > 100
    assert min(at_cap) < 5.0 < max(at_cap)  # spread over the whole range, not pinned at 10


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: fixed(-1), "seconds"),
        (lambda: fixed(float("inf")), "seconds"),
        (lambda: uniform(2, 1), "low <= high"),
        (lambda: uniform(-1, 1), "low"),
        (lambda: exponential(0, 1), "initial"),
        (lambda: exponential(2, 1), "initial <= maximum"),
        (lambda: exponential(1, 2, multiplier=0.5), "multiplier"),
        (lambda: exponential(1, 2, multiplier=float("nan")), "multiplier"),
    ],
)
def test_interval_helpers_reject_bad_values(factory: Any, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        factory()


@pytest.mark.parametrize("kind", STRATEGIES)
async def test_a_failed_send_to_nobody_stays_a_failure(kind: str) -> None:
    inner = ScriptedSender([InvalidRecipient("no recipient given", unsent=[])], name="vendor")
    with pytest.raises(InvalidRecipient) as caught:
        await build(kind, inner).send("login", {})
    assert caught.value.unsent is None

    inner = ScriptedSender([SendError("down", unsent=[])] * MAX_ATTEMPTS, name="vendor")
    with pytest.raises(RetryExhausted) as exhausted:
        await build(kind, inner).send("login", {})
    assert exhausted.value.unsent is None
