"""The test doubles users rely on: MemorySender and ScriptedSender."""

from __future__ import annotations

import asyncio

import pytest

from gocomm import Receipt, Sender, SendError
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
