"""RateLimitSender and ConcurrencyLimitSender.

The first tests port go-comm's ``ratelimit/service_test.go`` case by case (normal, limited,
limiter error); the rest cover what gocomm adds: ``retry_after``, fail-open, several keys, key
functions, cancellation, closing, and the concurrency sender.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from gocomm.errors import ConfigError, Limited, LimiterError, SendError, is_retryable
from gocomm.ratelimit import (
    ConcurrencyLimiter,
    ConcurrencyLimitSender,
    Decision,
    RateLimitSender,
    SlidingWindowLimiter,
    TokenBucketLimiter,
)
from gocomm.ratelimit.keys import KeyTemplate, key_function
from gocomm.sender import Receipt
from gocomm.testing import MemorySender, ScriptedSender

LOGGER = "gocomm.ratelimit"


class BoolLimiter:
    """go-comm's test limiter: answers ``limit()`` with a set outcome and records the keys.
    It has no ``check()``, so the sender must fall back to ``limit()``."""

    def __init__(self, limited: bool = False, error: BaseException | None = None) -> None:
        self.limited = limited
        self.error = error
        self.keys: list[str] = []

    async def limit(self, key: str) -> bool:
        self.keys.append(key)
        if self.error is not None:
            raise self.error
        return self.limited


class BrokenLimiter:
    """A DecisionLimiter whose backend is down; records the keys it was asked for."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.keys: list[str] = []

    async def limit(self, key: str) -> bool:
        self.keys.append(key)
        raise self.error

    async def check(self, key: str) -> Decision:
        self.keys.append(key)
        raise self.error


class BrokenActiveLimiter:
    """A concurrency limiter whose backend fails on acquire or on release; records the keys."""

    def __init__(self, *, on_enter: Exception | None = None, on_exit: Exception | None = None):
        self.on_enter = on_enter
        self.on_exit = on_exit
        self.released = 0
        self.keys: list[str] = []

    def acquire(self, key: str) -> AbstractAsyncContextManager[None]:
        self.keys.append(key)

        @asynccontextmanager
        async def slot() -> AsyncIterator[None]:
            if self.on_enter is not None:
                raise self.on_enter
            try:
                yield
            finally:
                self.released += 1
                if self.on_exit is not None:
                    raise self.on_exit

        return slot()


class HangingLimiter:
    """A limiter whose answer never comes (until cancelled)."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()

    async def limit(self, key: str) -> bool:
        self.asked.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class GatedSender(MemorySender):
    """Records each send on entry and finishes it when :attr:`gate` is set."""

    def __init__(self) -> None:
        super().__init__("gated")
        self.gate = asyncio.Event()
        self.started: list[tuple[str, ...]] = []
        self.entered = asyncio.Event()

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        self.started.append(to)
        self.entered.set()
        await self.gate.wait()
        return await super().send(biz, args, *to)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- go-comm's cases ----------------------------------------------------------------------------
# go-comm: ratelimit/service_test.go, TestService_Send cases "normal", "limited", "limiter_error".


@pytest.mark.parametrize(
    ("limited", "error", "expected"),
    [
        pytest.param(False, None, None, id="allowed-sends"),
        pytest.param(True, None, Limited, id="limited-raises-limited"),
        pytest.param(False, RuntimeError("模拟限流器错误"), LimiterError, id="error-fails-closed"),
    ],
)
async def test_the_vendor_is_called_only_when_the_limiter_allows(
    limited: bool, error: Exception | None, expected: type[Exception] | None
) -> None:
    vendor = MemorySender()
    limiter = BoolLimiter(limited, error)
    sender: RateLimitSender[int] = RateLimitSender(vendor, "ses", limiter)
    if expected is None:
        receipt = await sender.send("", 0, "")
        assert receipt == Receipt(vendor="memory", message_ids=("memory-1",))
        assert len(vendor.sent) == 1
    else:
        with pytest.raises(expected) as info:
            await sender.send("", 0, "")
        assert vendor.sent == []  # the vendor is never called
        if error is not None:
            assert info.value.__cause__ is error
            assert "模拟限流器错误" in str(info.value)
        else:
            assert isinstance(info.value, Limited)
            assert info.value.key == "ses"
            assert info.value.retry_after is None  # limit() says only yes or no
    assert limiter.keys == ["ses"]


# -- limited ---------------------------------------------------------------------------------


async def test_limited_carries_retry_after_from_a_decision_limiter() -> None:
    clock = FakeClock()
    vendor = MemorySender()
    sender = RateLimitSender(vendor, "ses", SlidingWindowLimiter(60.0, 2, clock=clock))
    await sender.send("login", {"code": "1"}, "+8613800000000")
    clock.now = 15.0
    await sender.send("login", {"code": "2"}, "+8613800000000")
    clock.now = 20.0
    with pytest.raises(Limited) as info:
        await sender.send("login", {"code": "3"}, "+8613800000000")
    assert info.value.retry_after == 40.0
    assert "retry in 40s" in str(info.value)
    assert not is_retryable(info.value)
    assert len(vendor.sent) == 2


async def test_exactly_the_limit_is_sent_under_concurrent_sends() -> None:
    vendor = MemorySender()
    sender = RateLimitSender(vendor, "ses", TokenBucketLimiter(0.001, 10))

    async def one() -> bool:
        try:
            await sender.send("biz", None, "a@example.com")
        except Limited:
            return False
        return True

    results = await asyncio.gather(*(one() for _ in range(300)))
    assert sum(results) == 10
    assert len(vendor.sent) == 10


async def test_a_limited_decision_is_not_bypassed_by_fail_open() -> None:
    vendor = MemorySender()
    sender = RateLimitSender(vendor, "k", BoolLimiter(limited=True), fail_open=True)
    with pytest.raises(Limited):
        await sender.send("biz", None, "a@example.com")
    assert vendor.sent == []


async def test_a_limiter_that_raises_limited_itself_is_obeyed() -> None:
    vendor = MemorySender()
    own = Limited("its-own-key", 3.0)
    sender = RateLimitSender(vendor, "k", BrokenLimiter(own), fail_open=True)
    with pytest.raises(Limited) as info:
        await sender.send("biz", None, "a@example.com")
    assert info.value is own
    assert vendor.sent == []


# -- limiter failures: the same for both senders -----------------------------------------------


def _broken_rate(error: Exception) -> tuple[type[Any], BrokenLimiter]:
    return RateLimitSender, BrokenLimiter(error)


def _broken_concurrency(error: Exception) -> tuple[type[Any], BrokenActiveLimiter]:
    return ConcurrencyLimitSender, BrokenActiveLimiter(on_enter=error)


#: Each sender with a limiter whose backend is down (as tests/test_limiters.py is over backends).
BROKEN = [
    pytest.param(_broken_rate, id="RateLimitSender"),
    pytest.param(_broken_concurrency, id="ConcurrencyLimitSender"),
]
Broken = Callable[[Exception], tuple[type[Any], Any]]  # a sender class and its broken limiter


@pytest.mark.parametrize("broken", BROKEN)
async def test_a_limiter_error_fails_closed_by_default(broken: Broken) -> None:
    vendor = MemorySender()
    cause = ConnectionError("redis unreachable")
    cls, limiter = broken(cause)
    sender = cls(vendor, "k", limiter)
    with pytest.raises(LimiterError) as info:
        await sender.send("biz", None, "a@example.com")
    assert info.value.__cause__ is cause
    assert type(limiter).__name__ in str(info.value)
    assert "fail_open=True" in str(info.value)  # says what to do
    assert vendor.sent == []


@pytest.mark.parametrize("broken", BROKEN)
async def test_fail_open_sends_anyway_and_logs_once(
    broken: Broken, caplog: pytest.LogCaptureFixture
) -> None:
    vendor = MemorySender()
    cls, limiter = broken(ConnectionError("redis unreachable"))
    sender = cls(vendor, "k", limiter, fail_open=True)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        receipt = await sender.send("login", {"code": "secret-1234"}, "+8613800000000")
    assert receipt is not None
    assert receipt.vendor == "memory"
    assert len(vendor.sent) == 1
    records = [r for r in caplog.records if r.name == LOGGER]
    assert len(records) == 1
    message = records[0].getMessage()
    assert type(limiter).__name__ in message
    assert "redis unreachable" in message
    assert "secret-1234" not in caplog.text  # never message content


@pytest.mark.parametrize("broken", BROKEN)
async def test_fail_open_with_several_keys_logs_once_and_stops_asking(
    broken: Broken, caplog: pytest.LogCaptureFixture
) -> None:
    vendor = MemorySender()
    cls, limiter = broken(ConnectionError("redis unreachable"))
    sender = cls(vendor, lambda biz, args, to: list(to), limiter, fail_open=True)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        await sender.send("biz", None, "+1", "+2", "+3")
    assert limiter.keys == ["+1"]
    assert len(caplog.records) == 1
    assert len(vendor.sent) == 1


async def test_a_limiter_error_from_the_limiter_is_not_wrapped_twice() -> None:
    own = LimiterError("redis limiter timed out after 1s")
    sender = RateLimitSender(MemorySender(), "k", BrokenLimiter(own))
    with pytest.raises(LimiterError) as info:
        await sender.send("biz", None, "a@example.com")
    assert info.value is own


async def test_custom_logger_is_used(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.custom.ratelimit")
    sender = RateLimitSender(
        MemorySender(), "k", BrokenLimiter(OSError("down")), fail_open=True, logger=logger
    )
    with caplog.at_level(logging.WARNING):
        await sender.send("biz", None, "a@example.com")
    assert [r.name for r in caplog.records] == ["tests.custom.ratelimit"]


async def test_vendor_errors_pass_through_untouched() -> None:
    error = SendError("vendor down", vendor="scripted", code="503")
    sender = RateLimitSender(ScriptedSender([error]), "k", SlidingWindowLimiter(60.0, 5))
    with pytest.raises(SendError) as info:
        await sender.send("biz", None, "a@example.com")
    assert info.value is error


# -- keys ------------------------------------------------------------------------------------


async def test_key_function_is_called_once_per_send_with_the_send() -> None:
    calls: list[tuple[str, object, tuple[str, ...]]] = []

    def key(biz: str, args: dict[str, str], to: tuple[str, ...]) -> str:
        calls.append((biz, args, to))
        return f"sms:{biz}"

    limiter = BoolLimiter()
    sender = RateLimitSender(MemorySender(), key, limiter)
    await sender.send("login", {"code": "1"}, "+8613800000000", "+8613800000001")
    assert calls == [("login", {"code": "1"}, ("+8613800000000", "+8613800000001"))]
    assert limiter.keys == ["sms:login"]


async def test_several_keys_each_checked_in_order() -> None:
    def per_recipient(biz: str, args: object, to: tuple[str, ...]) -> Sequence[str]:
        return [f"sms:{r}" for r in to]

    limiter = BoolLimiter()
    vendor = MemorySender()
    sender = RateLimitSender(vendor, per_recipient, limiter)
    await sender.send("login", None, "+1", "+2", "+3")
    assert limiter.keys == ["sms:+1", "sms:+2", "sms:+3"]
    assert len(vendor.sent) == 1  # one send, not one per key


async def test_one_limited_key_stops_the_send_and_earlier_quota_stays_spent() -> None:
    def per_recipient(biz: str, args: object, to: tuple[str, ...]) -> Sequence[str]:
        return [f"sms:{r}" for r in to]

    limiter = SlidingWindowLimiter(60.0, 1)
    vendor = MemorySender()
    sender = RateLimitSender(vendor, per_recipient, limiter, refund=False)
    await sender.send("login", None, "+2")  # spends +2's only request
    with pytest.raises(Limited) as info:
        await sender.send("login", None, "+1", "+2", "+3")
    assert info.value.key == "sms:+2"
    assert len(vendor.sent) == 1  # nothing more was sent
    assert await limiter.limit("sms:+1")  # +1 was checked first: its quota is spent
    assert not await limiter.limit("sms:+3")  # +3 was never checked


async def test_an_empty_key_list_checks_nothing() -> None:
    limiter = BoolLimiter(limited=True)
    vendor = MemorySender()
    sender = RateLimitSender(vendor, lambda biz, args, to: [], limiter)
    await sender.send("biz", None)
    assert limiter.keys == []
    assert len(vendor.sent) == 1


async def test_a_failing_key_function_propagates_its_own_error() -> None:
    def key(biz: str, args: dict[str, str], to: tuple[str, ...]) -> str:
        return args["tenant"]

    vendor = MemorySender()
    sender = RateLimitSender(vendor, key, BoolLimiter(), fail_open=True)
    with pytest.raises(KeyError, match="tenant"):
        await sender.send("biz", {}, "a@example.com")
    assert vendor.sent == []


# -- refunds ---------------------------------------------------------------------------------


def per_recipient_keys() -> KeyTemplate:
    """The configuration's per-recipient key function: one key per distinct recipient."""
    return key_function("sms:{to}")


class RecordingRefunds(SlidingWindowLimiter):
    """A sliding window that records what is given back (and does give it back)."""

    def __init__(self, rate: int = 1) -> None:
        super().__init__(60.0, rate)
        self.refunded: list[str] = []

    async def refund(self, key: str, token: object) -> None:
        self.refunded.append(key)
        await super().refund(key, token)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(SendError("vendor down"), id="send_error"),
        pytest.param(RuntimeError("a vendor bug"), id="any_exception"),
        pytest.param(Limited("inner"), id="limited_further_in"),
    ],
)
async def test_a_send_that_reached_nobody_gives_its_quota_back(failure: Exception) -> None:
    limiter = SlidingWindowLimiter(60.0, 1)
    vendor = ScriptedSender([failure])
    sender = RateLimitSender(vendor, "+1", limiter)
    with pytest.raises(type(failure)):
        await sender.send("login", None, "+1")
    # The user can ask for a code again at once: the failed send spent nothing.
    assert await sender.send("login", None, "+1") is not None
    with pytest.raises(Limited):
        await sender.send("login", None, "+1")


async def test_refund_false_keeps_the_quota_spent() -> None:
    limiter = SlidingWindowLimiter(60.0, 1)
    sender = RateLimitSender(ScriptedSender([SendError("down")]), "k", limiter, refund=False)
    with pytest.raises(SendError):
        await sender.send("login", None, "+1")
    with pytest.raises(Limited):
        await sender.send("login", None, "+1")


async def test_a_successful_send_gives_nothing_back() -> None:
    limiter = RecordingRefunds()
    sender = RateLimitSender(MemorySender(), per_recipient_keys(), limiter)
    await sender.send("login", None, "+1", "+2")
    assert limiter.refunded == []


async def test_per_recipient_keys_are_given_back_for_the_unsent_only() -> None:
    limiter = RecordingRefunds()
    vendor = ScriptedSender([SendError("+2 and +3 failed", unsent=["+3", "+2"])])
    sender = RateLimitSender(vendor, per_recipient_keys(), limiter)
    with pytest.raises(SendError):
        await sender.send("login", None, "+1", "+2", "+3")
    assert sorted(limiter.refunded) == ["sms:+2", "sms:+3"]
    assert await limiter.limit("sms:+1")  # +1 got it: its quota stays spent
    assert not await limiter.limit("sms:+2")
    assert not await limiter.limit("sms:+3")


async def test_refused_recipients_are_given_back_too() -> None:
    # A receipt naming refused recipients: the send went through for the others.
    class RefusingSender(MemorySender):
        async def send(self, biz: str, args: Any, *to: str) -> Receipt:
            await super().send(biz, args, *to)
            return Receipt(vendor="memory", refused=("+2",))

    limiter = RecordingRefunds()
    sender = RateLimitSender(RefusingSender(), per_recipient_keys(), limiter)
    await sender.send("login", None, "+1", "+2")
    assert limiter.refunded == ["sms:+2"]

    error = SendError("+1 failed, +2 refused for good", unsent=["+1"], refused=["+2"])
    limiter = RecordingRefunds()
    sender = RateLimitSender(ScriptedSender([error]), per_recipient_keys(), limiter)
    with pytest.raises(SendError):
        await sender.send("login", None, "+1", "+2")
    assert sorted(limiter.refunded) == ["sms:+1", "sms:+2"]


async def test_a_key_not_made_per_recipient_is_given_back_only_when_nobody_was_reached() -> None:
    def both(biz: str, args: object, to: tuple[str, ...]) -> Sequence[str]:
        return [f"biz:{biz}", *(f"sms:{r}" for r in to)]  # no per_recipient attribute

    limiter = RecordingRefunds(rate=5)
    vendor = ScriptedSender(
        [SendError("+2 failed", unsent=["+2"]), SendError("both failed", unsent=["+1", "+2"])]
    )
    sender = RateLimitSender(vendor, both, limiter)
    with pytest.raises(SendError):
        await sender.send("login", None, "+1", "+2")
    assert limiter.refunded == []  # +1 was reached, and no key is known to be +2's alone
    with pytest.raises(SendError):
        await sender.send("login", None, "+1", "+2")
    assert limiter.refunded == ["biz:login", "sms:+1", "sms:+2"]

    template = key_function("{biz}")  # one key per send
    limiter = RecordingRefunds(rate=5)
    vendor = ScriptedSender([SendError("+2 failed", unsent=["+2"]), SendError("all failed")])
    sender = RateLimitSender(vendor, template, limiter)
    with pytest.raises(SendError):
        await sender.send("login", None, "+1", "+2")
    assert limiter.refunded == []
    with pytest.raises(SendError):
        await sender.send("login", None, "+1", "+2")
    assert limiter.refunded == ["login"]


async def test_a_recipient_named_twice_is_given_back_once() -> None:
    limiter = RecordingRefunds(rate=5)
    sender = RateLimitSender(ScriptedSender([SendError("down")]), per_recipient_keys(), limiter)
    with pytest.raises(SendError):
        await sender.send("login", None, "+1", "+1")
    assert limiter.refunded == ["sms:+1"]


async def test_a_limited_key_gives_back_the_keys_before_it() -> None:
    limiter = SlidingWindowLimiter(60.0, 1)
    vendor = MemorySender()
    sender = RateLimitSender(vendor, per_recipient_keys(), limiter)
    await sender.send("login", None, "+2")
    with pytest.raises(Limited) as info:
        await sender.send("login", None, "+1", "+2", "+3")
    assert info.value.key == "sms:+2"
    assert not await limiter.limit("sms:+1")  # given back: nothing was sent


async def test_a_cancelled_send_gives_nothing_back() -> None:
    # Whether the vendor got a cancelled send is unknown: the quota stays spent.
    limiter = RecordingRefunds()
    vendor = GatedSender()
    sender = RateLimitSender(vendor, "k", limiter)
    task = asyncio.create_task(sender.send("login", None, "+1"))
    await vendor.entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.refunded == []
    assert await limiter.limit("k")


async def test_a_failed_refund_is_logged_and_the_send_error_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BrokenRefunds(SlidingWindowLimiter):
        async def refund(self, key: str, token: object) -> None:
            raise ConnectionError("redis is gone")

    error = SendError("vendor down")
    sender = RateLimitSender(ScriptedSender([error]), "k", BrokenRefunds(60.0, 1))
    with caplog.at_level(logging.WARNING, logger=LOGGER), pytest.raises(SendError) as info:
        await sender.send("login", None, "+1")
    assert info.value is error
    assert "failed to give back the quota of key 'k'" in caplog.text
    assert "redis is gone" in caplog.text


async def test_a_limiter_without_refunds_is_used_as_before() -> None:
    limiter = BoolLimiter()
    sender = RateLimitSender(ScriptedSender([SendError("down")]), "k", limiter)
    with pytest.raises(SendError):
        await sender.send("login", None, "+1")
    assert limiter.keys == ["k"]


async def test_a_decision_limiter_with_refunds_is_asked_with_acquire() -> None:
    # A refundable limiter without acquire_nowait (as the Redis ones): acquire, then refund.
    class AsyncOnly:
        def __init__(self) -> None:
            self.calls: list[tuple[str, object]] = []

        async def limit(self, key: str) -> bool:
            raise AssertionError("acquire is used")

        async def check(self, key: str) -> Decision:
            raise AssertionError("acquire is used")

        async def acquire(self, key: str) -> Decision:
            self.calls.append(("acquire", key))
            return Decision(False, token=f"token-of-{key}")

        async def refund(self, key: str, token: object) -> None:
            self.calls.append(("refund", token))

    limiter = AsyncOnly()
    sender = RateLimitSender(ScriptedSender([SendError("down")]), "k", limiter)
    with pytest.raises(SendError):
        await sender.send("login", None, "+1")
    assert limiter.calls == [("acquire", "k"), ("refund", "token-of-k")]


@pytest.mark.parametrize(
    "key",
    [pytest.param("k", id="fixed_key"), pytest.param(key_function("sms:{to}"), id="per_recipient")],
)
async def test_an_in_memory_limiter_that_fails_without_a_coroutine(
    key: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class Failing(SlidingWindowLimiter):
        def acquire_nowait(self, key: str) -> object:
            raise RuntimeError("state corrupted")

    vendor = MemorySender()
    with pytest.raises(LimiterError, match="state corrupted"):
        await RateLimitSender(vendor, key, Failing(60, 1)).send("login", None, "+1", "+2")
    assert vendor.sent == []
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        sender = RateLimitSender(vendor, key, Failing(60, 1), fail_open=True)
        assert await sender.send("login", None, "+1", "+2") is not None
    assert len(vendor.sent) == 1
    assert caplog.text.count("sending anyway") == 1


# -- cancellation ----------------------------------------------------------------------------


async def test_cancellation_while_asking_the_limiter_passes_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = HangingLimiter()
    vendor = MemorySender()
    sender = RateLimitSender(vendor, "k", limiter, fail_open=True)
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        task = asyncio.create_task(sender.send("biz", None, "a@example.com"))
        await limiter.asked.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert vendor.sent == []
    assert caplog.records == []  # not a limiter failure


async def test_cancelled_error_from_the_limiter_is_never_treated_as_a_failure() -> None:
    vendor = MemorySender()
    sender = RateLimitSender(vendor, "k", BrokenLimiter(asyncio.CancelledError()), fail_open=True)
    with pytest.raises(asyncio.CancelledError):
        await sender.send("biz", None, "a@example.com")
    assert vendor.sent == []


async def test_caller_deadline_while_asking_the_limiter() -> None:
    vendor = MemorySender()
    sender = RateLimitSender(vendor, "k", HangingLimiter(), fail_open=True)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await sender.send("biz", None, "a@example.com")
    assert vendor.sent == []


# -- construction and closing ----------------------------------------------------------------


def test_built_without_an_event_loop() -> None:
    sender = RateLimitSender(MemorySender(), "k", SlidingWindowLimiter(1.0, 1))
    assert "SlidingWindowLimiter(window=1.0, rate=1)" in repr(sender)
    active = ConcurrencyLimitSender(MemorySender(), "k", ConcurrencyLimiter(1))
    assert "ConcurrencyLimiter(max_active=1" in repr(active)


@pytest.mark.parametrize("cls", [RateLimitSender, ConcurrencyLimitSender])
@pytest.mark.parametrize(
    ("sender", "key", "error", "match"),
    [
        (object(), "k", ConfigError, "sender must have an async send"),
        (MemorySender(), 42, ConfigError, "key must be a string or a callable"),
        (MemorySender(), "", ConfigError, "key must be a non-empty string"),
    ],
)
def test_bad_arguments_are_refused(
    cls: type[Any], sender: object, key: object, error: type[Exception], match: str
) -> None:
    limiter = SlidingWindowLimiter(1.0, 1) if cls is RateLimitSender else ConcurrencyLimiter(1)
    with pytest.raises(error, match=match):
        cls(sender, key, limiter)


def test_refund_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="refund must be True or False, got 'yes'"):
        RateLimitSender(MemorySender(), "k", SlidingWindowLimiter(1.0, 1), refund="yes")  # type: ignore[arg-type]


def test_a_limiter_of_the_wrong_kind_is_refused() -> None:
    active: Any = ConcurrencyLimiter(1)
    rate: Any = SlidingWindowLimiter(1.0, 1)
    with pytest.raises(ConfigError, match="limiter must have an async limit"):
        RateLimitSender(MemorySender(), "k", active)
    with pytest.raises(ConfigError, match="limiter must have an acquire"):
        ConcurrencyLimitSender(MemorySender(), "k", rate)


class ClosingLimiter(SlidingWindowLimiter):
    """A limiter with an ``aclose`` that must never be called by the sender."""

    closed = False

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.parametrize("cls", [RateLimitSender, ConcurrencyLimitSender])
async def test_closing_closes_the_inner_sender_not_the_limiter(cls: type[Any]) -> None:
    vendor = MemorySender()
    limiter: Any = ClosingLimiter(1.0, 1) if cls is RateLimitSender else ConcurrencyLimiter(1)
    async with cls(vendor, "k", limiter) as sender:
        await sender.send("biz", None, "a@example.com")
        assert not vendor.closed
    assert vendor.closed
    assert sender.closed
    await sender.aclose()  # idempotent
    assert not getattr(limiter, "closed", False)


# == ConcurrencyLimitSender ==================================================================


async def test_concurrency_a_send_holds_a_slot_and_releases_it() -> None:
    limiter = ConcurrencyLimiter(1)
    vendor = GatedSender()
    sender = ConcurrencyLimitSender(vendor, "ses", limiter)
    task = asyncio.create_task(sender.send("biz", None, "a@example.com"))
    await vendor.entered.wait()
    assert limiter.active("ses") == 1
    vendor.gate.set()
    receipt = await task
    assert receipt is not None
    assert receipt.vendor == "gated"
    assert limiter.active("ses") == 0


async def test_concurrency_limited_while_max_active_are_in_flight() -> None:
    limiter = ConcurrencyLimiter(1)
    vendor = GatedSender()
    sender = ConcurrencyLimitSender(vendor, "ses", limiter)
    first = asyncio.create_task(sender.send("biz", None, "a@example.com"))
    await vendor.entered.wait()
    with pytest.raises(Limited) as info:
        await sender.send("biz", None, "b@example.com")
    assert info.value.key == "ses"
    assert vendor.started == [("a@example.com",)]  # the vendor never saw the second
    vendor.gate.set()
    await first
    await sender.send("biz", None, "c@example.com")
    assert [m.to for m in vendor.sent] == [("a@example.com",), ("c@example.com",)]


async def test_concurrency_exactly_max_active_under_concurrent_sends() -> None:
    limiter = ConcurrencyLimiter(5)
    vendor = GatedSender()
    sender = ConcurrencyLimitSender(vendor, "ses", limiter)

    refused = 0
    all_refused = asyncio.Event()

    async def one(i: int) -> bool:
        nonlocal refused
        try:
            await sender.send("biz", None, f"user{i}@example.com")
        except Limited:
            refused += 1
            if refused == 45:
                all_refused.set()
            return False
        return True

    tasks = [asyncio.create_task(one(i)) for i in range(50)]
    await all_refused.wait()  # 5 are in the vendor, held there by its gate
    assert len(vendor.started) == 5
    vendor.gate.set()
    assert sum(await asyncio.gather(*tasks)) == 5
    assert len(vendor.sent) == 5
    assert limiter.active("ses") == 0


@pytest.mark.parametrize(
    "step", [SendError("vendor down"), asyncio.CancelledError()], ids=["error", "cancelled"]
)
async def test_concurrency_slot_released_when_the_send_fails(step: BaseException) -> None:
    limiter = ConcurrencyLimiter(1)
    vendor = ScriptedSender([step])
    sender = ConcurrencyLimitSender(vendor, "ses", limiter)
    with pytest.raises(type(step)):
        await sender.send("biz", None, "a@example.com")
    assert limiter.active("ses") == 0
    await sender.send("biz", None, "a@example.com")
    assert len(vendor.sent) == 1


async def test_concurrency_slot_released_when_the_caller_cancels() -> None:
    limiter = ConcurrencyLimiter(1)
    vendor = GatedSender()
    sender = ConcurrencyLimitSender(vendor, "ses", limiter)
    task = asyncio.create_task(sender.send("biz", None, "a@example.com"))
    await vendor.entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.active("ses") == 0


async def test_concurrency_release_failure_after_a_send_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The message went out: raising now would invite a retry and a second copy.
    vendor = MemorySender()
    limiter = BrokenActiveLimiter(on_exit=ConnectionError("redis gone"))
    sender = ConcurrencyLimitSender(vendor, "ses", limiter)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        receipt = await sender.send("biz", None, "a@example.com")
    assert receipt is not None
    assert limiter.released == 1
    assert len(caplog.records) == 1
    assert "failed to release" in caplog.records[0].getMessage()


async def test_concurrency_release_failure_does_not_hide_the_send_error() -> None:
    error = SendError("vendor down")
    limiter = BrokenActiveLimiter(on_exit=ConnectionError("redis gone"))
    sender = ConcurrencyLimitSender(ScriptedSender([error]), "ses", limiter)
    with pytest.raises(SendError) as info:
        await sender.send("biz", None, "a@example.com")
    assert info.value is error


async def test_concurrency_several_keys_hold_a_slot_of_each() -> None:
    def per_recipient(biz: str, args: object, to: tuple[str, ...]) -> Sequence[str]:
        return [f"email:{r}" for r in to]

    limiter = ConcurrencyLimiter(1)
    vendor = GatedSender()
    sender = ConcurrencyLimitSender(vendor, per_recipient, limiter)
    first = asyncio.create_task(sender.send("biz", None, "a@x.org", "b@x.org"))
    await vendor.entered.wait()
    assert (limiter.active("email:a@x.org"), limiter.active("email:b@x.org")) == (1, 1)
    with pytest.raises(Limited) as info:
        await sender.send("biz", None, "c@x.org", "b@x.org")
    assert info.value.key == "email:b@x.org"
    assert limiter.active("email:c@x.org") == 0  # given back when b was full
    vendor.gate.set()
    await first
    assert len(limiter) == 0
    assert len(vendor.sent) == 1


async def test_concurrency_key_function_returning_one_key() -> None:
    calls = 0

    def key(biz: str, args: object, to: tuple[str, ...]) -> str:
        nonlocal calls
        calls += 1
        return f"sms:{biz}"

    limiter = ConcurrencyLimiter(1)
    vendor = MemorySender()
    sender = ConcurrencyLimitSender(vendor, key, limiter)
    await sender.send("login", None, "+1")
    assert calls == 1
    assert len(vendor.sent) == 1
