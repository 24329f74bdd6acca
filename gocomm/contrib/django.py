"""A Django email backend that sends through gocomm's email stack.

In ``settings.py``::

    EMAIL_BACKEND = "gocomm.contrib.django.EmailBackend"
    GOCOMM = {"email": {"vendors": [{"plugin": "smtp", "host": "smtp.example.com"}]}}

``GOCOMM`` is a configuration mapping (the same keys as a YAML file); without it the usual
``GOCOMM_CONFIG`` file and ``GOCOMM_...`` variables apply. One :class:`~gocomm.sync.SyncClient`
per process serves every backend instance (Django makes one per ``send_mail``), so connection
pools and limiters are shared; it is closed when the process exits.
"""

from __future__ import annotations

import atexit
import json
import threading
from collections.abc import Sequence
from email.mime.base import MIMEBase
from typing import Any

from django.conf import settings as django_settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

from gocomm.errors import InvalidMessage, InvalidRecipient
from gocomm.messages import Attachment, Email
from gocomm.sync import SyncClient

__all__ = ["EmailBackend", "to_email"]

#: Headers that Django builds from the message's own fields; gocomm's vendors build them too.
_FIELD_HEADERS = frozenset({"from", "to", "cc", "bcc", "reply-to"})

_lock = threading.Lock()
_clients: dict[str, SyncClient] = {}


def _client() -> SyncClient:
    """The process's client for the current ``settings.GOCOMM`` (built on first use)."""
    config = getattr(django_settings, "GOCOMM", None)
    key = json.dumps(config, sort_keys=True, default=str)
    with _lock:
        client = _clients.get(key)
        if client is None or client.closed:
            client = _clients[key] = SyncClient(config)
        return client


@atexit.register
def _close_clients() -> None:
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


def _text(content: Any, encoding: str | None) -> str:
    return content.decode(encoding or "utf-8") if isinstance(content, bytes) else str(content)


def _attachment(item: MIMEBase | Sequence[Any], encoding: str | None) -> Attachment:
    if isinstance(item, MIMEBase):
        payload = item.get_payload(decode=True)
        content = payload if isinstance(payload, bytes) else str(item.get_payload()).encode()
        content_id = item.get("Content-ID")
        return Attachment(
            filename=item.get_filename() or "attachment",
            content=content,
            content_type=item.get_content_type(),
            content_id=content_id.strip("<>") if content_id else None,
        )
    filename, content, mimetype = item
    if isinstance(content, str):
        content = content.encode(encoding or "utf-8")
    return Attachment(
        filename=filename or "attachment",
        content=bytes(content),
        content_type=mimetype or "application/octet-stream",
    )


def to_email(message: EmailMessage) -> Email:
    """The gocomm :class:`~gocomm.messages.Email` for a Django message (its ``to`` aside).

    The body is the text or the html part by ``content_subtype``; an ``text/html`` alternative
    (``EmailMultiAlternatives``) is the html part. A ``From`` or ``Reply-To`` in the extra
    headers wins over the fields, as in Django; ``To`` and ``Cc`` there are not supported.
    """
    encoding = message.encoding or getattr(django_settings, "DEFAULT_CHARSET", "utf-8")
    text: str | None = None
    html: str | None = None
    body = _text(message.body, encoding)
    if message.content_subtype == "html":
        html = body
    else:
        text = body
    for alternative in getattr(message, "alternatives", ()):
        content, mimetype = alternative[0], alternative[1]
        if mimetype == "text/html" and html is None:
            html = _text(content, encoding)
        elif mimetype == "text/plain" and text is None:
            text = _text(content, encoding)
    headers = {str(k): str(v) for k, v in message.extra_headers.items()}
    lowered = {k.lower(): k for k in headers}
    sender = headers.pop(lowered["from"]) if "from" in lowered else message.from_email
    reply_to: Sequence[str] = message.reply_to
    if "reply-to" in lowered:
        reply_to = [a.strip() for a in headers.pop(lowered["reply-to"]).split(",")]
    for name in list(headers):
        if name.lower() in _FIELD_HEADERS:
            raise InvalidMessage(
                f"header {name!r} in extra_headers is not supported by gocomm; use the "
                "message's to/cc/bcc fields"
            )
    return Email(
        subject=str(message.subject),
        text=text,
        html=html,
        sender=sender or None,
        reply_to=tuple(reply_to),
        cc=tuple(message.cc),
        bcc=tuple(message.bcc),
        headers=headers,
        attachments=tuple(_attachment(item, encoding) for item in message.attachments),
    )


class EmailBackend(BaseEmailBackend):
    """Sends Django messages through gocomm's email channel (see the module docstring)."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        """Send each message; return how many were sent. With ``fail_silently`` a failed
        message is skipped, otherwise its error (a gocomm error) is raised."""
        if not email_messages:
            return 0
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            try:
                if not message.to:
                    raise InvalidRecipient(
                        "gocomm sends to at least one To address; this message has only "
                        "cc/bcc recipients"
                    )
                biz = getattr(message, "template_id", None) or "django"
                _client().send("email", biz, to_email(message), *message.to)
            except Exception:
                if not self.fail_silently:
                    raise
                continue
            sent += 1
        return sent
