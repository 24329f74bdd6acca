"""The ``file`` vendor: writes each message into a directory, ``.eml`` for email and ``.json``
for SMS, atomically, so a reader never sees half a file."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gocomm.errors import PermanentError, SendError
from gocomm.messages import Email
from gocomm.mime import build_envelope
from gocomm.registry import VendorSettings
from gocomm.sender import AsyncCloseable, Receipt
from gocomm.vendors.checks import channel_of, check_email_send, check_sms_send

__all__ = ["FileSettings", "FileVendor", "write_atomically"]


class FileSettings(VendorSettings):
    """``directory``: where the messages go; created on the first send if missing."""

    directory: Path


def write_atomically(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` to ``directory/name`` through a temporary file in the same directory
    and ``os.replace``, so the file appears whole or not at all. Blocking: run it in a thread.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        target = directory / name
        os.replace(temp, target)
    except BaseException:
        # Any failure, KeyboardInterrupt included (a caller on the main thread): never leave
        # the temporary file behind.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    return target


def _file_name(suffix: str) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{stamp}-{uuid.uuid4().hex[:16]}{suffix}"


async def _finish_even_if_cancelled(write: Coroutine[Any, Any, None]) -> None:
    """Await ``write``; if the caller is cancelled meanwhile, wait for the write to end first.

    A thread cannot be interrupted, so a write must never outlive the send that started it
    (nobody would own it, and a reader could meet its temporary file). The cancellation
    propagates once the thread is done; the file it wrote stays (at-least-once).
    """
    task = asyncio.ensure_future(write)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])  # a second cancellation ends this wait, not the write
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what the caller asked for
        raise


class FileVendor(AsyncCloseable):
    """Writes each send to one file in ``directory``; the receipt's message id is its name.

    Email becomes an RFC 5322 ``.eml`` (bcc, which never travels in a header, is left out);
    SMS becomes ``.json`` with the biz, the recipients and the template parameters. The file
    I/O runs in a worker thread; a send cancelled while its thread writes waits for the write
    to end before it propagates the cancellation, leaving the (complete) file behind.
    """

    name = "file"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        default_sender: str = "gocomm@localhost.localdomain",
        logger: logging.Logger | None = None,
    ) -> None:
        self.directory = Path(directory)
        self._default_sender = default_sender
        self._log = logger or logging.getLogger("gocomm.vendors.file")

    @classmethod
    def from_settings(cls, settings: FileSettings) -> FileVendor:
        return cls(settings.directory)

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        write: Callable[[str, str, Any, tuple[str, ...]], None]
        if channel_of(self.name, args) == "email":
            recipients = check_email_send(self.name, args, to)
            name, write = _file_name(".eml"), self._write_email
        else:
            recipients = check_sms_send(self.name, args, to)
            name, write = _file_name(".json"), self._write_sms
        try:
            await _finish_even_if_cancelled(asyncio.to_thread(write, name, biz, args, recipients))
        except PermissionError as exc:
            raise PermanentError(
                f"file vendor cannot write to {self.directory}: {exc.strerror}; "
                "make the directory writable or configure another one",
                vendor=self.name,
            ) from exc
        except OSError as exc:
            raise SendError(
                f"file vendor could not write to {self.directory}: {exc.strerror or exc}",
                vendor=self.name,
            ) from exc
        self._log.debug("file vendor wrote %s for %d recipients", name, len(recipients))
        return Receipt(vendor=self.name, message_ids=(name,))

    def _write_email(self, name: str, biz: str, email: Email, to: tuple[str, ...]) -> None:
        # Written as the SMTP vendor writes it (gocomm.mime), with the biz as a header.
        tagged = dataclasses.replace(email, headers={**email.headers, "X-Gocomm-Biz": biz})
        envelope = build_envelope(tagged, to, self._default_sender)
        write_atomically(self.directory, name, envelope.data)

    def _write_sms(
        self, name: str, biz: str, params: Mapping[str, str], to: tuple[str, ...]
    ) -> None:
        record = {
            "biz": biz,
            "to": list(to),
            "params": dict(params),
            "created": datetime.now(UTC).isoformat(),
        }
        data = json.dumps(record, ensure_ascii=False, indent=2).encode() + b"\n"
        write_atomically(self.directory, name, data)

    def __repr__(self) -> str:
        return f"FileVendor(directory={str(self.directory)!r})"
