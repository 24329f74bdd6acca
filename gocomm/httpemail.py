"""The base of the HTTP email vendors (SES, SendGrid, Mailgun, Postmark, Resend).

:class:`HttpEmailVendor` does what every one of them must do the same way before a request:
it checks that ``args`` is an :class:`~gocomm.messages.Email`, validates every address (``to``,
``cc`` and ``bcc`` bare; the sender and reply-to may carry a display name), fills the sender
from the vendor's ``sender`` setting, enforces the vendor's documented limits (recipients per
request, message size, header names it refuses) with an :class:`~gocomm.errors.InvalidMessage`
naming the limit, and resolves ``biz``: a vendor template id where ``templates`` maps it, else
the Email's own subject and bodies. A subclass maps the checked :class:`EmailRequest` onto its
wire format in :meth:`HttpEmailVendor._send_request`.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from gocomm.errors import InvalidMessage, InvalidRecipient
from gocomm.httpvendor import HttpVendor, HttpVendorSettings
from gocomm.messages import Email
from gocomm.mime import MANAGED_HEADERS
from gocomm.recipients import parse_mailbox, validate_email
from gocomm.sender import Receipt

__all__ = ["EmailRequest", "HttpEmailSettings", "HttpEmailVendor", "format_mailbox"]


class HttpEmailSettings(HttpVendorSettings):
    """Settings every HTTP email vendor has beyond the endpoint and timeouts."""

    sender: str | None = Field(
        default=None,
        description="default From (a bare address or 'Name <address>') when Email.sender is unset",
    )
    templates: dict[str, str] = Field(
        default_factory=dict,
        description="biz to the vendor's template id; an unmapped biz sends the Email as it is",
    )

    def vendor_options(self) -> dict[str, Any]:
        """:meth:`HttpVendorSettings.vendor_options` and the default sender and templates."""
        return {**super().vendor_options(), "sender": self.sender, "templates": self.templates}


def format_mailbox(name: str, address: str) -> str:
    """``Name <address>`` for a header or API field, the name RFC 2047-encoded when it is not
    ASCII (as the vendors ask), or the bare address when there is no name."""
    return email.utils.formataddr((name, address), charset="utf-8") if name else address


@dataclass(frozen=True, slots=True)
class EmailRequest:
    """One checked send: what a vendor maps onto its wire format.

    ``sender`` and ``reply_to`` are (display name, address) pairs; ``to``, ``cc`` and ``bcc``
    bare addresses, ``to`` in the caller's order without repeats; ``template`` the vendor's
    template id when ``biz`` is mapped (its variables are the Email's ``subject``, ``text`` and
    ``html``), else None.
    """

    email: Email
    sender: tuple[str, str]
    reply_to: tuple[tuple[str, str], ...]
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    template: str | None

    @property
    def template_data(self) -> dict[str, str]:
        """The variables a mapped template receives."""
        data = {"subject": self.email.subject}
        if self.email.text is not None:
            data["text"] = self.email.text
        if self.email.html is not None:
            data["html"] = self.email.html
        return data


class HttpEmailVendor(HttpVendor):
    """Base of an HTTP email vendor; subclasses set the limits and implement
    :meth:`_send_request` (one request, returning the receipt or raising a ``SendError`` whose
    ``unsent`` and ``refused`` name the addresses of ``to`` not reached)."""

    #: Recipients (to + cc + bcc) one request may carry.
    max_recipients: ClassVar[int] = 50
    #: The largest total size of the attachments, in bytes, before encoding.
    max_attachment_bytes: ClassVar[int] = 10 * 1024 * 1024
    #: Lower-case header names the vendor refuses in ``Email.headers``.
    refused_headers: ClassVar[frozenset[str]] = frozenset()
    #: Lower-case header names written from the Email's fields (as ``gocomm.mime`` writes them).
    managed_headers: ClassVar[frozenset[str]] = frozenset(MANAGED_HEADERS)

    def __init__(
        self,
        *,
        endpoint: str,
        connect_timeout: float,
        read_timeout: float,
        sender: str | None = None,
        templates: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        super().__init__(
            endpoint=endpoint,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            secrets=secrets,
        )
        self.default_sender = sender
        self.templates: Mapping[str, str] = dict(templates or {})

    async def send(self, biz: str, args: Email, *to: str) -> Receipt:
        """Send ``args`` to every address of ``to``; checks everything before any request."""
        request = self.check(biz, args, to)
        return await self._send_request(request)

    async def _send_request(self, request: EmailRequest) -> Receipt:
        raise NotImplementedError

    def check(self, biz: str, args: object, to: tuple[str, ...]) -> EmailRequest:
        """The :class:`EmailRequest` for a send; raises ``InvalidRecipient`` or
        ``InvalidMessage`` (naming the value or the vendor's limit) before any request."""
        if not isinstance(args, Email):
            raise InvalidMessage(
                f"{self.name}: email args must be a gocomm.messages.Email, not "
                f"{type(args).__name__}",
                vendor=self.name,
            )
        if not to:
            raise InvalidRecipient(
                f"{self.name}: no recipient given; pass at least one address", vendor=self.name
            )
        to_list = self._bare("to", to)
        cc = self._bare("cc", args.cc)
        bcc = self._bare("bcc", args.bcc)
        sender_text = args.sender if args.sender is not None else self.default_sender
        if sender_text is None:
            raise InvalidMessage(
                f"{self.name}: no sender: set Email.sender or the vendor's `sender` setting",
                vendor=self.name,
            )
        sender = self._mailbox("sender", sender_text)
        reply_to = tuple(self._mailbox("reply_to", r) for r in args.reply_to)
        self.check_recipient_count(len(dict.fromkeys(to_list)), len(cc), len(bcc))
        size = sum(len(a.content) for a in args.attachments)
        if size > self.max_attachment_bytes:
            raise InvalidMessage(
                f"{self.name}: attachments of {size} bytes; the vendor takes at most "
                f"{self.max_attachment_bytes} bytes: send a link instead",
                vendor=self.name,
            )
        for header in args.headers:
            lowered = header.lower()
            if lowered in self.refused_headers or lowered in self.managed_headers:
                raise InvalidMessage(
                    f"{self.name}: header {header!r} is refused by the vendor or set from the "
                    "Email's fields; remove it from Email.headers",
                    vendor=self.name,
                )
        return EmailRequest(
            email=args,
            sender=sender,
            reply_to=reply_to,
            to=tuple(dict.fromkeys(to_list)),
            cc=tuple(cc),
            bcc=tuple(bcc),
            template=self.templates.get(biz),
        )

    def check_recipient_count(self, to: int, cc: int, bcc: int) -> None:
        """Raise ``InvalidMessage`` when one request cannot carry ``to`` + ``cc`` + ``bcc``
        recipients (:attr:`max_recipients`); a vendor that counts otherwise (one message per
        ``to`` in a batch) overrides it."""
        count = to + cc + bcc
        if count > self.max_recipients:
            raise InvalidMessage(
                f"{self.name}: {count} recipients (to, cc and bcc) in one message; the vendor "
                f"takes at most {self.max_recipients}: split the send",
                vendor=self.name,
            )

    def _bare(self, field: str, addresses: Iterable[str]) -> list[str]:
        checked = []
        for address in addresses:
            try:
                checked.append(validate_email(address))
            except InvalidRecipient as exc:
                raise InvalidRecipient(f"{self.name}: {field}: {exc}", vendor=self.name) from None
        return checked

    def _mailbox(self, field: str, value: str) -> tuple[str, str]:
        try:
            return parse_mailbox(value)
        except InvalidRecipient as exc:
            raise InvalidMessage(f"{self.name}: {field}: {exc}", vendor=self.name) from None
