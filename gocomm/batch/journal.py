"""The batch journal: what makes a batch resumable, and the riskiest code of batch sending.

One line per row sent, appended and fsync'd right after the send returned (group commit: the
lines of rows finishing together share one fsync), keyed by a hash of the row's content and
which of several identical rows it is (not its line: a row added above must not make every row
below look unsent). A run killed at any point (even with SIGKILL) and started again skips the
rows its journal names, and sends a partly sent row only to the recipients still owed. The
window of at-least-once delivery is the moment between a vendor accepting a row and its
journal line reaching the disk: a crash exactly then sends that row again on resume. The
journal and its lock belong to the input file itself (device and inode), however it is named.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from gocomm.batch.rows import BatchInputError, Row
from gocomm.errors import (
    CommError,
)


class JournalError(CommError):
    """The journal cannot be written: the batch stops, since a row sent but not journaled
    would be sent again by a resumed run."""


class Journal:
    """Append-only record of the rows a batch sent, one JSON line per send, fsync'd before the
    send counts as done.

    Each line is ``{"key": "<hash>#<n>", "sent": [recipients]}``. A row is done when the
    recipients of its lines cover its ``to``. A torn last line (a crash mid-write) is ignored.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sent: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._queue: asyncio.Queue[tuple[str, tuple[str, ...], asyncio.Future[None]]] | None = None
        self._load()

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise BatchInputError(f"journal {self.path}: cannot read: {exc.strerror}") from None
        for text in data.split(b"\n"):
            try:
                entry = json.loads(text)
                key, sent = entry["key"], entry["sent"]
            except (ValueError, KeyError, TypeError):
                continue  # a torn line from a crash, or a blank one
            if isinstance(key, str) and isinstance(sent, list):
                self._sent.setdefault(key, set()).update(str(s) for s in sent)

    def __len__(self) -> int:
        return len(self._sent)

    def owed(self, row: Row) -> tuple[str, ...]:
        """The recipients of ``row`` that no earlier run sent it to."""
        done = self._sent.get(row.key)
        return row.to if not done else tuple(t for t in row.to if t not in done)

    def open(self) -> None:
        """Open for appending and lock against other runs; ends a torn last line so the next
        entry starts clean. Raises :class:`BatchInputError` while another run holds it."""
        if self._fd is not None:
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise BatchInputError(f"journal {self.path}: cannot open: {exc.strerror}") from None
        # One run per journal: two runs sharing it would both send the rows neither has
        # journaled yet. The lock goes with the process, so a killed run never leaves it held.
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise BatchInputError(
                f"journal {self.path} is in use by another gocomm batch; wait for it to finish "
                "(or give this run its own --journal)"
            ) from None
        # What was read before the lock may be stale: read it again under the lock.
        self._sent.clear()
        self._load()
        size = os.fstat(fd).st_size
        if not size:
            _fsync_directory(self.path.parent)  # a new journal survives a power cut too
        else:
            with self.path.open("rb") as existing:
                existing.seek(size - 1)
                if existing.read(1) != b"\n":
                    os.write(fd, b"\n")
        self._fd = fd

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def record(self, row: Row, sent: Iterable[str]) -> None:
        """Append and fsync one entry (blocking; :meth:`arecord` is the async form)."""
        recipients = tuple(sent)
        self._write([(row.key, recipients)])
        self._remember(row.key, recipients)

    def _write(self, entries: Sequence[tuple[str, tuple[str, ...]]]) -> None:
        """One write and one fsync for ``entries`` (blocking)."""
        data = "".join(
            json.dumps({"key": key, "sent": list(sent)}, ensure_ascii=False) + "\n"
            for key, sent in entries
        ).encode()
        with self._lock:
            if self._fd is None:
                raise RuntimeError("the journal is not open")
            try:
                while data:  # a regular file takes it whole; loop only to honour the contract
                    data = data[os.write(self._fd, data) :]
                os.fsync(self._fd)
            except OSError as exc:
                raise JournalError(
                    f"journal {self.path}: cannot write ({exc.strerror or exc}); the batch "
                    "stops here so that a resumed run sends nobody a second copy"
                ) from exc

    def _remember(self, key: str, sent: tuple[str, ...]) -> None:
        self._sent.setdefault(key, set()).update(sent)

    async def arecord(self, row: Row, sent: Iterable[str]) -> None:
        """Append ``row``'s entry and return once it is on disk.

        While :meth:`commit_loop` runs, entries of concurrent sends share one write and one
        fsync (group commit), so many workers cost one fsync per round, not one each; without
        it, each entry is written on its own, in a thread.
        """
        recipients = tuple(sent)
        if self._queue is None:
            await asyncio.to_thread(self._write, [(row.key, recipients)])
        else:
            durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._queue.put_nowait((row.key, recipients, durable))
            await durable
        self._remember(row.key, recipients)

    async def commit_loop(self) -> None:
        """Write queued entries in groups until cancelled (:func:`run_batch` runs it)."""
        queue: asyncio.Queue[tuple[str, tuple[str, ...], asyncio.Future[None]]]
        self._queue = queue = asyncio.Queue()
        try:
            while True:
                group = [await queue.get()]
                while not queue.empty():
                    group.append(queue.get_nowait())
                try:
                    await asyncio.to_thread(self._write, [(k, sent) for k, sent, _ in group])
                except Exception as exc:  # each waiting send reports the failure itself
                    for *_, durable in group:
                        if not durable.done():
                            durable.set_exception(exc)
                    continue
                for *_, durable in group:
                    if not durable.done():
                        durable.set_result(None)
        finally:
            self._queue = None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not every platform lets a directory be opened; the entries follow anyway
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- failed rows -----------------------------------------------------------------------------


