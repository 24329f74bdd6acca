"""SmtpSender against real aiosmtpd servers: delivery, refusals, errors, AUTH, dropped sessions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from gocomm_smtp import SmtpSender

from gocomm.errors import (
    InvalidRecipient,
    PermanentError,
    SendError,
    SendTimeout,
    is_retryable,
)
from gocomm.messages import Email
from gocomm.sender import Receipt
from gocomm.testing.vendor_checks import assert_not_shown, shown_texts

from .conftest import PASSWORD, USERNAME, SmtpTestServer, make_settings

ServerFactory = Callable[..., SmtpTestServer]
EMAIL = Email(subject="Hello", text="Hello there")


async def test_plain_delivery_and_receipt(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    email = Email(subject="Hi", text="Body", cc=("carol@example.com",), bcc=("dan@example.com",))
    async with SmtpSender(make_settings(server)) as sender:
        receipt = await sender.send("ignored-biz", email, "alice@example.com", "bob@example.com")
    [received] = server.recorder.messages
    assert received.mail_from == "app@example.com"
    assert received.rcpt_tos == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dan@example.com",
    ]
    msg = received.message
    assert msg["To"] == "alice@example.com, bob@example.com"
    assert msg["Cc"] == "carol@example.com"
    assert msg["Bcc"] is None and b"dan@example.com" not in received.data
    assert receipt == Receipt(vendor="smtp", message_ids=(msg["Message-ID"],))


async def test_local_hostname_is_the_ehlo_name(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    async with SmtpSender(make_settings(server), local_hostname="client.example.net") as sender:
        await sender.send("b", EMAIL, "a@example.com")
    assert server.recorder.messages[0].helo == "client.example.net"


async def test_bad_input_opens_no_connection(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    async with SmtpSender(make_settings(server)) as sender:
        with pytest.raises(InvalidRecipient, match="Bcc"):
            await sender.send("b", EMAIL, "a@example.com\r\nBcc: evil@example.com")
        with pytest.raises(InvalidRecipient, match="cc"):
            await sender.send("b", Email(subject="s", text="t", cc=("x@",)), "a@example.com")
        assert sender.pool.opened == 0
    assert server.recorder.sessions_made == 0


async def test_partial_refusal_names_exactly_the_refused_to(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    server.behaviour.refuse["bob@example.com"] = "550 5.1.1 no such user"
    async with SmtpSender(make_settings(server)) as sender:
        with pytest.raises(PermanentError) as caught:
            await sender.send("b", EMAIL, "alice@example.com", "bob@example.com", "cy@example.com")
    error = caught.value
    assert error.unsent == ("bob@example.com",)
    assert error.code == "550"
    assert "bob@example.com" in str(error) and "no such user" in str(error)
    [received] = server.recorder.messages  # the others got it, once
    assert received.rcpt_tos == ["alice@example.com", "cy@example.com"]


async def test_partial_temporary_refusal_is_retryable(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    server.behaviour.refuse["bob@example.com"] = "452 4.2.2 mailbox full"
    async with SmtpSender(make_settings(server)) as sender:
        with pytest.raises(SendError) as caught:
            await sender.send("b", EMAIL, "alice@example.com", "bob@example.com")
    assert not isinstance(caught.value, PermanentError) and is_retryable(caught.value)
    assert caught.value.unsent == ("bob@example.com",)
    assert caught.value.code == "452"


async def test_refused_cc_is_reported_on_the_receipt(
    smtp_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server()
    server.behaviour.refuse["carol@example.com"] = "550 5.1.1 unknown"
    email = Email(subject="s", text="t", cc=("Carol <carol@example.com>",))
    with caplog.at_level(logging.WARNING, "gocomm.smtp"):
        async with SmtpSender(make_settings(server)) as sender:
            receipt = await sender.send("b", email, "alice@example.com")
    assert receipt.refused == ("Carol <carol@example.com>",)
    assert server.recorder.messages[0].rcpt_tos == ["alice@example.com"]
    assert "carol@example.com (550)" in caplog.text


async def test_every_to_refused_sends_nothing(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    server.behaviour.refuse.update(
        {"alice@example.com": "550 5.1.1 unknown", "bob@example.com": "550 5.1.1 unknown"}
    )
    email = Email(subject="s", text="t", cc=("carol@example.com",))
    async with SmtpSender(make_settings(server)) as sender:
        with pytest.raises(PermanentError) as caught:
            await sender.send("b", email, "alice@example.com", "bob@example.com")
        assert caught.value.unsent == ("alice@example.com", "bob@example.com")
        assert server.recorder.data_commands == 0  # not even the cc got it
        # A temporary reason for any of them makes the whole error retryable.
        server.behaviour.refuse["bob@example.com"] = "450 4.2.0 try later"
        with pytest.raises(SendError) as caught:
            await sender.send("b", email, "alice@example.com", "bob@example.com")
        assert is_retryable(caught.value) and caught.value.code == "450"
        assert caught.value.unsent == ("alice@example.com", "bob@example.com")
        # The session survived both (RSET) and still delivers.
        await sender.send("b", email, "carol@example.com")
    assert server.recorder.sessions_made == 1
    assert server.recorder.data_commands == 1


@pytest.mark.parametrize(
    ("reply", "permanent"), [("451 4.3.0 try again later", False), ("550 5.7.1 rejected", True)]
)
async def test_data_replies_are_classified(
    smtp_server: ServerFactory, reply: str, permanent: bool
) -> None:
    server = smtp_server()
    server.behaviour.data_replies.append(reply)
    async with SmtpSender(make_settings(server)) as sender:
        with pytest.raises(SendError) as caught:
            await sender.send("b", EMAIL, "alice@example.com")
        assert isinstance(caught.value, PermanentError) is permanent
        assert is_retryable(caught.value) is not permanent
        assert caught.value.code == reply[:3] and caught.value.vendor == "smtp"
        assert caught.value.unsent is None
        await sender.send("b", EMAIL, "alice@example.com")  # same session, after RSET
    assert server.recorder.sessions_made == 1
    assert len(server.recorder.messages) == 1


async def test_sender_refused(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    server.behaviour.mail_replies.append("553 5.7.1 sender not allowed")
    async with SmtpSender(make_settings(server)) as sender:
        with pytest.raises(PermanentError, match="553"):
            await sender.send("b", EMAIL, "alice@example.com")


async def test_drop_mid_transfer_is_retryable_and_not_resent(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    async with SmtpSender(make_settings(server)) as sender:
        await sender.send("b", EMAIL, "first@example.com")  # the connection is now pooled
        server.behaviour.drop_in_data = 1
        with pytest.raises(SendError) as caught:
            await sender.send("b", EMAIL, "alice@example.com")
        assert is_retryable(caught.value) and not isinstance(caught.value, PermanentError)
        assert server.recorder.data_commands == 2  # the DATA was not sent again
        await sender.send("b", EMAIL, "alice@example.com")  # a fresh connection
    assert server.recorder.sessions_made == 2
    assert [m.rcpt_tos for m in server.recorder.messages] == [
        ["first@example.com"],
        ["alice@example.com"],
    ]


async def test_reused_connection_closed_with_421_moves_transparently(
    smtp_server: ServerFactory,
) -> None:
    server = smtp_server()
    server.behaviour.close_reused_with_421 = True  # every session sends one message only
    async with SmtpSender(make_settings(server, pool_size=1)) as sender:
        for i in range(3):
            await sender.send("b", EMAIL, f"user{i}@example.com")
    assert server.recorder.sessions_made == 3
    assert len(server.recorder.messages) == 3  # each exactly once
    assert server.recorder.mail_commands == 5  # 3 accepted + 2 answered 421


async def test_stale_detection_also_after_a_failed_transaction(
    smtp_server: ServerFactory,
) -> None:
    server = smtp_server()
    server.behaviour.data_replies.append("451 4.3.0 try later")
    async with SmtpSender(make_settings(server, pool_size=1)) as sender:
        with pytest.raises(SendError):
            await sender.send("b", EMAIL, "a@example.com")  # the session survives (RSET)
        server.behaviour.mail_replies.append("421 4.4.2 closing idle session")
        await sender.send("b", EMAIL, "a@example.com")  # moved to a new session, sent once
    assert server.recorder.sessions_made == 2
    assert [m.session_id for m in server.recorder.messages] == [2]


async def test_server_closing_idle_connections_is_noticed(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    async with SmtpSender(make_settings(server, pool_size=1)) as sender:
        await sender.send("b", EMAIL, "a@example.com")
        server.drop_all()  # like a server restart
        await server.wait_until(lambda r: r.active == 0)
        await asyncio.sleep(0.05)  # let the client's loop see the EOF too
        await sender.send("b", EMAIL, "b@example.com")
    assert server.recorder.sessions_made == 2
    assert server.recorder.mail_commands == 2  # noticed before MAIL: nothing was retried
    assert len(server.recorder.messages) == 2


async def test_a_fresh_connection_failing_is_an_error(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    server.behaviour.mail_replies.append("421 4.3.2 shutting down")
    async with SmtpSender(make_settings(server)) as sender:
        with pytest.raises(SendError) as caught:
            await sender.send("b", EMAIL, "a@example.com")
    assert caught.value.code == "421" and is_retryable(caught.value)
    assert server.recorder.messages == []


async def test_connection_refused_is_retryable() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = make_settings_for_port(port)
    async with SmtpSender(settings) as sender:
        with pytest.raises(SendError) as caught:
            await sender.send("b", EMAIL, "a@example.com")
    assert is_retryable(caught.value) and not isinstance(caught.value, PermanentError)
    assert f"127.0.0.1:{port}" in str(caught.value)


async def test_timeout_is_send_timeout(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    server.behaviour.data_delay = 2.0
    async with SmtpSender(make_settings(server, timeout=0.2)) as sender:
        with pytest.raises(SendTimeout) as caught:
            await sender.send("b", EMAIL, "a@example.com")
    assert isinstance(caught.value, TimeoutError) and is_retryable(caught.value)


async def test_timeout_bounds_each_command_not_the_whole_transaction(
    smtp_server: ServerFactory,
) -> None:
    server = smtp_server()
    # MAIL, two RCPTs and DATA take 0.4 s each: 1.6 s in all, each well within 1 s.
    server.behaviour.command_delay = server.behaviour.data_delay = 0.4
    async with SmtpSender(make_settings(server, timeout=1.0)) as sender:
        await sender.send("b", EMAIL, "a@example.com", "b@example.com")
    assert [m.rcpt_tos for m in server.recorder.messages] == [["a@example.com", "b@example.com"]]


async def test_a_command_past_the_timeout_is_send_timeout_and_drops_the_session(
    smtp_server: ServerFactory,
) -> None:
    server = smtp_server()
    async with SmtpSender(make_settings(server, timeout=0.2)) as sender:
        await sender.send("b", EMAIL, "a@example.com")
        server.behaviour.command_delay = 2.0
        with pytest.raises(SendTimeout, match=r"did not reply within 0\.2 s") as caught:
            await sender.send("b", EMAIL, "b@example.com")
        assert is_retryable(caught.value)
        assert sender.pool.open_connections == 0  # its reply may still come: never reused
        server.behaviour.command_delay = 0
        await sender.send("b", EMAIL, "c@example.com")
    assert [m.rcpt_tos for m in server.recorder.messages] == [["a@example.com"], ["c@example.com"]]


async def test_cancellation_propagates_and_frees_the_slot(smtp_server: ServerFactory) -> None:
    server = smtp_server()
    server.behaviour.data_delay = 5.0
    async with SmtpSender(make_settings(server, pool_size=1)) as sender:
        task = asyncio.create_task(sender.send("b", EMAIL, "a@example.com"))
        await server.wait_until(lambda r: r.data_commands == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sender.pool.open_connections == 0  # a session in an unknown state is dropped
        server.behaviour.data_delay = 0
        await sender.send("b", EMAIL, "b@example.com")  # the only slot was given back
    assert [m.rcpt_tos for m in server.recorder.messages][-1] == ["b@example.com"]


async def test_auth_over_plaintext_when_tls_none(smtp_server: ServerFactory) -> None:
    server = smtp_server(auth=True, auth_require_tls=False)
    settings = make_settings(server, username=USERNAME, password=PASSWORD)
    async with SmtpSender(settings) as sender:
        await sender.send("b", EMAIL, "a@example.com")
    assert [(login, pw) for _, login, pw in server.recorder.auth] == [(USERNAME, PASSWORD)]


async def test_bad_credentials_are_permanent_and_secret(
    smtp_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = smtp_server(auth=True, auth_require_tls=False)
    wrong = "wrong-Pa55word"
    settings = make_settings(server, username=USERNAME, password=wrong)
    caplog.set_level(logging.DEBUG)
    async with SmtpSender(settings) as sender:
        with pytest.raises(PermanentError) as caught:
            await sender.send("b", EMAIL, "a@example.com")
        assert caught.value.code == "535"
        texts = shown_texts(caught.value, sender, settings, caplog)
    assert server.recorder.auth and server.recorder.auth[0][2] == wrong  # it did arrive
    assert_not_shown(texts, wrong, PASSWORD)
    assert server.recorder.messages == []


def make_settings_for_port(port: int) -> object:
    from gocomm_smtp import SmtpSettings

    return SmtpSettings(host="127.0.0.1", port=port, tls="none", sender="a@example.com", timeout=5)
