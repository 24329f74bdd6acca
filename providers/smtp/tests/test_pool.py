"""The connection pool, observed from the server: bound, reuse, replacement, closing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from gocomm_smtp import SmtpSender

from gocomm.errors import PermanentError, SendError
from gocomm.messages import Email

from .conftest import SmtpTestServer, make_settings

ServerFactory = Callable[..., SmtpTestServer]
EMAIL = Email(subject="Pooled", text="Pooled message")


async def test_bound_holds_and_connections_are_reused(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    server.behaviour.data_delay = 0.002  # keep sends overlapping on the server
    async with SmtpSender(make_settings(server, pool_size=4, max_messages=1000)) as sender:
        async with asyncio.TaskGroup() as group:
            for i in range(300):
                group.create_task(sender.send("b", EMAIL, f"user{i}@example.com"))
        assert sender.pool.open_connections == 4
    recorder = server.recorder
    assert len(recorder.messages) == 300
    assert sorted(r for m in recorder.messages for r in m.rcpt_tos) == sorted(
        f"user{i}@example.com" for i in range(300)
    )
    assert recorder.max_active == 4  # never more than pool_size at once...
    assert recorder.sessions_made == 4  # ...and those four carried all 300 messages
    assert {m.session_id for m in recorder.messages} == {1, 2, 3, 4}


async def test_sequential_sends_share_one_connection(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    async with SmtpSender(make_settings(server, pool_size=4)) as sender:
        for i in range(10):
            await sender.send("b", EMAIL, f"user{i}@example.com")
    assert server.recorder.sessions_made == 1


async def test_replaced_after_max_messages(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    async with SmtpSender(make_settings(server, pool_size=1, max_messages=3)) as sender:
        for i in range(10):
            await sender.send("b", EMAIL, f"user{i}@example.com")
        assert sender.pool.opened == 4
    recorder = server.recorder
    assert recorder.sessions_made == 4  # 3 + 3 + 3 + 1
    assert [m.session_id for m in recorder.messages] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4]
    assert recorder.quits == 4  # each retired politely, the last one by aclose()
    assert recorder.max_active == 1


async def test_replaced_after_max_refusals(smtp_server: ServerFactory) -> None:
    # Postfix slows a client down after repeated refusals (smtpd_soft_error_limit), then drops
    # it: a connection that collected max_refusals refused transactions is replaced.
    server = smtp_server()
    server.behaviour.refuse = {
        "gone@example.com": "550 5.1.1 no such user",
        "full@example.com": "452 4.2.2 mailbox full",
    }
    sends = [
        ("gone@example.com",),  # every recipient refused (permanent)
        ("ok1@example.com", "full@example.com"),  # one delivered, one refused
        ("full@example.com",),  # every recipient refused (temporary)
        ("ok2@example.com",),  # clean: not counted
        ("gone@example.com",),
        ("ok3@example.com",),
    ]
    async with SmtpSender(make_settings(server, pool_size=1, max_refusals=2)) as sender:
        outcomes = []
        for to in sends:
            try:
                await sender.send("b", EMAIL, *to)
                outcomes.append("sent")
            except SendError as exc:
                outcomes.append(type(exc).__name__)
    assert outcomes == [
        "PermanentError",
        "SendError",
        "SendError",
        "sent",
        "PermanentError",
        "sent",
    ]
    recorder = server.recorder
    assert [(m.rcpt_tos, m.session_id) for m in recorder.messages] == [
        (["ok1@example.com"], 1),  # session 1: two refused transactions, then retired
        (["ok2@example.com"], 2),  # session 2: the third refusal, then clean
        (["ok3@example.com"], 3),  # the fourth refusal retired session 2
    ]
    assert recorder.sessions_made == 3
    assert recorder.quits == 3  # retired politely each time, the last by aclose()


def test_max_refusals_is_a_setting_at_least_one(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    assert make_settings(server).max_refusals == 5
    with pytest.raises(ValueError, match="max_refusals"):
        make_settings(server, max_refusals=0)


async def test_idle_connections_are_closed_and_replaced(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    async with SmtpSender(make_settings(server, pool_size=2, idle_timeout=0.2)) as sender:
        await sender.send("b", EMAIL, "a@example.com")
        assert server.recorder.active == 1
        # The reaper closes it (politely) once idle for 0.2 s; allow far more.
        await server.wait_until(lambda r: r.active == 0 and r.quits == 1, within=5)
        assert sender.pool.open_connections == 0
        await sender.send("b", EMAIL, "b@example.com")
    assert server.recorder.sessions_made == 2


async def test_busy_connections_are_not_reaped(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    async with SmtpSender(make_settings(server, pool_size=1, idle_timeout=2.0)) as sender:
        for i in range(5):  # idle for 0.02 s at a time, far below 2 s
            await sender.send("b", EMAIL, f"u{i}@example.com")
            await asyncio.sleep(0.02)
    assert server.recorder.sessions_made == 1


async def test_a_busy_pool_starts_no_task_per_send(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    loop = asyncio.get_running_loop()
    created: list[Any] = []

    def counting_factory(
        loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
    ) -> asyncio.Task[Any]:
        created.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    async with SmtpSender(make_settings(server, pool_size=1)) as sender:
        await sender.send("b", EMAIL, "first@example.com")  # connects, starts the reaper
        loop.set_task_factory(counting_factory)
        try:
            for i in range(30):  # each send takes the slot the previous one released
                await sender.send("b", EMAIL, f"u{i}@example.com")
        finally:
            loop.set_task_factory(None)
    assert created == []  # the idle reaper lives on while a connection is open
    assert server.recorder.sessions_made == 1


async def test_aclose_closes_every_connection(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    sender = SmtpSender(make_settings(server, pool_size=4))
    server.behaviour.data_delay = 0.01
    async with asyncio.TaskGroup() as group:
        for i in range(20):
            group.create_task(sender.send("b", EMAIL, f"user{i}@example.com"))
    assert server.recorder.active == 4
    await sender.aclose()
    await sender.aclose()  # idempotent
    assert sender.pool.open_connections == 0
    await server.wait_until(lambda r: r.active == 0)
    assert server.recorder.quits == 4
    with pytest.raises(PermanentError, match="closed"):
        await sender.send("b", EMAIL, "late@example.com")


async def test_aclose_fails_waiting_sends(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    server.behaviour.data_delay = 0.3
    sender = SmtpSender(make_settings(server, pool_size=1))
    first = asyncio.create_task(sender.send("b", EMAIL, "first@example.com"))
    waiting = asyncio.create_task(sender.send("b", EMAIL, "second@example.com"))
    await server.wait_until(lambda r: r.data_commands == 1)
    await sender.aclose()
    with pytest.raises(PermanentError, match="closed"):
        await waiting
    with pytest.raises(SendError, match="smtp"):  # its connection was closed under it
        await first
    await server.wait_until(lambda r: r.active == 0)


async def test_cancelled_waiter_does_not_leak_a_slot(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    server.behaviour.data_delay = 0.1
    async with SmtpSender(make_settings(server, pool_size=1)) as sender:
        first = asyncio.create_task(sender.send("b", EMAIL, "first@example.com"))
        waiting = asyncio.create_task(sender.send("b", EMAIL, "second@example.com"))
        await server.wait_until(lambda r: r.data_commands == 1)
        waiting.cancel()
        await first
        with pytest.raises(asyncio.CancelledError):
            await waiting
        server.behaviour.data_delay = 0
        await asyncio.wait_for(sender.send("b", EMAIL, "third@example.com"), 5)
    assert [m.rcpt_tos[0] for m in server.recorder.messages] == [
        "first@example.com",
        "third@example.com",
    ]
