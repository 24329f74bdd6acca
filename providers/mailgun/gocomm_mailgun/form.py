"""``multipart/form-data`` bodies (RFC 7578), written with the standard library.

Mailgun takes attachments only as file parts of a multipart form, and gocomm's HTTP client
posts bytes with headers, so the vendor writes the body itself: text fields as UTF-8, file
parts with their filename (UTF-8, as browsers write it) and content type.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["FilePart", "encode_multipart"]


@dataclass(frozen=True, slots=True)
class FilePart:
    """A file field: its filename, content type and bytes."""

    filename: str
    content_type: str
    content: bytes


def _quoted(value: str) -> str:
    # As browsers write names and filenames (RFC 7578 §4.2: UTF-8 as it is, no filename*),
    # percent-encoding only what would end the quoted string or the header.
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _disposition(name: str, part: FilePart | None) -> str:
    header = f'Content-Disposition: form-data; name="{_quoted(name)}"'
    if part is not None:
        header += f'; filename="{_quoted(part.filename)}"'
    return header


def encode_multipart(fields: Iterable[tuple[str, str | FilePart]]) -> tuple[bytes, str]:
    """The body and the ``Content-Type`` header (with its boundary) for ``fields``, in order;
    a name may repeat (Mailgun's ``to``, ``attachment``)."""
    boundary = "gocomm-" + secrets.token_hex(16)
    chunks: list[bytes] = []
    for name, value in fields:
        part = value if isinstance(value, FilePart) else None
        head = f"--{boundary}\r\n{_disposition(name, part)}\r\n"
        if part is not None:
            head += f"Content-Type: {part.content_type}\r\n"
            data = part.content
        else:
            assert isinstance(value, str)
            data = value.encode("utf-8")
        chunks += [head.encode("utf-8"), b"\r\n", data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"
