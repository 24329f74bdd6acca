"""The ``console`` vendor: prints a readable rendering of each message to standard output."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Mapping
from typing import Any, TextIO

from gocomm.messages import Email
from gocomm.registry import VendorSettings
from gocomm.sender import AsyncCloseable, Receipt
from gocomm.vendors.checks import channel_of, check_email_send, check_sms_send

__all__ = ["ConsoleSettings", "ConsoleVendor", "render_email", "render_sms"]

#: Longest body printed; the rest is summarised, so one huge message never stalls the loop.
MAX_BODY_CHARS = 4000
HEADER = "── gocomm console"


class ConsoleSettings(VendorSettings):
    """The console vendor takes no settings."""


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def render_email(biz: str, email: Email, to: tuple[str, ...], message_id: str) -> str:
    """The printed form of an email: headers, the text body, and summaries of the rest."""
    lines = [f"{HEADER} · email · biz={biz} · id={message_id} ──", f"To: {', '.join(to)}"]
    for label, values in (("Cc", email.cc), ("Bcc", email.bcc), ("Reply-To", email.reply_to)):
        if values:
            lines.append(f"{label}: {', '.join(values)}")
    if email.sender:
        lines.append(f"From: {email.sender}")
    lines.append(f"Subject: {email.subject}")
    lines.extend(f"{name}: {value}" for name, value in email.headers.items())
    lines.append("")
    if email.text is not None:
        lines.append(_clip(email.text, MAX_BODY_CHARS))
    if email.html is not None:
        lines.append(f"[html body, {len(email.html)} characters]")
        if email.text is None:
            lines.append(_clip(email.html, MAX_BODY_CHARS))
    for attachment in email.attachments:
        size = len(attachment.content)
        lines.append(f"[attachment {attachment.filename} ({attachment.content_type}, {size} B)]")
    return "\n".join(lines) + "\n\n"


def render_sms(biz: str, params: Mapping[str, str], to: tuple[str, ...], message_id: str) -> str:
    """The printed form of an SMS: the template name and its parameters."""
    lines = [f"{HEADER} · sms · biz={biz} · id={message_id} ──", f"To: {', '.join(to)}"]
    lines.extend(f"{key}: {_clip(value, MAX_BODY_CHARS)}" for key, value in params.items())
    return "\n".join(lines) + "\n\n"


class ConsoleVendor(AsyncCloseable):
    """Prints each message to ``stream`` (standard output by default) and succeeds.

    Each message is one bounded write (bodies are clipped to :data:`MAX_BODY_CHARS`), so
    concurrent sends never interleave and a huge body never blocks the event loop for long.
    Bcc recipients are shown: this is a development vendor, not a transport.
    """

    name = "console"

    def __init__(
        self,
        settings: ConsoleSettings | None = None,
        *,
        stream: TextIO | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self._stream = stream
        self._log = logger or logging.getLogger("gocomm.vendors.console")

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        message_id = f"console-{uuid.uuid4().hex}"
        if channel_of(self.name, args) == "email":
            recipients = check_email_send(self.name, args, to)
            text = render_email(biz, args, recipients, message_id)
        else:
            recipients = check_sms_send(self.name, args, to)
            text = render_sms(biz, args, recipients, message_id)
        # Resolved per send so that redirected or captured stdout is honoured.
        stream = self._stream if self._stream is not None else sys.stdout
        stream.write(text)
        stream.flush()
        self._log.debug("console printed %s for %d recipients", biz, len(recipients))
        return Receipt(vendor=self.name, message_ids=(message_id,))

    def __repr__(self) -> str:
        return "ConsoleVendor()"
