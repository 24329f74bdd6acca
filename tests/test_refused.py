"""``refused`` (DESIGN §3, v3): recipients refused for good are never sent to again.

When a vendor fails some recipients for a retryable reason and refuses others for good, its
error is retryable, ``unsent`` names only the retryable ones and ``refused`` the others. No
strategy (retry, interval retry, failover, timeout failover) sends to a refused recipient
again, and the final error or ``Receipt.refused`` names every one.
"""

from __future__ import annotations

from typing import Any

import pytest

from gocomm.errors import (
    AllSendersFailed,
    CommError,
    InvalidRecipient,
    Limited,
    PermanentError,
    RetryExhausted,
    SendError,
    SendTimeout,
    is_retryable,
    refused_of,
    unsent_of,
)
from gocomm.failover import FailoverSender, TimeoutFailoverSender
from gocomm.retryable import IntervalRetrySender, RetrySender, fixed
from gocomm.sender import Receipt
from gocomm.testing import ScriptedSender


def mixed(unsent: list[str], refused: list[str]) -> SendError:
    """A vendor's answer: ``unsent`` failed for a retryable reason, ``refused`` for good."""
    return SendError("throttled some, refused others", vendor="v", unsent=unsent, refused=refused)


def retry(kind: str, inner: Any, attempts: int = 3) -> Any:
    if kind == "retry":
        return RetrySender(inner, attempts)
    return IntervalRetrySender(inner, attempts, fixed(0.001))


# --------------------------------------------------------------------------- the errors


def test_every_comm_error_takes_refused() -> None:
    assert CommError("x").refused == ()
    assert SendError("x", refused=["a"]).refused == ("a",)
    assert PermanentError("x", refused=("a", "b")).refused == ("a", "b")
    assert Limited("k", refused=["a"]).refused == ("a",)
    assert RetryExhausted(2, SendError("x"), refused=["a"]).refused == ("a",)
    group = AllSendersFailed("all failed", [SendError("x")], unsent=["b"], refused=["a"])
    assert (group.unsent, group.refused) == (("b",), ("a",))


def test_unsent_of_never_owes_a_refused_recipient() -> None:
    # unsent None means "all of to", but never those refused for good.
    assert unsent_of(SendError("x", refused=["b"]), ("a", "b", "c")) == ("a", "c")
    assert unsent_of(SendError("x", unsent=["b", "c"], refused=["b"]), ("a", "b", "c")) == ("c",)
    assert unsent_of(ValueError("foreign"), ("a",)) == ("a",)
    assert refused_of(ValueError("foreign")) == ()


def test_a_mixed_error_is_retryable() -> None:
    assert is_retryable(mixed(["a"], ["b"]))


# --------------------------------------------------------------------------- retry


@pytest.mark.parametrize("kind", ["retry", "interval"])
async def test_retry_never_resends_a_refused_recipient(kind: str) -> None:
    inner = ScriptedSender([mixed(["a"], ["b"])], name="v")
    receipt = await retry(kind, inner).send("login", {}, "a", "b", "c")
    assert [call.to for call in inner.calls] == [("a", "b", "c"), ("a",)]
    assert receipt == Receipt(vendor="v", message_ids=("v-2",), attempts=2, refused=("b",))


@pytest.mark.parametrize("kind", ["retry", "interval"])
async def test_retry_exhausted_names_every_refused_recipient(kind: str) -> None:
    inner = ScriptedSender(
        [mixed(["a", "c"], ["b"]), mixed(["a"], ["c"]), SendTimeout("slow")], name="v"
    )
    with pytest.raises(RetryExhausted) as caught:
        await retry(kind, inner).send("login", {}, "a", "b", "c", "d")
    assert [call.to for call in inner.calls] == [("a", "b", "c", "d"), ("a", "c"), ("a",)]
    assert caught.value.unsent == ("a",)
    assert caught.value.refused == ("b", "c")


@pytest.mark.parametrize("kind", ["retry", "interval"])
async def test_retry_raises_a_permanent_error_with_every_refused_recipient(kind: str) -> None:
    final = PermanentError("template rejected", vendor="v")
    inner = ScriptedSender([mixed(["a"], ["b"]), final], name="v")
    with pytest.raises(PermanentError) as caught:
        await retry(kind, inner).send("login", {}, "a", "b")
    assert caught.value is final
    assert (final.unsent, final.refused) == (("a",), ("b",))


@pytest.mark.parametrize("kind", ["retry", "interval"])
async def test_everyone_refused_is_an_error_not_a_send(kind: str) -> None:
    refusal = InvalidRecipient("both invalid", vendor="v", unsent=[], refused=["a", "b"])
    inner = ScriptedSender([refusal], name="v")
    with pytest.raises(InvalidRecipient) as caught:
        await retry(kind, inner).send("login", {}, "a", "b")
    assert len(inner.calls) == 1
    assert (caught.value.unsent, caught.value.refused) == ((), ("a", "b"))


@pytest.mark.parametrize("kind", ["retry", "interval"])
async def test_refused_over_two_attempts_leaving_nobody_is_an_error(kind: str) -> None:
    last = PermanentError("capped", vendor="v", unsent=[], refused=["a"])
    inner = ScriptedSender([mixed(["a"], ["b"]), last], name="v")
    with pytest.raises(PermanentError) as caught:
        await retry(kind, inner).send("login", {}, "a", "b")
    assert caught.value is last
    assert (last.unsent, last.refused) == ((), ("b", "a"))


@pytest.mark.parametrize("kind", ["retry", "interval"])
async def test_the_others_sent_and_the_rest_refused_is_a_send(kind: str) -> None:
    # a got it on the first call; b is refused on the second: the send went through.
    last = PermanentError("capped", vendor="v", unsent=[], refused=["b"])
    inner = ScriptedSender([SendError("b throttled", unsent=["b"]), last], name="v")
    receipt = await retry(kind, inner).send("login", {}, "a", "b")
    assert receipt == Receipt(vendor="v", attempts=2, refused=("b",))


@pytest.mark.parametrize("kind", ["retry", "interval"])
async def test_a_user_sender_returning_none_still_reports_the_refused(kind: str) -> None:
    class Quiet:
        calls = 0

        async def send(self, biz: str, args: Any, *to: str) -> None:
            self.calls += 1
            if self.calls == 1:
                raise mixed(["a"], ["b"])

    receipt = await retry(kind, Quiet()).send("login", {}, "a", "b")
    assert receipt is not None and receipt.refused == ("b",)


# --------------------------------------------------------------------------- failover


async def test_failover_never_offers_a_refused_recipient_to_the_next_vendor() -> None:
    first = ScriptedSender([mixed(["a"], ["b"])], name="first")
    second = ScriptedSender([], name="second")
    receipt = await FailoverSender([first, second]).send("login", {}, "a", "b", "c")
    assert [call.to for call in second.calls] == [("a",)]
    assert receipt == Receipt(vendor="second", message_ids=("second-1",), refused=("b",))


async def test_all_senders_failed_names_every_refused_recipient() -> None:
    first = ScriptedSender([mixed(["a", "c"], ["b"])], name="first")
    second = ScriptedSender([mixed(["a"], ["c"])], name="second")
    third = ScriptedSender([SendError("down")], name="third")
    with pytest.raises(AllSendersFailed) as caught:
        await FailoverSender([first, second, third]).send("login", {}, "a", "b", "c")
    assert [call.to for call in third.calls] == [("a",)]
    assert (caught.value.unsent, caught.value.refused) == (("a",), ("b", "c"))


async def test_failover_stops_when_everyone_left_is_refused() -> None:
    refusal = InvalidRecipient("invalid", vendor="first", unsent=[], refused=["a"])
    first = ScriptedSender([refusal], name="first")
    second = ScriptedSender([], name="second")
    with pytest.raises(InvalidRecipient) as caught:
        await FailoverSender([first, second]).send("login", {}, "a")
    assert second.calls == []
    assert caught.value.refused == ("a",)


async def test_failover_a_refusal_after_a_partial_send_is_a_send() -> None:
    first = ScriptedSender([SendError("b throttled", unsent=["b"])], name="first")
    capped = PermanentError("capped", vendor="second", unsent=[], refused=["b"])
    second = ScriptedSender([capped], name="second")
    third = ScriptedSender([], name="third")
    receipt = await FailoverSender([first, second, third]).send("login", {}, "a", "b")
    assert third.calls == []
    assert receipt == Receipt(vendor="second", refused=("b",))


async def test_timeout_failover_passes_refused_through() -> None:
    error = mixed(["a"], ["b"])
    inner = ScriptedSender([error], name="v")
    sender = TimeoutFailoverSender([inner], threshold=2)
    with pytest.raises(SendError) as caught:
        await sender.send("login", {}, "a", "b")
    assert caught.value.refused == ("b",)


async def test_retry_around_failover_never_resends_a_refused_recipient() -> None:
    first = ScriptedSender([mixed(["a", "c"], ["b"]), None], name="first")
    second = ScriptedSender([mixed(["a"], ["c"])], name="second")
    sender = RetrySender(FailoverSender([first, second]), 3)
    receipt = await sender.send("login", {}, "a", "b", "c")
    assert [call.to for call in first.calls] == [("a", "b", "c"), ("a",)]
    assert [call.to for call in second.calls] == [("a", "c")]
    assert receipt == Receipt(
        vendor="first", message_ids=("first-2",), attempts=2, refused=("b", "c")
    )
