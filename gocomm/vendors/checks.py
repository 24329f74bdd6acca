"""Checks the built-in vendors run on every send, before anything leaves the process.

The development vendors serve both channels, so they tell them apart by the type of ``args``:
an :class:`~gocomm.messages.Email` is email, a ``Mapping[str, str]`` is an SMS's template
parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from gocomm.errors import InvalidMessage, InvalidRecipient
from gocomm.messages import Email
from gocomm.recipients import parse_mailbox, validate_email, validate_phone

__all__ = ["Channel", "channel_of", "check_email_send", "check_sms_send"]

Channel = Literal["email", "sms"]


def channel_of(vendor: str, args: object) -> Channel:
    """``"email"`` for an :class:`Email`, ``"sms"`` for a mapping; anything else is refused."""
    if isinstance(args, Email):
        return "email"
    if isinstance(args, Mapping):
        return "sms"
    raise InvalidMessage(
        f"vendor {vendor!r} sends an Email (email) or a Mapping[str, str] of template "
        f"parameters (SMS), not {type(args).__name__}",
        vendor=vendor,
    )


def _no_recipients(vendor: str) -> InvalidRecipient:
    return InvalidRecipient(
        "no recipients: pass at least one address or number after args", vendor=vendor
    )


def check_email_send(vendor: str, args: Email, to: Sequence[str]) -> tuple[str, ...]:
    """Validate every address of an email (``to``, cc, bcc, reply-to, sender); return ``to``."""
    if not to:
        raise _no_recipients(vendor)
    bare: list[tuple[str, Sequence[str]]] = [("to", to), ("cc", args.cc), ("bcc", args.bcc)]
    # The sender and reply-to may carry a display name ("Shop <shop@example.com>").
    named: list[tuple[str, Sequence[str]]] = [("reply_to", args.reply_to)]
    if args.sender is not None:
        named.append(("sender", (args.sender,)))
    for fields, check in ((bare, validate_email), (named, parse_mailbox)):
        for field, addresses in fields:
            for address in addresses:
                try:
                    check(address)
                except InvalidRecipient as exc:
                    raise InvalidRecipient(f"{field}: {exc}", vendor=vendor) from None
    return tuple(to)


def check_sms_send(
    vendor: str, args: Mapping[object, object], to: Sequence[str]
) -> tuple[str, ...]:
    """Validate template parameters (str to str) and numbers; return the numbers in E.164."""
    if not to:
        raise _no_recipients(vendor)
    for key, value in args.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidMessage(
                f"SMS template parameter {key!r} must map a str to a str, "
                f"got {type(key).__name__} to {type(value).__name__}",
                vendor=vendor,
            )
    numbers = []
    for number in to:
        try:
            numbers.append(validate_phone(number))
        except InvalidRecipient as exc:
            raise InvalidRecipient(str(exc), vendor=vendor) from None
    return tuple(numbers)
