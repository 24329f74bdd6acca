"""gocomm.contrib.django.EmailBackend: Django's mail API through gocomm-smtp to a real aiosmtpd."""

from __future__ import annotations

import email
import email.policy
import os
import socket
import sys
import threading
from collections.abc import Iterator
from email.message import EmailMessage as ParsedMessage
from email.mime.image import MIMEImage
from pathlib import Path
from typing import Any

import django
import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.core import mail
from django.test.utils import override_settings

from gocomm.contrib import django as backend_module
from gocomm.errors import InvalidMessage, InvalidRecipient

sys.path.insert(0, str(Path(__file__).resolve().parent))  # where django_project lives
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")
django.setup()
assert settings.EMAIL_BACKEND == "gocomm.contrib.django.EmailBackend"

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


class Sink:
    """aiosmtpd handler that keeps every delivery (envelope and parsed message)."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, list[str], ParsedMessage]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.deliveries.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, dict[str, Any]]]:
    sink = Sink()
    port = _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    config = {
        "email": {"vendors": [{"plugin": "smtp", "host": "127.0.0.1", "port": port, "tls": "none"}]}
    }
    try:
        with override_settings(GOCOMM=config):
            yield sink, config
    finally:
        backend_module._close_clients()
        controller.stop()


def test_send_mail_arrives_with_the_display_name_sender(smtp_sink: Any) -> None:
    sink, _ = smtp_sink
    sent = mail.send_mail("Votre code ✉️ — naïve café", "code 1234", None, ["alice@example.com"])
    assert sent == 1
    (mail_from, rcpts, message) = sink.deliveries[0]
    assert mail_from == "shop@example.com"
    assert rcpts == ["alice@example.com"]
    assert message["Subject"] == "Votre code ✉️ — naïve café"
    assert message["From"].addresses[0].display_name == "Shop Ünïcode"
    assert message.get_content().strip() == "code 1234"


def test_multi_alternatives_cc_bcc_reply_to_headers_and_attachments(
    smtp_sink: Any, tmp_path: Path
) -> None:
    sink, _ = smtp_sink
    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")
    message = mail.EmailMultiAlternatives(
        subject="Receipt",
        body="plain body",
        from_email="Billing <billing@example.com>",
        to=["alice@example.com"],
        cc=["carol@example.com"],
        bcc=["audit@example.com"],
        reply_to=["Help Desk <help@example.com>"],
        headers={"X-Order": "42"},
    )
    message.attach_alternative("<p>html body</p>", "text/html")
    message.attach("notes.txt", "some notes", "text/plain")
    message.attach_file(str(report))
    logo = MIMEImage(PNG, "png")
    logo.add_header("Content-ID", "<logo>")
    logo.add_header("Content-Disposition", "inline", filename="logo.png")
    message.attach(logo)
    assert message.send() == 1

    (mail_from, rcpts, parsed) = sink.deliveries[0]
    assert mail_from == "billing@example.com"
    assert sorted(rcpts) == ["alice@example.com", "audit@example.com", "carol@example.com"]
    assert "Bcc" not in parsed
    assert parsed["Cc"] == "carol@example.com"
    assert parsed["Reply-To"].addresses[0].display_name == "Help Desk"
    assert parsed["X-Order"] == "42"
    body = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert body is not None and body.get_content().strip() == "plain body"
    assert html is not None and html.get_content().strip() == "<p>html body</p>"
    attachments = {part.get_filename(): part for part in parsed.iter_attachments()}
    assert attachments["notes.txt"].get_content().strip() == "some notes"
    assert attachments["report.csv"].get_content().replace("\r\n", "\n") == "a,b\n1,2\n"
    inline = [p for p in parsed.walk() if p.get("Content-ID") == "<logo>"]
    assert len(inline) == 1
    assert inline[0].get_payload(decode=True) == PNG


def test_send_messages_counts_what_was_sent(smtp_sink: Any) -> None:
    sink, _ = smtp_sink
    messages = [
        mail.EmailMessage("one", "1", None, ["a@example.com"]),
        mail.EmailMessage("nobody", "x", None, []),  # Django skips a message without recipients
        mail.EmailMessage("two", "2", None, ["b@example.com"]),
    ]
    with mail.get_connection() as connection:
        assert connection.send_messages(messages) == 2
    assert [m["Subject"] for _, _, m in sink.deliveries] == ["one", "two"]


def test_errors_raise_and_fail_silently_is_honoured(smtp_sink: Any) -> None:
    sink, _ = smtp_sink
    with pytest.raises(InvalidRecipient, match="not-an-address"):
        mail.send_mail("s", "b", None, ["not-an-address"])
    assert mail.send_mail("s", "b", None, ["not-an-address"], fail_silently=True) == 0
    with pytest.raises(InvalidMessage, match="To"):
        mail.EmailMessage("s", "b", None, ["a@example.com"], headers={"To": "x@example.com"}).send()
    with pytest.raises(InvalidRecipient, match="To address"):
        mail.EmailMessage("s", "b", None, bcc=["a@example.com"]).send()
    assert sink.deliveries == []


def test_one_client_per_process_serves_every_backend_instance(smtp_sink: Any) -> None:
    sink, _ = smtp_sink
    for i in range(5):
        mail.send_mail(f"n{i}", "b", None, ["a@example.com"])  # a new backend each call
    assert len(backend_module._clients) == 1
    assert len(sink.deliveries) == 5


def test_djangos_locmem_outbox_pattern_still_works() -> None:
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        mail.outbox = []
        mail.send_mail("s", "b", None, ["a@example.com"])
        assert len(mail.outbox) == 1
