"""Failover between email vendors through the container: smtp → ses → sendgrid (issue 16).

The same ``Email`` and ``biz`` go to a real aiosmtpd (which refuses some recipients with a 4xx,
or is down), then to FakeSes (failing retryably), then to FakeSendGrid (accepting, with ``biz``
mapped to a dynamic template). Each ``to`` gets the message exactly once: what SMTP delivered
is never offered again, and cc and bcc travel with every attempt (DESIGN §3).
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from gocomm_sendgrid.testing import FakeSendGrid
from gocomm_ses.testing import FakeSes

from gocomm.containers import build_container
from gocomm.messages import Email

TO = ("ada@example.com", "bob@example.com", "cy@example.com")
BUSY = {"bob@example.com", "cy@example.com"}  # the SMTP server answers 451 for these
MESSAGE = Email(
    subject="Reçu n°42",
    text="merci",
    sender="Boutique Ünïcode <shop@example.com>",
    cc=("carol@example.com",),
    bcc=("audit@example.com",),
)


class BusySmtp:
    """aiosmtpd handler: 451 for the BUSY recipients, keeps every message it accepts."""

    def __init__(self) -> None:
        self.delivered: list[tuple[list[str], email.message.EmailMessage]] = []
        self.lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in BUSY:
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        with self.lock:
            self.delivered.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp() -> Iterator[tuple[BusySmtp, int]]:
    handler = BusySmtp()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeSes, FakeSendGrid]]:
    async with FakeSes().serving() as ses, FakeSendGrid().serving() as sendgrid:
        yield ses, sendgrid


def _config(smtp_port: int, ses: FakeSes, sendgrid: FakeSendGrid) -> dict[str, Any]:
    def entry(plugin: str, settings: Any) -> dict[str, Any]:
        values = {
            k: v.get_secret_value() if hasattr(v, "get_secret_value") else v
            for k, v in settings.model_dump(exclude_unset=True).items()
        }
        return {"plugin": plugin, **values}

    return {
        "email": {
            "vendors": [
                {"plugin": "smtp", "host": "127.0.0.1", "port": smtp_port, "tls": "none"},
                entry("ses", ses.settings()),
                entry("sendgrid", sendgrid.settings(templates={"receipt": "d-receipt"})),
            ],
            "failover": {"mode": "error"},
            # A retry over the failover: what was delivered is never sent again.
            "retry": {"max_attempts": 2},
        }
    }


@pytest.mark.parametrize("smtp_state", ["refusing with 451", "down"])
async def test_smtp_then_ses_then_sendgrid_each_to_exactly_once(
    smtp_state: str, smtp: tuple[BusySmtp, int], fakes: tuple[FakeSes, FakeSendGrid]
) -> None:
    handler, port = smtp
    ses, sendgrid = fakes
    if smtp_state == "down":
        port = _free_port()  # nothing listens there
    ses.fail_next("ThrottlingException", 400, retry_after="0")
    container = build_container(_config(port, ses, sendgrid))
    try:
        sender = await container.email.sender()
        receipt = await sender.send("receipt", MESSAGE, *TO)
    finally:
        await container.shutdown_resources()

    assert receipt.vendor == "sendgrid"
    smtp_to = [] if smtp_state == "down" else ["ada@example.com"]
    owed = [a for a in TO if a not in smtp_to]
    # SMTP delivered what it accepted (cc and bcc with it) and nothing else, once.
    assert [rcpt for rcpt, _ in handler.delivered] == (
        [["ada@example.com", "carol@example.com", "audit@example.com"]] if smtp_to else []
    )
    if smtp_to:
        ((_, message),) = handler.delivered
        assert message["Subject"] == "Reçu n°42"
        assert message["From"].addresses[0].display_name == "Boutique Ünïcode"
    # SES was offered only what was still owed, failed retryably, and delivered nothing.
    assert ses.server is not None
    (ses_request,) = ses.server.requests
    assert json.loads(ses_request.body)["Destination"]["ToAddresses"] == owed
    assert ses.deliveries == []
    # SendGrid got the rest, the same Email as its dynamic template, cc and bcc once more.
    (body,) = sendgrid.accepted
    assert [p["to"] for p in body["personalizations"]] == [[{"email": a}] for a in owed]
    assert body["template_id"] == "d-receipt"
    assert body["personalizations"][0]["dynamic_template_data"] == {
        "subject": "Reçu n°42",
        "text": "merci",
    }
    assert body["from"] == {"email": "shop@example.com", "name": "Boutique Ünïcode"}
    # Across every vendor, each `to` received exactly one message.
    delivered_to = [a for rcpt, _ in handler.delivered for a in rcpt if a in TO]
    delivered_to += [d.recipient for d in sendgrid.deliveries if d.recipient in TO]
    assert sorted(delivered_to) == sorted(TO)
