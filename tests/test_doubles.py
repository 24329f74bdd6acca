"""The test doubles users rely on: MemorySender and ScriptedSender."""

from __future__ import annotations

import asyncio

import pytest

from gocomm import Email, InvalidMessage, InvalidRecipient, Receipt, Sender, SendError
from gocomm.testing import MemorySender, ScriptedSender


async def test_memory_sender_records() -> None:
    sender = MemorySender()
    assert isinstance(sender, Sender)
    receipt = await sender.send("login", {"code": "1234"}, "+15550001111", "+15550002222")
    assert receipt == Receipt(vendor="memory", message_ids=("memory-1",))
    assert len(sender.sent) == 1
    sent = sender.sent[0]
    assert sent.biz == "login"
    assert sent.args == {"code": "1234"}
    assert sent.to == ("+15550001111", "+15550002222")


async def test_scripted_sender_plays_steps() -> None:
    boom = SendError("vendor down")
    sender = ScriptedSender([boom, TimeoutError, 0.01, None], name="flaky")
    with pytest.raises(SendError) as info:
        await sender.send("b", {}, "+1555")
    assert info.value is boom
    with pytest.raises(TimeoutError):
        await sender.send("b", {}, "+1555")
    receipt = await sender.send("b", {}, "+1555")
    assert receipt.vendor == "flaky"
    await sender.send("b", {}, "+1555")
    await sender.send("b", {}, "+1555")  # past the last step: success
    assert len(sender.calls) == 5
    assert len(sender.sent) == 3


async def test_scripted_sleep_is_cancellable() -> None:
    sender = ScriptedSender([30])
    task = asyncio.create_task(sender.send("b", {}, "+1555"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sender.sent == []


async def test_close_is_idempotent() -> None:
    async with MemorySender() as sender:
        pass
    assert sender.closed
    await sender.aclose()


async def test_a_memory_sender_with_a_channel_refuses_what_vendors_refuse() -> None:
    sms = MemorySender("sms", channel="sms")
    with pytest.raises(InvalidRecipient, match="13800138000") as caught:
        await sms.send("login", {"code": "1"}, "13800138000")
    assert caught.value.vendor == "sms"
    with pytest.raises(InvalidRecipient, match="no recipients"):
        await sms.send("login", {"code": "1"})
    with pytest.raises(InvalidMessage, match="code"):
        await sms.send("login", {"code": 1}, "+8613800138000")
    assert sms.sent == []
    await sms.send("login", {"code": "1"}, "+86 138-0013-8000")
    assert [m.to for m in sms.sent] == [("+8613800138000",)]  # E.164, as vendors send it

    email = MemorySender(channel="email")
    with pytest.raises(InvalidRecipient, match=r"cc: .*broken@"):
        await email.send("hi", Email(subject="s", text="t", cc=("broken@",)), "a@example.com")
    assert email.sent == []
    named = Email(
        subject="s", text="t", sender="Shop <shop@example.com>", reply_to=("Help <h@example.com>",)
    )
    await email.send("hi", named, "a@example.com")  # display names are fine where allowed
    assert len(email.sent) == 1


async def test_both_channels_tell_sends_apart_by_their_args() -> None:
    outbox = MemorySender(channel="both")
    with pytest.raises(InvalidRecipient):
        await outbox.send("login", {"code": "1"}, "a@example.com")  # an address is no number
    with pytest.raises(InvalidRecipient):
        await outbox.send("hi", Email(subject="s", text="t"), "+8613800138000")
    await outbox.send("hi", Email(subject="s", text="t"), "a@example.com")
    await outbox.send("login", {"code": "1"}, "+8613800138000")
    assert len(outbox.sent) == 2
    with pytest.raises(ValueError, match="channel"):
        MemorySender(channel="fax")  # type: ignore[arg-type]


async def test_a_scripted_sender_with_a_channel_refuses_before_playing_a_step() -> None:
    sender = ScriptedSender([SendError("busy")], channel="sms")
    with pytest.raises(InvalidRecipient):
        await sender.send("login", {"code": "1"}, "12345")
    assert sender.calls == []  # refused before the network: no call, no step played
    with pytest.raises(SendError, match="busy"):
        await sender.send("login", {"code": "1"}, "+15550001111")
    receipt = await sender.send("login", {"code": "1"}, "+1 555 000 1111")
    assert receipt.vendor == "scripted"
    assert sender.sent[0].to == ("+15550001111",)
