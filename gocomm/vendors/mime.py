"""Turn an :class:`~gocomm.messages.Email` into a standard library ``EmailMessage``."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from gocomm.errors import InvalidMessage
from gocomm.messages import Email

__all__ = ["build_mime"]


def build_mime(
    email: Email,
    to: Sequence[str],
    *,
    default_sender: str = "gocomm@localhost",
    vendor: str | None = None,
) -> EmailMessage:
    """The MIME message for ``email`` to ``to``: text and/or HTML, attachments, cc and
    reply-to headers. Bcc stays out of the headers (it belongs to the envelope only).

    The Message-ID's domain is the sender's, so no DNS lookup of the host name happens.
    """
    sender = email.sender or default_sender
    message = EmailMessage()
    try:
        message["From"] = sender
        message["To"] = ", ".join(to)
        if email.cc:
            message["Cc"] = ", ".join(email.cc)
        if email.reply_to:
            message["Reply-To"] = ", ".join(email.reply_to)
        message["Subject"] = email.subject
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
        for name, value in email.headers.items():
            message[name] = value
        if email.text is not None:
            message.set_content(email.text)
            if email.html is not None:
                message.add_alternative(email.html, subtype="html")
        elif email.html is not None:
            message.set_content(email.html, subtype="html")
        for attachment in email.attachments:
            maintype, _, subtype = attachment.content_type.partition("/")
            message.add_attachment(
                bytes(attachment.content),
                maintype=maintype,
                subtype=subtype,
                filename=attachment.filename,
                disposition="inline" if attachment.content_id else "attachment",
                cid=f"<{attachment.content_id}>" if attachment.content_id else None,
            )
    except (ValueError, TypeError) as exc:  # the email package refuses a malformed header
        raise InvalidMessage(f"cannot build the email: {exc}", vendor=vendor) from exc
    return message
