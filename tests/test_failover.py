"""FailoverSender and TimeoutFailoverSender: go-comm's failover tests ported, then new semantics.

go-comm's ``failover/service_test.go`` covers ``normal``, ``svc1_error``, ``all_svc_error`` and
``context_cancel`` against two vendors, index get/set (out of range sets 0) and ``WithLogger``;
``timeout_test.go`` covers ``normal``, ``svc1_timeout``, ``all_svc_timeout``, ``another_error``
and ``svc1_timeout_and_reset_idx`` with threshold 1 over three sends, plus index get/set.
Go's ``context.Canceled`` is ``asyncio.CancelledError`` here and ``DeadlineExceeded`` from a vendor
is a ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from gocomm.errors import (
    AllSendersFailed,
    ConfigError,
    InvalidMessage,
    InvalidRecipient,
    SendError,
    SendTimeout,
)
from gocomm.failover import FailoverSender, TimeoutFailoverSender
from gocomm.sender import Receipt
from gocomm.testing import MemorySender, ScriptedSender, SentMessage

from .conftest import LoopClock


class HeldSender(ScriptedSender):
    """A vendor whose every call waits until the test releases it, then plays its script."""

    def __init__(self, steps: list[Any], *, name: str) -> None:
        super().__init__(steps, name=name)
        self.held: list[asyncio.Event] = []
        self.entered = asyncio.Event()

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        gate = asyncio.Event()
        self.held.append(gate)
        self.entered.set()
        await gate.wait()
        return await super().send(biz, args, *to)


def two(
    err1: BaseException | None = None, err2: BaseException | None = None
) -> tuple[ScriptedSender, ScriptedSender]:
    return (
        ScriptedSender([err1] * 5 if err1 is not None else [], name="svc1"),
        ScriptedSender([err2] * 5 if err2 is not None else [], name="svc2"),
    )


# =========================================================================== FailoverSender
# --------------------------------------------------------------------------- go-comm's cases


async def test_a_healthy_first_vendor_sends_and_the_index_stays() -> None:
    # go-comm: failover/service_test.go, case "normal".
    svc1, svc2 = two()
    sender = FailoverSender([svc1, svc2])
    receipt = await sender.send("login", ["123456"], "13888888888")
    assert receipt is not None
    assert receipt.vendor == "svc1"
    assert sender.current_index == 0
    assert svc2.calls == []


async def test_a_failing_first_vendor_fails_over_and_the_next_send_starts_at_the_second() -> None:
    # go-comm: failover/service_test.go, case "svc1_error".
    svc1, svc2 = two(SendError("simulated svc1 error"))
    sender = FailoverSender([svc1, svc2])
    receipt = await sender.send("login", ["123456"], "13888888888")
    assert receipt is not None
    assert receipt.vendor == "svc2"
    assert sender.current_index == 1
    assert len(svc1.calls) == len(svc2.calls) == 1


async def test_every_vendor_failing_raises_all_senders_failed_in_the_order_tried() -> None:
    # go-comm: failover/service_test.go, case "all_svc_error".
    e1, e2 = SendError("simulated svc1 error"), SendError("simulated svc2 error")
    svc1, svc2 = two(e1, e2)
    sender = FailoverSender([svc1, svc2])
    with pytest.raises(AllSendersFailed) as caught:
        await sender.send("login", ["123456"], "13888888888")
    assert list(caught.value.exceptions) == [e1, e2]
    assert caught.value.unsent == ("13888888888",)
    assert "all 2 senders failed" in str(caught.value)
    assert sender.current_index == 0  # each failure moved it once: 0 -> 1 -> 0


async def test_cancellation_passes_through_and_moves_nothing() -> None:
    # go-comm: failover/service_test.go, case "context_cancel". go-comm advances the index on
    # Canceled; cancellation is not a vendor failure here.
    svc1, svc2 = two(asyncio.CancelledError())
    sender = FailoverSender([svc1, svc2])
    with pytest.raises(asyncio.CancelledError):
        await sender.send("login", ["123456"], "13888888888")
    assert sender.current_index == 0
    assert svc2.calls == []


async def test_caller_deadline_passes_through_and_moves_nothing() -> None:
    svc1 = ScriptedSender([30.0], name="svc1")
    svc2 = MemorySender("svc2")
    sender = FailoverSender([svc1, svc2])
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await sender.send("login", ["123456"], "13888888888")
    assert sender.current_index == 0
    assert svc2.sent == []


async def test_cancelling_the_task_during_a_vendor_call_propagates_and_moves_nothing() -> None:
    svc1 = ScriptedSender([30.0], name="svc1")
    svc2 = MemorySender("svc2")
    sender = FailoverSender([svc1, svc2])
    task = asyncio.create_task(sender.send("login", [], "13888888888"))
    await asyncio.sleep(0)  # the task reaches svc1's call before this resumes
    assert len(svc1.calls) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sender.current_index == 0
    assert svc2.sent == []


@pytest.mark.parametrize("cls", ["error", "timeout"])
def test_the_current_index_reads_back_what_was_set(cls: str) -> None:
    # go-comm: failover/service_test.go and timeout_test.go, index get.
    sender = make(cls, [MemorySender("a"), MemorySender("b")])
    sender.current_index = 1
    assert sender.current_index == 1


@pytest.mark.parametrize("cls", ["error", "timeout"])
@pytest.mark.parametrize(("index", "want"), [(1, 1), (0, 0), (2, 0), (-1, 0), (99, 0)])
def test_an_index_out_of_range_sets_the_first_vendor(cls: str, index: int, want: int) -> None:
    # go-comm: failover/service_test.go and timeout_test.go, index set (out of range sets 0).
    sender = make(cls, [MemorySender("a"), MemorySender("b")])
    sender.current_index = 1 - want  # start elsewhere so the assertion means something
    sender.current_index = index
    assert sender.current_index == want


async def test_send_starts_at_the_index_set() -> None:
    a, b = MemorySender("a"), MemorySender("b")
    sender = FailoverSender([a, b])
    sender.current_index = 1
    receipt = await sender.send("login", {}, "x")
    assert receipt is not None
    assert receipt.vendor == "b"
    assert a.sent == []


@pytest.mark.parametrize("cls", ["error", "timeout"])
async def test_custom_logger_is_used(cls: str, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.failover.custom")
    svc1 = ScriptedSender([TimeoutError("svc1 slow")] * 2, name="svc1")
    sender = make(cls, [svc1, MemorySender("svc2")], logger=logger)
    with caplog.at_level(logging.INFO, logger="test.failover.custom"):
        for _ in range(2):
            with contextlib.suppress(TimeoutError):
                await sender.send("login", {"code": "SECRET-42"}, "13888888888")
    records = [r for r in caplog.records if r.name == "test.failover.custom"]
    assert len(records) == 1
    assert "svc1" in records[0].getMessage()
    assert "svc2" in records[0].getMessage()
    assert "SECRET-42" not in records[0].getMessage()


async def test_default_logger_is_under_gocomm(caplog: pytest.LogCaptureFixture) -> None:
    svc1, svc2 = two(SendError("svc1 down"))
    with caplog.at_level(logging.WARNING, logger="gocomm.failover"):
        await FailoverSender([svc1, svc2]).send("login", {}, "x")
    assert [r.name for r in caplog.records] == ["gocomm.failover"]
    assert "svc1 down" in caplog.records[0].getMessage()


# --------------------------------------------------------------------------- new semantics


async def test_ring_order_from_current_index_errors_in_order_tried() -> None:
    errors = [SendError(f"v{i} down") for i in range(3)]
    vendors = [ScriptedSender([e], name=f"v{i}") for i, e in enumerate(errors)]
    sender = FailoverSender(vendors)
    sender.current_index = 1
    with pytest.raises(AllSendersFailed) as caught:
        await sender.send("login", {}, "x")
    assert list(caught.value.exceptions) == [errors[1], errors[2], errors[0]]
    assert all(len(v.calls) == 1 for v in vendors)
    assert sender.current_index == 1  # moved once per failure, all the way round


@pytest.mark.parametrize(
    "error", [InvalidRecipient("invalid phone number '123'"), InvalidMessage("CR or LF")]
)
async def test_bad_input_fails_over_without_moving_the_index(error: Exception) -> None:
    # Every vendor refuses bad input before the network; that says nothing of their health.
    # Only input errors: the caller gets the input error itself, not AllSendersFailed.
    other = type(error)(f"b also refuses: {error}")
    vendors = [ScriptedSender([error], name="a"), ScriptedSender([other], name="b")]
    sender = FailoverSender(vendors)
    with pytest.raises(type(error)) as caught:
        await sender.send("login", {}, "123")
    assert caught.value is error
    cause = caught.value.__cause__
    assert isinstance(cause, ExceptionGroup) and list(cause.exceptions) == [other]
    assert sender.current_index == 0
    receipt = await sender.send("login", {}, "+15550001111")
    assert receipt is not None
    assert receipt.vendor == "a"


async def test_input_errors_mixed_with_vendor_failures_are_all_senders_failed() -> None:
    refused, down = InvalidRecipient("a cannot reach '+999'"), SendError("b is down")
    sender = FailoverSender([ScriptedSender([refused], name="a"), ScriptedSender([down], name="b")])
    with pytest.raises(AllSendersFailed) as caught:
        await sender.send("login", {}, "+999")
    assert list(caught.value.exceptions) == [refused, down]


async def test_any_exception_including_timeouts_fails_over() -> None:
    vendors: list[Any] = [
        ScriptedSender([TimeoutError("slow")], name="a"),
        ScriptedSender([RuntimeError("bug")], name="b"),
        MemorySender("c"),
    ]
    receipt = await FailoverSender(vendors).send("login", {}, "x")
    assert receipt is not None
    assert receipt.vendor == "c"


async def test_concurrent_failures_do_not_skip_the_healthy_vendor() -> None:
    # go-comm's idx.Add(1) moves the index once per failure: five concurrent failures of
    # vendor 0 of three leave it at 5 % 3 == 2, skipping healthy vendor 1 from then on.
    # Here the index moves once, to vendor 1.
    broken = HeldSender([SendError("down")] * 5, name="broken")
    healthy, spare = MemorySender("healthy"), MemorySender("spare")
    sender = FailoverSender([broken, healthy, spare])
    tasks = [asyncio.create_task(sender.send("login", {}, f"user{i}")) for i in range(5)]
    await asyncio.sleep(0)  # every task is now inside broken.send
    assert len(broken.held) == 5
    for gate in broken.held:
        gate.set()
    receipts = await asyncio.gather(*tasks)
    assert {r.vendor for r in receipts if r is not None} == {"healthy"}
    assert sender.current_index == 1
    receipt = await sender.send("login", {}, "later")
    assert receipt is not None
    assert receipt.vendor == "healthy"
    assert len(healthy.sent) == 6
    assert spare.sent == []


async def test_partial_send_goes_on_only_to_recipients_still_owed() -> None:
    a = ScriptedSender([SendError("y, z failed", unsent=["z", "y"])], name="a")
    b = ScriptedSender([SendError("z failed", unsent=["z"])], name="b")
    c = MemorySender("c")
    receipt = await FailoverSender([a, b, c]).send("login", {}, "x", "y", "z")
    assert receipt is not None
    assert receipt.vendor == "c"
    assert [m.to for m in a.calls] == [("x", "y", "z")]
    assert [m.to for m in b.calls] == [("y", "z")]
    assert c.sent == [SentMessage("login", {}, ("z",))]


async def test_all_failed_names_recipients_still_owed() -> None:
    a = ScriptedSender([SendError("y failed", unsent=["y"])], name="a")
    b = ScriptedSender([SendError("b down")], name="b")
    with pytest.raises(AllSendersFailed) as caught:
        await FailoverSender([a, b]).send("login", {}, "x", "y")
    assert caught.value.unsent == ("y",)
    assert [m.to for m in b.calls] == [("y",)]


async def test_error_with_nobody_unsent_is_a_send() -> None:
    a = ScriptedSender([SendError("odd", unsent=[], vendor="a")], name="a")
    b = MemorySender("b")
    receipt = await FailoverSender([a, b]).send("login", {}, "x")
    assert receipt == Receipt(vendor="a")
    assert b.sent == []


async def test_single_vendor() -> None:
    boom = SendError("down")
    only = ScriptedSender([boom], name="only")
    sender = FailoverSender([only])
    with pytest.raises(AllSendersFailed) as caught:
        await sender.send("login", {}, "x")
    assert list(caught.value.exceptions) == [boom]
    assert sender.current_index == 0


# =========================================================================== TimeoutFailoverSender
# --------------------------------------------------------------------------- go-comm's cases

DEADLINE = TimeoutError("vendor deadline exceeded")


# go-comm: failover/timeout_test.go, cases "normal", "svc1_timeout", "all_svc_timeout" and
# "another_error", each three sends with threshold 1.
@pytest.mark.parametrize(
    ("err1", "err2", "want"),
    [
        pytest.param(None, None, 0, id="no-timeout-stays-on-the-first"),
        pytest.param(DEADLINE, None, 1, id="a-timing-out-first-switches-to-the-second"),
        pytest.param(DEADLINE, DEADLINE, 0, id="both-timing-out-come-round-to-the-first"),
        pytest.param(RuntimeError("another error"), None, 0, id="other-errors-never-switch"),
    ],
)
async def test_the_vendor_switches_after_threshold_timeouts_only(
    err1: BaseException | None, err2: BaseException | None, want: int
) -> None:
    svc1, svc2 = two(err1, err2)
    sender = TimeoutFailoverSender([svc1, svc2], 1)
    for _ in range(3):  # len(svcs) + 1 sends, errors ignored as in go-comm
        # errors ignored as in go-comm: the outcome checked is the index
        with contextlib.suppress(Exception):
            await sender.send("login", [], "13888888888")
    assert sender.current_index == want


async def test_after_a_timeout_switch_the_first_vendor_is_restored_after_restore_after(
    loop_clock: LoopClock,
) -> None:
    # go-comm: failover/timeout_test.go, case "svc1_timeout_and_reset_idx".
    svc1 = ScriptedSender([DEADLINE], name="svc1")  # times out once, then answers again
    svc2 = MemorySender("svc2")
    async with TimeoutFailoverSender([svc1, svc2], 1, restore_after=100) as sender:
        for _ in range(3):
            with contextlib.suppress(TimeoutError):
                await sender.send("login", [], "13888888888")
        assert sender.current_index == 1
        assert len(svc2.sent) == 2
        await loop_clock.advance(99)
        assert sender.current_index == 1
        await loop_clock.advance(2)
        assert sender.current_index == 0
        receipt = await sender.send("login", [], "13888888888")
        assert receipt is not None
        assert receipt.vendor == "svc1"


# --------------------------------------------------------------------------- new semantics


async def test_timeouts_pass_through_and_switch_only_on_the_next_send() -> None:
    svc1, svc2 = two(SendTimeout("svc1 slow"))
    sender = TimeoutFailoverSender([svc1, svc2], 2)
    for _ in range(2):
        with pytest.raises(SendTimeout):
            await sender.send("login", [], "x")
    assert sender.current_index == 0
    assert sender.timeouts == 2
    receipt = await sender.send("login", [], "x")
    assert receipt is not None
    assert receipt.vendor == "svc2"
    assert sender.current_index == 1
    assert sender.timeouts == 0


async def test_success_resets_the_count() -> None:
    svc1 = ScriptedSender([DEADLINE, None, DEADLINE, None], name="svc1")
    sender = TimeoutFailoverSender([svc1, MemorySender("svc2")], 2)
    for step in range(4):
        try:
            await sender.send("login", [], "x")
        except TimeoutError:
            assert step in (0, 2)
    assert sender.current_index == 0
    assert len(svc1.calls) == 4


async def test_other_errors_pass_through_uncounted() -> None:
    boom = SendError("rejected")
    svc1 = ScriptedSender([DEADLINE, boom, DEADLINE], name="svc1")
    sender = TimeoutFailoverSender([svc1, MemorySender("svc2")], 3)
    for _ in range(3):
        with pytest.raises(Exception) as caught:
            await sender.send("login", [], "x")
        assert caught.value in (DEADLINE, boom)
    assert sender.timeouts == 2
    assert sender.current_index == 0


async def test_cancellation_is_never_counted() -> None:
    svc1 = ScriptedSender([asyncio.CancelledError(), 30.0, 30.0], name="svc1")
    sender = TimeoutFailoverSender([svc1, MemorySender("svc2")], 1)
    with pytest.raises(asyncio.CancelledError):
        await sender.send("login", [], "x")
    task = asyncio.create_task(sender.send("login", [], "x"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await sender.send("login", [], "x")
    assert sender.timeouts == 0
    receipt = await sender.send("login", [], "x")
    assert receipt is not None
    assert receipt.vendor == "svc1"


async def test_a_late_timeout_of_a_former_vendor_is_not_counted() -> None:
    # go-comm counts every timeout, so a slow call to the vendor it already left makes it
    # leave the new one too. Here only timeouts of the current vendor count.
    svc1 = HeldSender([DEADLINE, DEADLINE], name="svc1")
    svc2 = MemorySender("svc2")
    sender = TimeoutFailoverSender([svc1, svc2], 1)
    slow = asyncio.create_task(sender.send("login", [], "x"))
    fast = asyncio.create_task(sender.send("login", [], "y"))
    await asyncio.sleep(0)
    assert len(svc1.held) == 2
    svc1.held[1].set()  # "fast" times out first
    with pytest.raises(TimeoutError):
        await fast
    assert sender.timeouts == 1
    assert (await sender.send("login", [], "z")) is not None  # switches to svc2
    assert sender.current_index == 1
    svc1.held[0].set()  # the late timeout of svc1
    with pytest.raises(TimeoutError):
        await slow
    assert sender.timeouts == 0
    await sender.send("login", [], "w")
    assert sender.current_index == 1
    assert [m.to for m in svc2.sent] == [("z",), ("w",)]


async def test_a_success_of_a_former_vendor_does_not_reset_the_count() -> None:
    svc1 = HeldSender([None], name="svc1")
    svc2 = ScriptedSender([DEADLINE], name="svc2")
    sender = TimeoutFailoverSender([svc1, svc2], 1)
    late = asyncio.create_task(sender.send("login", [], "x"))
    await asyncio.sleep(0)
    sender.current_index = 1
    with pytest.raises(TimeoutError):
        await sender.send("login", [], "y")
    assert sender.timeouts == 1
    svc1.held[0].set()
    await late
    assert sender.timeouts == 1  # svc2's timeout still counts


async def test_attempt_timeout_bounds_each_call_and_counts() -> None:
    svc1 = ScriptedSender([30.0], name="svc1")
    sender = TimeoutFailoverSender([svc1, MemorySender("svc2")], 1, attempt_timeout=0.02)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SendTimeout) as caught:
        await sender.send("login", [], "x")
    assert loop.time() - started < 5
    assert caught.value.vendor == "svc1"
    assert "attempt_timeout" in str(caught.value)
    assert sender.timeouts == 1
    receipt = await sender.send("login", [], "x")
    assert receipt is not None
    assert receipt.vendor == "svc2"


async def test_attempt_timeout_does_not_hide_the_callers_deadline() -> None:
    svc1 = ScriptedSender([30.0], name="svc1")
    sender = TimeoutFailoverSender([svc1, MemorySender("svc2")], 1, attempt_timeout=10)
    with pytest.raises(TimeoutError) as caught:
        async with asyncio.timeout(0.02):
            await sender.send("login", [], "x")
    assert not isinstance(caught.value, SendTimeout)
    assert sender.timeouts == 0


async def test_attempt_timeout_does_not_relabel_a_vendors_own_timeout() -> None:
    own = TimeoutError("svc1's own read timeout")
    sender = TimeoutFailoverSender([ScriptedSender([own], name="svc1")], 1, attempt_timeout=10)
    with pytest.raises(TimeoutError) as caught:
        await sender.send("login", [], "x")
    assert caught.value is own  # not "did not answer within attempt_timeout=10s"
    assert sender.timeouts == 1  # and it still counts


async def test_attempt_timeout_leaves_fast_calls_alone() -> None:
    sender = TimeoutFailoverSender([MemorySender("svc1")], 1, attempt_timeout=5)
    receipt = await sender.send("login", [], "x")
    assert receipt is not None
    assert receipt.vendor == "svc1"


async def test_a_newer_switch_replaces_the_pending_restore(loop_clock: LoopClock) -> None:
    vendors = [ScriptedSender([DEADLINE] * 3, name=f"v{i}") for i in range(3)]
    async with TimeoutFailoverSender(vendors, 1, restore_after=10) as sender:
        for _ in range(2):  # v0 times out; the next send switches to v1 and times out
            with pytest.raises(TimeoutError):
                await sender.send("login", [], "x")
        assert sender.current_index == 1
        await loop_clock.advance(6)
        with pytest.raises(TimeoutError):
            await sender.send("login", [], "x")  # switches to v2: the restore is now due at 16
        assert sender.current_index == 2
        await loop_clock.advance(6)  # 12: past the first switch's restore, which must not fire
        assert sender.current_index == 2
        await loop_clock.advance(5)  # 17
        assert sender.current_index == 0


async def test_switch_back_to_vendor_0_cancels_the_pending_restore(loop_clock: LoopClock) -> None:
    vendors = [ScriptedSender([DEADLINE] * 3, name=f"v{i}") for i in range(2)]
    async with TimeoutFailoverSender(vendors, 1, restore_after=10) as sender:
        for _ in range(2):
            with pytest.raises(TimeoutError):
                await sender.send("login", [], "x")
        assert sender.current_index == 1  # a restore is due at 10
        with pytest.raises(TimeoutError):
            await sender.send("login", [], "x")  # wraps round to v0: nothing to restore
        assert sender.current_index == 0
        await loop_clock.advance(5)
        with pytest.raises(TimeoutError):
            await sender.send("login", [], "x")  # back to v1: a restore is due at 15
        assert sender.current_index == 1
        await loop_clock.advance(6)  # 11: the cancelled restore must not have fired
        assert sender.current_index == 1
        await loop_clock.advance(5)  # 16
        assert sender.current_index == 0


async def test_aclose_cancels_the_pending_restore_and_closes_vendors(loop_clock: LoopClock) -> None:
    svc1, svc2 = two(DEADLINE)
    sender = TimeoutFailoverSender([svc1, svc2], 1, restore_after=10)
    with pytest.raises(TimeoutError):
        await sender.send("login", [], "x")
    await sender.send("login", [], "x")  # switches to svc2 and schedules the restore
    assert sender.current_index == 1
    await sender.aclose()
    await sender.aclose()  # idempotent
    assert svc1.closed
    assert svc2.closed
    await loop_clock.advance(20)
    assert sender.current_index == 1  # the restore never fired
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_no_restore_is_scheduled_after_aclose(loop_clock: LoopClock) -> None:
    svc1, svc2 = two(DEADLINE)
    sender = TimeoutFailoverSender([svc1, svc2], 1, restore_after=10)
    with pytest.raises(TimeoutError):
        await sender.send("login", [], "x")
    await sender.aclose()
    await sender.send("login", [], "x")  # a stray send after close still switches...
    assert sender.current_index == 1
    await loop_clock.advance(20)
    assert sender.current_index == 1  # ...but leaves no timer behind


async def test_manual_index_overrides_the_pending_restore(loop_clock: LoopClock) -> None:
    svc1, svc2, svc3 = (ScriptedSender([DEADLINE] * 3, name=f"v{i}") for i in range(3))
    async with TimeoutFailoverSender([svc1, svc2, svc3], 1, restore_after=10) as sender:
        with pytest.raises(TimeoutError):
            await sender.send("login", [], "x")
        with pytest.raises(TimeoutError):
            await sender.send("login", [], "x")  # switches to v1, restore pending
        sender.current_index = 2
        await loop_clock.advance(20)
        assert sender.current_index == 2
        assert sender.timeouts == 0


# =========================================================================== both


def make(cls: str, senders: list[Any], **kwargs: Any) -> Any:
    if cls == "error":
        return FailoverSender(senders, **kwargs)
    return TimeoutFailoverSender(senders, 1, **kwargs)


def test_strategies_build_without_an_event_loop() -> None:
    a, b = MemorySender("a"), MemorySender("b")
    assert FailoverSender([a, b]).senders == (a, b)
    sender = TimeoutFailoverSender([a, b], 3, restore_after=60, attempt_timeout=5)
    assert sender.threshold == 3
    assert "restore_after=60.0" in repr(sender)


@pytest.mark.parametrize("cls", ["error", "timeout"])
async def test_aclose_closes_every_vendor_and_works_as_context_manager(cls: str) -> None:
    a, b = MemorySender("a"), MemorySender("b")
    async with make(cls, [a, b]) as sender:
        await sender.send("login", {}, "x")
    assert a.closed
    assert b.closed
    assert sender.closed
    await sender.aclose()


@pytest.mark.parametrize("cls", ["error", "timeout"])
@pytest.mark.parametrize("senders", [[], "ab", None, [object()]])
def test_bad_senders_are_refused(cls: str, senders: Any) -> None:
    with pytest.raises(ConfigError, match="sender"):
        make(cls, senders)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"threshold": 0}, "threshold"),
        ({"threshold": True}, "threshold"),
        ({"threshold": 1, "restore_after": 0}, "restore_after"),
        ({"threshold": 1, "restore_after": float("inf")}, "restore_after"),
        ({"threshold": 1, "attempt_timeout": -1}, "attempt_timeout"),
        ({"threshold": 1, "attempt_timeout": "5"}, "attempt_timeout"),
    ],
)
def test_timeout_arguments_are_checked(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        TimeoutFailoverSender([MemorySender()], **kwargs)


async def test_a_failed_send_to_nobody_stays_a_failure() -> None:
    a = ScriptedSender([SendError("no recipient given", unsent=[])], name="a")
    b = ScriptedSender([SendError("no recipient given")], name="b")
    with pytest.raises(AllSendersFailed) as caught:
        await FailoverSender([a, b]).send("login", {})
    assert caught.value.unsent is None
    assert len(b.calls) == 1
