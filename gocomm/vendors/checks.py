"""Checks the built-in vendors run on every send, before anything leaves the process.

The development vendors serve both channels, so they tell them apart by the type of ``args``:
an :class:`~gocomm.messages.Email` is email, a ``Mapping[str, str]`` is an SMS's template
parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gocomm.channels import Channel
from gocomm.errors import InvalidMessage
from gocomm.messages import Email, sms_params
from gocomm.recipients import validate_recipients

__all__ = ["Channel", "channel_of", "check_email_send", "check_sms_send"]


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


def check_email_send(vendor: str, args: Email, to: Sequence[str]) -> tuple[str, ...]:
    """Validate every address of an email (``to``, cc, bcc, reply-to, sender); return ``to``."""
    return validate_recipients("email", args, to, vendor=vendor)


def check_sms_send(
    vendor: str, args: Mapping[object, object], to: Sequence[str]
) -> tuple[str, ...]:
    """Validate template parameters (str to str) and numbers; return the numbers in E.164."""
    if not to:
        validate_recipients("sms", args, to, vendor=vendor)  # raises: no recipients
    sms_params(args, vendor=vendor)
    return validate_recipients("sms", args, to, vendor=vendor)
