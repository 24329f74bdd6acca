"""The email message model. SMS arguments are a plain ``Mapping[str, str]``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gocomm.errors import InvalidMessage

__all__ = ["Attachment", "Email"]

_EMPTY: Mapping[str, str] = MappingProxyType({})


def _check_line(what: str, value: str, *, show: bool = True) -> None:
    if "\r" in value or "\n" in value:
        # A custom header may carry a token: its value is never quoted back.
        shown = f" {value!r}" if show else ""
        raise InvalidMessage(
            f"{what}{shown} contains CR or LF, which could inject headers; remove line breaks"
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
        if self.text is None and self.html is None:
            raise InvalidMessage("an email needs a text or an html body (or both)")
