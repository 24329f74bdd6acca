"""Recipient checks that every vendor runs before any network call, and
:class:`ValidatingSender`, the stage that runs them once at the start of every stack."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from gocomm.channels import CHANNELS, Channel
from gocomm.errors import InvalidRecipient
from gocomm.events import _listeners, observe_send
from gocomm.messages import Email
from gocomm.sender import AsyncCloseable, Receipt, Sender, aclose_all, vendor_name

__all__ = [
    "Channel",
    "ValidatingSender",
    "parse_mailbox",
    "validate_email",
    "validate_phone",
    "validate_recipients",
]


_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_PHONE_SEPARATORS = str.maketrans("", "", " -.()")
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_MAILBOX = re.compile(r"\s*(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]*)>\s*")


def validate_email(addr: str) -> str:
    """Return the bare address ``addr`` if it is a valid email address, else raise.

    Raises :class:`~gocomm.errors.InvalidRecipient` naming the value for anything that is not
    ``local@domain`` (display names, CR/LF, spaces and other control characters included).
    """
    if not isinstance(addr, str):
        raise InvalidRecipient(f"email address must be a str, got {type(addr).__name__}")
    hint = "give a bare address such as alice@example.com"
    if any(c in addr for c in "\r\n\0") or any(ord(c) < 32 or c == "\x7f" for c in addr):
        raise InvalidRecipient(f"invalid email address {addr!r}: control characters; {hint}")
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise InvalidRecipient(f"invalid email address {addr!r}: no local@domain; {hint}")
    if len(local) > 64 or len(addr) > 254:
        raise InvalidRecipient(f"invalid email address {addr!r}: too long; {hint}")
    if not _LOCAL.fullmatch(local) or local.startswith(".") or ".." in local or local.endswith("."):
        raise InvalidRecipient(f"invalid email address {addr!r}: bad local part; {hint}")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidRecipient(f"invalid email address {addr!r}: bad domain; {hint}") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidRecipient(f"invalid email address {addr!r}: bad domain; {hint}")
    return addr


def validate_phone(number: str) -> str:
    """Return ``number`` in E.164 form (``+`` country code and subscriber, at most 15 digits).

    Spaces, dots, hyphens and parentheses are dropped; anything else that is not E.164 raises
    :class:`~gocomm.errors.InvalidRecipient` naming the value.
    """
    if not isinstance(number, str):
        raise InvalidRecipient(f"phone number must be a str, got {type(number).__name__}")
    compact = number.strip().translate(_PHONE_SEPARATORS)
    if not _E164.fullmatch(compact):
        raise InvalidRecipient(
            f"invalid phone number {number!r}: expected E.164, a '+', the country code and "
            "the number, at most 15 digits (e.g. +8613800138000)"
        )
    return compact


def validate_recipients(
    channel: Channel, args: object, to: Sequence[str], *, vendor: str | None = None
) -> tuple[str, ...]:
    """Every recipient of one send on ``channel``, validated; returns ``to`` normalised.

    SMS numbers come back in E.164 form. For an :class:`~gocomm.messages.Email` the cc, bcc,
    reply-to and sender addresses are checked too. No recipient at all, or any bad one, raises
    :class:`~gocomm.errors.InvalidRecipient` naming the field and the value (``vendor`` is
    set on the error when a vendor refuses).
    """
    if not to:
        raise InvalidRecipient(
            "no recipients: pass at least one address or number after args", vendor=vendor
        )
    if channel == "sms":
        numbers = []
        for number in to:
            try:
                numbers.append(validate_phone(number))
            except InvalidRecipient as exc:
                raise InvalidRecipient(str(exc), vendor=vendor) from None
        return tuple(numbers)
    if channel != "email":
        raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
    bare: list[tuple[str, Sequence[str]]] = [("to", to)]
    # The sender and reply-to may carry a display name ("Shop <shop@example.com>").
    named: list[tuple[str, Sequence[str]]] = []
    if isinstance(args, Email):
        bare += [("cc", args.cc), ("bcc", args.bcc)]
        named.append(("reply_to", args.reply_to))
        if args.sender is not None:
            named.append(("sender", (args.sender,)))
    checks: tuple[tuple[list[tuple[str, Sequence[str]]], Callable[[str], object]], ...] = (
        (bare, validate_email),
        (named, parse_mailbox),
    )
    for fields, check in checks:
        for field, addresses in fields:
            for address in addresses:
                try:
                    check(address)
                except InvalidRecipient as exc:
                    raise InvalidRecipient(f"{field}: {exc}", vendor=vendor) from None
    return tuple(to)


class ValidatingSender(AsyncCloseable):
    """Validates and normalises every recipient with ``channel``'s validator, then sends.

    The first stage of every stack the container builds: a bad number is refused once, with
    :class:`~gocomm.errors.InvalidRecipient`, before any limiter takes quota, any retry waits
    or any vendor (a second one through failover) sees it. ``sender`` gets the recipients
    normalised (phone numbers in E.164). Closing it closes ``sender``.
    """

    def __init__(self, sender: Sender[Any], channel: Channel) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}, got {channel!r}")
        self.sender = sender
        self.channel: Channel = channel

    @property
    def name(self) -> str:
        """The inner sender's name, so that logs name the vendor, not this stage."""
        return vendor_name(self.sender)

    async def send(self, biz: str, args: Any, *to: str) -> Receipt | None:
        if _listeners:  # the whole send is one SendFinished event (gocomm.events)
            return await observe_send(self.channel, biz, len(to), self._send(biz, args, to))
        recipients = validate_recipients(self.channel, args, to)
        return await self.sender.send(biz, args, *recipients)

    async def _send(self, biz: str, args: Any, to: tuple[str, ...]) -> Receipt | None:
        recipients = validate_recipients(self.channel, args, to)
        return await self.sender.send(biz, args, *recipients)

    async def _aclose(self) -> None:
        await aclose_all(self.sender)

    def __repr__(self) -> str:
        return f"ValidatingSender({self.sender!r}, {self.channel!r})"


def parse_mailbox(value: str) -> tuple[str, str]:
    """Split a sender or reply-to (``shop@example.com`` or ``Shop Ünïcode <shop@example.com>``)
    into its display name (``""`` when none; surrounding quotes removed) and bare address.

    The address part is checked with :func:`validate_email`; raises
    :class:`~gocomm.errors.InvalidRecipient` naming the value. Only ``Email.sender`` and
    ``Email.reply_to`` take display names; ``to``, ``cc`` and ``bcc`` stay bare addresses.
    """
    if not isinstance(value, str):
        raise InvalidRecipient(f"email address must be a str, got {type(value).__name__}")
    match = _MAILBOX.fullmatch(value)
    if match is None:
        return "", validate_email(value)
    name = match["name"]
    if any(ord(c) < 32 or c == "\x7f" or c in "\u0085\u2028\u2029" for c in name):
        raise InvalidRecipient(
            f"invalid mailbox {value!r}: control characters in the display name; remove them"
        )
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1]
    return name, validate_email(match["addr"])
