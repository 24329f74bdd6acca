"""Turn a :class:`gocomm.messages.Email` into an RFC 5322 message and its envelope.

The SMTP vendor sends what :func:`build_envelope` writes; the HTTP vendors that take raw MIME
(Amazon SES) send its ``data``. Everything here is pure and runs before any connection is
opened, so bad input never reaches the network: addresses are checked, header names and values
too, and the stdlib ``email`` package (policy SMTP) writes the message, with the Subject and
address headers encoded and folded by :mod:`gocomm.headers`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP, Policy
from email.utils import formatdate, make_msgid
from typing import Any

from gocomm.errors import InvalidMessage, InvalidRecipient
from gocomm.headers import address_header, text_header
from gocomm.messages import Attachment, Email
from gocomm.recipients import parse_mailbox

__all__ = ["MANAGED_HEADERS", "Envelope", "build_envelope", "parse_address"]


class _Header(BaseHeader):
    """The stdlib's header base class, keeping the text it folded last and for which policy.

    Writing a message folds every header object it holds; for the MIME structure headers,
    which :class:`_CachingHeaderRegistry` shares between messages, that is the same work every
    time. Header objects never change after they are made, so the text stays right.
    """

    _folded: tuple[Policy, str] | None = None

    def fold(self, *, policy: Policy) -> str:
        folded = self._folded
        if folded is None or folded[0] is not policy:
            folded = self._folded = (policy, super().fold(policy=policy))
        return folded[1]


#: Headers that ``set_content`` writes with the same few values in every message.
_SHARED_HEADERS = frozenset({"content-type", "content-transfer-encoding", "mime-version"})


class _CachingHeaderRegistry(HeaderRegistry):
    """The stdlib header registry, remembering what it made before.

    ``HeaderRegistry`` builds a new class with ``type()`` for every header it parses, which was
    an eighth of the cost of writing a message; the classes are the same each time, so they
    are kept per header name. And the MIME structure headers that ``set_content`` writes
    (``Content-Type: text/plain; charset="utf-8"``, ``Content-Transfer-Encoding: 7bit``,
    ``MIME-Version: 1.0``) were parsed by the email package's full header parser, again and
    again, for a third of the cost: the few distinct values are parsed once and their
    (immutable) header objects shared, in a bounded LRU cache.
    """

    def __init__(self) -> None:
        super().__init__(base_class=_Header)
        self._classes: dict[str, type[BaseHeader]] = {}
        self._shared = functools.lru_cache(maxsize=64)(super().__call__)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls

    def __call__(self, name: str, value: Any) -> BaseHeader:
        if type(value) is str and name.lower() in _SHARED_HEADERS:
            return self._shared(name, value)
        return super().__call__(name, value)


# Policy SMTP (CRLF line ends) with 7-bit transfer encodings, so non-ASCII bodies are
# quoted-printable or base64 and every server accepts the message, 8BITMIME or not. Headers
# stored raw were folded here already (gocomm.headers): the policy never refolds them.
POLICY = SMTP.clone(
    cte_type="7bit", refold_source="none", header_factory=_CachingHeaderRegistry()
)
#: Headers whose values this module generates (short ASCII): no encoding needed.
_GENERATED = frozenset({"Date", "Message-ID"})


_FIELD_NAME = re.compile(r"[!-9;-~]+")  # printable ASCII except ':' (RFC 5322 ftext)
_CONTENT_ID = re.compile(r"[!-;=?-~]+")  # printable ASCII except '<' and '>'

#: Headers written from the Email's fields (lower case), with the field that sets each;
#: Email.headers may not set them (the SMTP vendor and the HTTP email vendors alike).
MANAGED_HEADERS = {
    "from": "Email.sender or the sender setting",
    "to": "the recipients given to send()",
    "cc": "Email.cc",
    "bcc": "Email.bcc",
    "reply-to": "Email.reply_to",
    "subject": "Email.subject",
    "message-id": "nothing (it is generated)",
    "date": "nothing (it is generated)",
    "mime-version": "nothing (it is generated)",
    "content-type": "Email.text, Email.html and Email.attachments",
    "content-transfer-encoding": "nothing (it is chosen per part)",
    "content-disposition": "Email.attachments",
}


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message ready for SMTP: the envelope sender, the RCPT list and the message bytes.

    ``to``, ``cc`` and ``bcc`` hold the bare (ASCII) addresses used in RCPT, deduplicated
    across the three in that order; ``originals`` maps each back to the address the caller
    gave, so errors name what the caller knows.
    """

    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    originals: Mapping[str, str]
    data: bytes
    message_id: str

    @property
    def recipients(self) -> tuple[str, ...]:
        return self.to + self.cc + self.bcc


def parse_address(value: str, field: str, *, recipient: bool = False) -> Address:
    """Parse ``addr@example.com`` or ``Display Name <addr@example.com>`` into an ``Address``.

    The domain is IDNA-encoded so the envelope stays ASCII. Raises ``InvalidRecipient`` (when
    ``recipient``) or ``InvalidMessage`` naming ``field`` and the value.
    """
    error = InvalidRecipient if recipient else InvalidMessage
    try:
        name, addr = parse_mailbox(value)
    except InvalidRecipient as exc:
        raise error(f"{field}: {exc}") from None
    local, _, domain = addr.rpartition("@")
    ascii_domain = domain.encode("idna").decode("ascii").lower()
    return Address(display_name=name, username=local, domain=ascii_domain)


def _bare(address: Address) -> str:
    return f"{address.username}@{address.domain}"


def _parse_all(values: Iterable[str], field: str, *, recipient: bool) -> list[Address]:
    return [parse_address(v, field, recipient=recipient) for v in values]


def build_envelope(email: object, to: tuple[str, ...], default_sender: str | None) -> Envelope:
    """Check ``email`` and ``to`` and write the message; raise before any network call."""
    if not isinstance(email, Email):
        raise InvalidMessage(
            f"an email vendor sends gocomm.messages.Email, got {type(email).__name__}"
        )
    if not to:
        raise InvalidRecipient("no recipient: give at least one address to send()")
    to_addrs = _parse_all(to, "to", recipient=True)
    cc_addrs = _parse_all(email.cc, "cc", recipient=True)
    bcc_addrs = _parse_all(email.bcc, "bcc", recipient=True)
    reply_to = _parse_all(email.reply_to, "reply_to", recipient=False)
    sender_text = email.sender if email.sender is not None else default_sender
    if sender_text is None:
        raise InvalidMessage(
            "no sender: set Email.sender or the vendor's `sender` setting (the From address)"
        )
    sender = parse_address(sender_text, "sender")

    message_id = make_msgid(domain=sender.domain)  # a domain given: no blocking getfqdn()
    msg = EmailMessage(policy=POLICY)
    _put(msg, "From", [sender])
    _put(msg, "To", to_addrs)
    if cc_addrs:
        _put(msg, "Cc", cc_addrs)
    if reply_to:
        _put(msg, "Reply-To", reply_to)
    _put(msg, "Subject", email.subject)
    _put(msg, "Date", formatdate(usegmt=True))
    _put(msg, "Message-ID", message_id)
    _add_headers(msg, email.headers)
    _add_body(msg, email)

    # Each address gets one RCPT, counted as the first field it appears in.
    originals: dict[str, str] = {}
    seen: set[str] = set()
    groups: list[list[str]] = [[], [], []]
    for group, addrs, given in (
        (groups[0], to_addrs, to),
        (groups[1], cc_addrs, email.cc),
        (groups[2], bcc_addrs, email.bcc),
    ):
        for addr, original in zip(addrs, given, strict=True):
            bare = _bare(addr)
            if bare.lower() not in seen:
                seen.add(bare.lower())
                originals[bare] = original
                group.append(bare)
    try:
        data = msg.as_bytes()
    except (ValueError, TypeError, UnicodeError) as exc:  # e.g. a header the policy refuses
        raise InvalidMessage(f"the email could not be written as MIME: {exc}") from exc
    return Envelope(
        sender=_bare(sender),
        to=tuple(groups[0]),
        cc=tuple(groups[1]),
        bcc=tuple(groups[2]),
        originals=originals,
        data=data,
        message_id=message_id,
    )


def _put(msg: EmailMessage, name: str, value: str | list[Address]) -> None:
    """Set a header this module writes from values it has already checked.

    The value is written here, encoded and folded (see :mod:`gocomm.headers`), and stored
    as it is (``set_raw``): the stdlib folder loses spaces around encoded words on Python
    3.11/3.12, and its parser and folder cost more than the rest of a pooled send.
    """
    if isinstance(value, str):
        msg.set_raw(name, value if name in _GENERATED else text_header(name, value))
    else:
        msg.set_raw(name, address_header(name, value))


def _add_headers(msg: EmailMessage, headers: Mapping[str, str]) -> None:
    for name, value in headers.items():
        if not _FIELD_NAME.fullmatch(name):
            raise InvalidMessage(
                f"header name {name!r} must be printable ASCII without ':' or spaces"
            )
        managed = MANAGED_HEADERS.get(name.lower())
        if managed is not None:
            raise InvalidMessage(
                f"header {name!r} is written from the Email; set it through {managed}"
            )
        # Encoded and folded here: the stdlib folder loses spaces on 3.11/3.12; Email refused
        # control characters and lone surrogates when it was built.
        msg.set_raw(name, text_header(name, value))


def _add_body(msg: EmailMessage, email: Email) -> None:
    if email.text is not None:
        msg.set_content(email.text)
        if email.html is not None:
            msg.add_alternative(email.html, subtype="html")
    elif email.html is not None:
        msg.set_content(email.html, subtype="html")

    inline = [a for a in email.attachments if a.content_id is not None]
    attached = [a for a in email.attachments if a.content_id is None]
    if inline:
        # Inline parts belong next to the HTML that references them (multipart/related);
        # without HTML they are still marked inline with their Content-ID.
        html_part = _html_part(msg)
        for attachment in inline:
            if html_part is not None:
                _add_part(html_part.add_related, attachment, inline=True)
            else:
                _add_part(msg.add_attachment, attachment, inline=True)
    for attachment in attached:
        _add_part(msg.add_attachment, attachment, inline=False)


def _html_part(msg: EmailMessage) -> EmailMessage | None:
    for part in msg.walk():
        if isinstance(part, EmailMessage) and part.get_content_type() == "text/html":
            return part
    return None


def _add_part(add: Callable[..., None], attachment: Attachment, *, inline: bool) -> None:
    maintype, _, subtype = attachment.content_type.partition("/")
    extra: dict[str, str] = {}
    if attachment.content_id is not None:
        cid = attachment.content_id.strip("<>")
        if not _CONTENT_ID.fullmatch(cid):
            raise InvalidMessage(
                f"attachment {attachment.filename!r}: content_id {attachment.content_id!r} must "
                "be printable ASCII without spaces (refer to it as cid:<content_id> in the HTML)"
            )
        extra["cid"] = f"<{cid}>"
    add(
        bytes(attachment.content),
        maintype=maintype,
        subtype=subtype,
        filename=attachment.filename,
        disposition="inline" if inline else "attachment",
        **extra,
    )
