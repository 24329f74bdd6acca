"""The email message model. SMS arguments are a plain ``Mapping[str, str]`` (:func:`sms_params`
checks one)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gocomm.errors import InvalidMessage

__all__ = ["Attachment", "Email", "check_encodable", "email_fields", "sms_params"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


# Every character str.splitlines() ends a line at (CR, LF, VT, FF, FS, GS, RS, NEL, LS, PS) and
# every other C0 control but TAB, plus DEL: each can break or smuggle a header line somewhere
# between here and the recipient's mail reader.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_line(what: str, value: str, *, show: bool = True) -> None:
    # A custom header may carry a token: its value is never quoted back.
    shown = f" {value!r}" if show else ""
    bad = _CONTROL.search(value)
    if bad is not None:
        kind = "CR or LF" if bad.group() in "\r\n" else f"control character {bad.group()!r}"
        raise InvalidMessage(
            f"{what}{shown} contains {kind}, which could break or inject header lines;"
            " remove line breaks and control characters"
        )
    check_encodable(f"{what}{shown}", value)


def check_encodable(what: str, value: str, *, vendor: str | None = None) -> None:
    """Raise ``InvalidMessage`` when ``value`` holds a lone surrogate (half of a pair, no
    character): no encoding, mail or JSON, can carry it. Only the bad code point is shown."""
    bad = _SURROGATE.search(value)
    if bad is not None:
        raise InvalidMessage(
            f"{what} holds {bad.group()!r} at position {bad.start()}, a lone surrogate (half of "
            "a pair, no character) that cannot be encoded for sending; decode the text properly "
            "(errors='replace' if it comes from outside)",
            vendor=vendor,
        )


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file attached to an email; ``content_id`` makes it inline (``cid:``)."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"
    content_id: str | None = None

    def __post_init__(self) -> None:
        _check_line("attachment filename", self.filename)
        _check_line("attachment content type", self.content_type)
        if self.content_type.count("/") != 1:
            raise InvalidMessage(
                f"attachment content type {self.content_type!r} is not of the form type/subtype"
            )
        if self.content_id is not None:
            _check_line("attachment content id", self.content_id)
        if not isinstance(self.content, bytes | bytearray | memoryview):
            raise InvalidMessage(f"attachment {self.filename!r}: content must be bytes")


@dataclass(frozen=True, slots=True)
class Email:
    """An email; the recipients of ``to`` are the arguments of ``send``.

    ``cc`` and ``bcc`` travel with every attempt; ``bcc`` never appears in a header.
    """

    subject: str
    text: str | None = None
    html: str | None = None
    sender: str | None = None
    reply_to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    attachments: tuple[Attachment, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists (and a lone string) for the address fields, store tuples.
        for name in ("reply_to", "cc", "bcc", "attachments"):
            value: Iterable[object] = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))
        _check_line("subject", self.subject)
        if self.sender is not None:
            _check_line("sender address", self.sender)
        for name in ("reply_to", "cc", "bcc"):
            for addr in getattr(self, name):
                _check_line(f"{name} address", addr)
        for key, value in self.headers.items():
            _check_line("header name", key)
            _check_line(f"value of header {key!r}", value, show=False)
            if not key or ":" in key or " " in key:
                raise InvalidMessage(f"header name {key!r} is not a valid field name")
        for name in ("text", "html"):
            body = getattr(self, name)
            if body is not None:
                check_encodable(f"{name} body", body)
        if self.text is None and self.html is None:
            raise InvalidMessage("an email needs a text or an html body (or both)")


def sms_params(
    args: object, *, where: str = "SMS args", vendor: str | None = None
) -> dict[str, str]:
    """``args`` of an SMS send as a dict of template parameters, each a str name to a str value;
    ``InvalidMessage`` (starting with ``where``) otherwise."""
    if not isinstance(args, Mapping):
        raise InvalidMessage(
            f"{where} must be a mapping of template parameter names to str values, "
            f"not {type(args).__name__}",
            vendor=vendor,
        )
    params: dict[str, str] = {}
    for name, value in args.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidMessage(
                f"{where}: parameter {name!r} must map a str name to a str value, not "
                f"{type(name).__name__} to {type(value).__name__}; convert numbers with str()",
                vendor=vendor,
            )
        check_encodable(f"{where}: parameter {name!r}", name, vendor=vendor)
        check_encodable(f"{where}: the value of parameter {name!r}", value, vendor=vendor)
        params[name] = value
    return params


def email_fields(email: Email) -> dict[str, Any]:
    """The text fields of ``email`` (not its headers and attachments) as plain JSON data."""
    return {
        "subject": email.subject,
        "text": email.text,
        "html": email.html,
        "sender": email.sender,
        "reply_to": list(email.reply_to),
        "cc": list(email.cc),
        "bcc": list(email.bcc),
    }
