"""An RFC 5322 / MIME message from a checked :class:`~gocomm.httpemail.EmailRequest`, for the
HTTP vendors that take raw MIME (Amazon SES ``Raw`` content).

Headers are written as given after RFC 2047 encoding of whatever is not ASCII (``compat32``
messages write header values verbatim), so a subject or display name mixing ASCII and
non-ASCII words decodes back exactly on every supported Python: the ``email`` package's modern
folding drops the space between such words on Python 3.11 and 3.12.

Structure: ``multipart/mixed`` (attachments) around ``multipart/related`` (inline parts, those
with a ``content_id``) around ``multipart/alternative`` (text and html); each level only when
needed. Bcc never appears in a header.
"""

from __future__ import annotations

from collections.abc import Iterable
from email import encoders
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from gocomm.messages import Attachment

if TYPE_CHECKING:
    from gocomm.httpemail import EmailRequest

__all__ = ["build_message", "encode_header", "encode_mailbox"]

_POLICY = compat32.clone(linesep="\r\n", max_line_length=78)


def encode_header(value: str) -> str:
    """``value`` as header text: as it is when ASCII, else RFC 2047 encoded words (UTF-8)."""
    if value.isascii():
        return value
    return Header(value, "utf-8", maxlinelen=76).encode(linesep="\r\n")


def encode_mailbox(name: str, address: str) -> str:
    """``Name <address>`` with the name quoted or encoded as needed; the bare address alone."""
    if not name:
        return address
    if name.isascii():
        specials = set('()<>[]:;@\\,."')
        if any(c in specials for c in name):
            escaped = name.replace("\\", "\\\\").replace('"', '\\"')
            return f'"{escaped}" <{address}>'
        return f"{name} <{address}>"
    return f"{encode_header(name)} <{address}>"


def _part(attachment: Attachment) -> MIMEBase:
    maintype, _, subtype = attachment.content_type.partition("/")
    part = MIMENonMultipart(maintype, subtype)
    part.set_payload(bytes(attachment.content))
    encoders.encode_base64(part)  # any bytes, any line length
    disposition = "inline" if attachment.content_id else "attachment"
    filename: str | tuple[str, str, str] = attachment.filename
    if not attachment.filename.isascii():
        filename = ("utf-8", "", attachment.filename)
    part.add_header("Content-Disposition", disposition, filename=filename)
    if attachment.content_id:
        part.add_header("Content-ID", f"<{attachment.content_id}>")
    result: MIMEBase = part
    return result


def _wrap(subtype: str, parts: Iterable[MIMEBase]) -> MIMEBase:
    parts = list(parts)
    if len(parts) == 1:
        return parts[0]
    container = MIMEMultipart(subtype)
    for part in parts:
        container.attach(part)
    return container


def build_message(request: EmailRequest) -> bytes:
    """The message bytes (CRLF line ends) for ``request``."""
    email = request.email
    bodies: list[MIMEBase] = []
    if email.text is not None or email.html is None:
        bodies.append(MIMEText(email.text or "", "plain", "utf-8"))
    if email.html is not None:
        bodies.append(MIMEText(email.html, "html", "utf-8"))
    inline = [_part(a) for a in email.attachments if a.content_id]
    attached = [_part(a) for a in email.attachments if not a.content_id]
    root = _wrap("alternative", bodies)
    if inline:
        root = _wrap("related", [root, *inline])
    if attached:
        root = _wrap("mixed", [root, *attached])

    root["From"] = encode_mailbox(*request.sender)
    root["To"] = ", ".join(request.to)
    if request.cc:
        root["Cc"] = ", ".join(request.cc)
    if request.reply_to:
        root["Reply-To"] = ", ".join(encode_mailbox(*r) for r in request.reply_to)
    root["Subject"] = encode_header(email.subject)
    root["Date"] = formatdate(localtime=False, usegmt=True)
    root["Message-ID"] = make_msgid(domain=request.sender[1].rpartition("@")[2])
    for name, value in email.headers.items():
        root[name] = encode_header(value)
    if "MIME-Version" not in root:
        root["MIME-Version"] = "1.0"
    return root.as_bytes(policy=_POLICY)
