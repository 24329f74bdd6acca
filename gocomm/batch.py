"""Batch sending: reading rows from CSV or JSON lines, the resume journal, and the send loop.

The command line (``gocomm batch``) draws progress and the summary; everything it relies on
lives here so that it can be tested and reused without a terminal.

File layouts (one message per row; several recipients in one ``to`` cell are separated by ``;``
in CSV, or given as a list in JSON):

* ``sms`` CSV: columns ``to``, ``biz`` and one ``param.<name>`` column per template parameter
  (an empty cell leaves that parameter out). JSON lines:
  ``{"to": "+8613800138000", "biz": "login", "args": {"code": "1234"}}``.
* ``email`` CSV: columns ``to``, ``subject``, ``text``, ``html`` and the optional ``cc``,
  ``bcc``, ``sender``, ``reply_to`` and ``biz``. JSON lines: the same keys, lists allowed for
  the address fields.

A column or key named ``error`` is ignored: the file of failed rows carries each row's error
there and is read back as it is.

The journal makes a batch resumable: one line per row sent, appended and fsync'd right after
the send returned, keyed by a hash of the row's content and which of several identical rows it
is (not its line: a row added above must not make every row below look unsent). A run killed at
any point (even with SIGKILL) and started again skips the rows its journal names, and sends a
partly sent row only to the recipients still owed. The window of at-least-once delivery is the
moment between a vendor accepting a row and its journal line reaching the disk: a crash exactly
then sends that row again on resume.
"""

from __future__ import annotations

import asyncio
import csv
import fcntl
import hashlib
import json
import os
import re
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal

from gocomm import events
from gocomm.channels import CHANNELS
from gocomm.errors import CommError, InvalidMessage, InvalidRecipient, unsent_of
from gocomm.messages import Email
from gocomm.recipients import validate_email, validate_phone
from gocomm.sender import Receipt, Sender

__all__ = [
    "CHANNELS",
    "BatchInputError",
    "FailedRowWriter",
    "Format",
    "Journal",
    "JournalError",
    "Outcome",
    "Row",
    "Summary",
    "check_rows",
    "detect_format",
    "read_rows",
    "run_batch",
]

Format = Literal["csv", "jsonl"]
_ERROR_FIELD = "error"
_EMAIL_FIELDS = ("to", "subject", "text", "html", "cc", "bcc", "sender", "reply_to", "biz")
_EMAIL_LISTS = frozenset({"to", "cc", "bcc", "reply_to"})
_SMS_PARAM = "param."
DEFAULT_EMAIL_BIZ = "email"
#: The largest CSV cell read (a row for 20,000 recipients is about 300 KB).
MAX_CELL = 16 * 2**20
_SURROGATE = re.compile("[\ud800-\udfff]")


class BatchInputError(CommError, ValueError):
    """A batch file cannot be read as the channel's layout; names the file, line and field."""


class JournalError(CommError):
    """The journal cannot be written: the batch stops, since a row sent but not journaled
    would be sent again by a resumed run."""


@dataclass(frozen=True, slots=True)
class Row:
    """One message of a batch file, validated and ready to send."""

    line: int
    """The line of the file the row starts on, for messages."""
    biz: str
    args: Any
    to: tuple[str, ...]
    raw: Mapping[str, Any]
    """The row as read (CSV cells or the JSON object), for the file of failed rows."""
    digest: str
    occurrence: int = 0
    """How many rows of the same content come before this one in the file."""

    @property
    def key(self) -> str:
        """The journal key: the content hash, and which of the identical rows this is. Not the
        line: a row added or removed above must not make every row below look unsent."""
        return f"{self.digest}#{self.occurrence}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one row."""

    row: Row
    receipt: Receipt | None = None
    error: BaseException | None = None
    sent_to: tuple[str, ...] = ()
    unsent: tuple[str, ...] = ()
    skipped: bool = False
    """True when the journal says the row was sent by an earlier run."""
    retries: int = 0
    """Retries its send made (from its RetryScheduled events)."""
    limited: bool = False
    """True when it failed after a limiter refused it (from its LimiterDecided events)."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Summary:
    """The figures of a batch run."""

    rows: int = 0
    skipped: int = 0
    sent: int = 0
    failed: int = 0
    limited: int = 0
    retries: int = 0
    per_vendor: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        self.rows += 1
        if outcome.skipped:
            self.skipped += 1
            return
        self.retries += outcome.retries
        if outcome.error is None:
            self.sent += 1
            vendor = outcome.receipt.vendor if outcome.receipt is not None else "(no receipt)"
            self.per_vendor[vendor] += 1
            return
        self.failed += 1
        if outcome.limited:
            self.limited += 1


@dataclass
class _Tally:
    """What the events of one row's send said (gocomm.events), for its :class:`Outcome`."""

    run: object
    retries: int = 0
    limited: bool = False


#: The row whose send the current task runs (each worker task sets its own).
_row_tally: ContextVar[_Tally | None] = ContextVar("gocomm_batch_row", default=None)


def _tally(run: object) -> events.Listener:
    """A listener counting the events of ``run``'s rows (other sends of the process, and
    other runs, are not theirs)."""

    def count(event: events.Event) -> None:
        tally = _row_tally.get()
        if tally is None or tally.run is not run:
            return
        if isinstance(event, events.RetryScheduled):
            tally.retries += 1
        elif isinstance(event, events.LimiterDecided) and event.limited:
            tally.limited = True

    return count


# -- reading ---------------------------------------------------------------------------------


def detect_format(path: Path, given: str | None = None) -> Format:
    """The file's format: ``given`` if set, else from the suffix (.csv, .jsonl, .ndjson, .json)."""
    choice = (given or "").lower() or {
        ".csv": "csv",
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".json": "jsonl",
    }.get(path.suffix.lower(), "")
    if choice == "csv":
        return "csv"
    if choice in ("jsonl", "json", "ndjson"):
        return "jsonl"
    raise BatchInputError(
        f"{path}: cannot tell the format from the name; name it .csv or .jsonl, "
        "or pass --format csv|jsonl"
    )


def read_rows(path: Path, channel: str, fmt: Format) -> Iterator[Row]:
    """Yield the rows of ``path`` for ``channel``; raise :class:`BatchInputError` at a bad one.

    Streaming: the file is read as it is consumed, so a large batch is never held whole.
    """
    if channel not in CHANNELS:
        raise BatchInputError(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise BatchInputError(f"{path}: cannot open: {exc.strerror or exc}") from None
    seen: Counter[str] = Counter()
    with handle:
        for line, record in _records(path, handle, channel, fmt):
            row = _row(path, line, channel, record)
            seen[row.digest] += 1
            yield replace(row, occurrence=seen[row.digest] - 1) if seen[row.digest] > 1 else row


def check_rows(
    path: Path, channel: str, fmt: Format, *, max_errors: int = 10
) -> tuple[int, list[BatchInputError]]:
    """Read the whole file without sending: the number of rows, and the first bad rows.

    A bad header or unreadable file raises :class:`BatchInputError` at once; bad rows are
    collected (at most ``max_errors``) so that one run of ``batch`` reports several.
    """
    if channel not in CHANNELS:
        raise BatchInputError(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
    count, errors = 0, list[BatchInputError]()
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise BatchInputError(f"{path}: cannot open: {exc.strerror or exc}") from None
    with handle:
        try:
            for line, record in _records(path, handle, channel, fmt):
                count += 1
                try:
                    _row(path, line, channel, record)
                except BatchInputError as exc:
                    if len(errors) < max_errors:
                        errors.append(exc)
        except UnicodeDecodeError:
            raise BatchInputError(f"{path}: not UTF-8 text") from None
    return count, errors


def _records(
    path: Path, handle: IO[str], channel: str, fmt: Format
) -> Iterator[tuple[int, dict[str, Any]]]:
    if fmt == "csv":
        return _csv_records(path, handle, channel)
    return _jsonl_records(path, handle)


def _csv_records(path: Path, handle: IO[str], channel: str) -> Iterator[tuple[int, dict[str, Any]]]:
    # The csv module's default limit is 128 KiB a cell; 20,000 recipients in one cell are more.
    if csv.field_size_limit() < MAX_CELL:
        csv.field_size_limit(MAX_CELL)
    reader = csv.reader(handle)
    cells_of = _csv_rows(path, reader)
    try:
        header = next(cells_of)
    except StopIteration:
        return
    header = [name.strip() for name in header]
    _check_columns(path, channel, header)
    line = reader.line_num + 1
    for cells in cells_of:
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(header):
            raise BatchInputError(
                f"{path}:{start}: {len(cells)} cells where the header has {len(header)} columns"
            )
        yield start, dict(zip(header, cells, strict=True))


def _csv_rows(path: Path, reader: Any) -> Iterator[list[str]]:
    """The reader's rows, a csv.Error (a cell over the limit, a NUL) as a BatchInputError."""
    while True:
        try:
            cells: list[str] = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problem = str(exc)
            if "field larger than field limit" in problem:
                problem = f"a cell is larger than {MAX_CELL // 2**20} MiB"
            raise BatchInputError(f"{path}:{reader.line_num}: not valid CSV ({problem})") from None
        yield cells


def _check_columns(path: Path, channel: str, header: Sequence[str]) -> None:
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise BatchInputError(f"{path}: column {duplicates[0]!r} appears twice in the header")
    if channel == "sms":
        allowed = "to, biz and param.<name>"
        unknown = [
            n
            for n in header
            if n not in ("to", "biz", _ERROR_FIELD) and not n.startswith(_SMS_PARAM)
        ]
        required: tuple[str, ...] = ("to", "biz")
    else:
        allowed = ", ".join(_EMAIL_FIELDS)
        unknown = [n for n in header if n not in _EMAIL_FIELDS and n != _ERROR_FIELD]
        required = ("to", "subject")
    if unknown:
        raise BatchInputError(
            f"{path}: unknown column {unknown[0]!r} for {channel}; the columns are {allowed}"
        )
    missing = [name for name in required if name not in header]
    if missing:
        raise BatchInputError(f"{path}: the header has no {missing[0]!r} column")


def _jsonl_records(path: Path, handle: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BatchInputError(f"{path}:{line}: not valid JSON ({exc.msg})") from None
        except ValueError:  # json's int() refuses integers over 4300 digits
            raise BatchInputError(
                f"{path}:{line}: a number has too many digits (more than 4300)"
            ) from None
        except RecursionError:
            raise BatchInputError(f"{path}:{line}: JSON nested too deeply") from None
        if not isinstance(record, dict):
            raise BatchInputError(f"{path}:{line}: expected a JSON object, one per line")
        yield line, record


def _check_text(where: str, value: Any, name: str = "") -> None:
    """Refuse lone surrogates (a JSON "\\ud83d" escape): no vendor can encode them."""
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise BatchInputError(
                f"{where}: {name or 'a key'!r} holds a lone surrogate (an unpaired \\ud800-"
                "\\udfff escape), which is not text any vendor can send; fix the text"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(where, key, name)
            _check_text(where, item, key if not name else f"{name}.{key}")
    elif isinstance(value, list):
        for item in value:
            _check_text(where, item, name)


def _row(path: Path, line: int, channel: str, record: Mapping[str, Any]) -> Row:
    where = f"{path}:{line}"
    _check_text(where, dict(record))
    try:
        args: Any
        if channel == "sms":
            biz, args, to = _sms_message(where, record)
            canonical: dict[str, Any] = {"biz": biz, "args": args}
        else:
            biz, args, to = _email_message(where, record)
            canonical = {"biz": biz, **_email_fields(args)}
    except (InvalidRecipient, InvalidMessage) as exc:
        raise BatchInputError(f"{where}: {exc}") from None
    canonical.update(channel=channel, to=list(to))
    digest = hashlib.sha256(
        json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()[:16]
    raw = {k: v for k, v in record.items() if k != _ERROR_FIELD}
    return Row(line=line, biz=biz, args=args, to=to, raw=raw, digest=digest)


def _text(where: str, record: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise BatchInputError(f"{where}: {name!r} is missing or empty")
        return None
    if not isinstance(value, str):
        raise BatchInputError(f"{where}: {name!r} must be a string, not {type(value).__name__}")
    return value


def _addresses(where: str, record: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = record.get(name)
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        items = value.split(";")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        items = value
    else:
        raise BatchInputError(f"{where}: {name!r} must be a string or a list of strings")
    return tuple(item.strip() for item in items if item.strip())


def _sms_message(
    where: str, record: Mapping[str, Any]
) -> tuple[str, dict[str, str], tuple[str, ...]]:
    unknown = [k for k in record if k not in ("to", "biz", "args", _ERROR_FIELD)]
    unknown = [k for k in unknown if not k.startswith(_SMS_PARAM)]
    if unknown:
        raise BatchInputError(f"{where}: unknown key {unknown[0]!r}; sms rows have to, biz, args")
    biz = _text(where, record, "biz", required=True)
    assert biz is not None
    to = tuple(validate_phone(number) for number in _addresses(where, record, "to"))
    if not to:
        raise BatchInputError(f"{where}: 'to' is missing or empty")
    args: dict[str, str] = {}
    given = record.get("args", {})
    if not isinstance(given, dict):
        raise BatchInputError(f"{where}: 'args' must be an object of template parameters")
    for name, value in given.items():
        args[str(name)] = _param(where, name, value)
    for column, value in record.items():
        if column.startswith(_SMS_PARAM) and value not in (None, ""):
            args[column.removeprefix(_SMS_PARAM)] = _param(where, column, value)
    return biz, args, to


def _param(where: str, name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BatchInputError(f"{where}: parameter {name!r} must be a string or a number")
    return str(value)


def _email_message(where: str, record: Mapping[str, Any]) -> tuple[str, Email, tuple[str, ...]]:
    unknown = [k for k in record if k not in _EMAIL_FIELDS and k != _ERROR_FIELD]
    if unknown:
        raise BatchInputError(
            f"{where}: unknown key {unknown[0]!r}; email rows have {', '.join(_EMAIL_FIELDS)}"
        )
    to = tuple(validate_email(a) for a in _addresses(where, record, "to"))
    if not to:
        raise BatchInputError(f"{where}: 'to' is missing or empty")
    subject = _text(where, record, "subject", required=True)
    assert subject is not None
    sender = _text(where, record, "sender", required=False)
    email = Email(
        subject=subject,
        text=_text(where, record, "text", required=False),
        html=_text(where, record, "html", required=False),
        sender=validate_email(sender) if sender else None,
        reply_to=tuple(validate_email(a) for a in _addresses(where, record, "reply_to")),
        cc=tuple(validate_email(a) for a in _addresses(where, record, "cc")),
        bcc=tuple(validate_email(a) for a in _addresses(where, record, "bcc")),
    )
    biz = _text(where, record, "biz", required=False) or DEFAULT_EMAIL_BIZ
    return biz, email, to


def _email_fields(email: Email) -> dict[str, Any]:
    return {
        "subject": email.subject,
        "text": email.text,
        "html": email.html,
        "sender": email.sender,
        "reply_to": list(email.reply_to),
        "cc": list(email.cc),
        "bcc": list(email.bcc),
    }


# -- the journal -----------------------------------------------------------------------------


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


class FailedRowWriter:
    """Writes failed rows in the input's own format, ``to`` narrowed to the recipients owed,
    with the error in an ``error`` column or key; ``batch`` reads the file back as it is."""

    def __init__(self, path: Path, fmt: Format) -> None:
        self.path = path
        self.fmt = fmt
        self.count = 0
        self._handle: IO[str] | None = None
        self._csv: csv.DictWriter[str] | None = None

    def write(self, outcome: Outcome) -> None:
        row = dict(outcome.row.raw)
        unsent = list(outcome.unsent or outcome.row.to)
        error = " ".join(f"{type(outcome.error).__name__}: {outcome.error}".split())
        if self.fmt == "csv":
            row["to"] = ";".join(unsent)
            row[_ERROR_FIELD] = error
            if self._csv is None:
                self._handle = self.path.open("w", encoding="utf-8", newline="")
                self._csv = csv.DictWriter(self._handle, fieldnames=list(row))
                self._csv.writeheader()
            self._csv.writerow(row)
        else:
            to: Any = unsent if isinstance(row.get("to"), list) or len(unsent) > 1 else unsent[0]
            row["to"] = to
            row[_ERROR_FIELD] = error
            if self._handle is None:
                self._handle = self.path.open("w", encoding="utf-8")
            self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        assert self._handle is not None
        self._handle.flush()  # a killed run still leaves the failures it saw
        self.count += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


# -- sending ---------------------------------------------------------------------------------


async def run_batch(
    sender: Sender[Any],
    rows: Iterable[Row],
    journal: Journal,
    *,
    concurrency: int = 8,
    on_outcome: Callable[[Outcome], Awaitable[None] | None] | None = None,
) -> Summary:
    """Send every row not in ``journal`` with at most ``concurrency`` sends in flight.

    A row is journaled right after its send returns (the recipients a failed send reached
    too), so a run killed at any point resumes without sending anyone a second copy, but for
    the window between a vendor's acceptance and the journal's fsync. ``on_outcome`` is called
    once per row, skipped ones included.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    summary = Summary()
    pending = iter(rows)

    async def report(outcome: Outcome) -> None:
        summary.add(outcome)
        if on_outcome is not None:
            result = on_outcome(outcome)
            if result is not None:
                await result

    async def worker() -> None:
        # Workers pull from one iterator: never more than `concurrency` rows in memory.
        for row in pending:
            owed = journal.owed(row)
            if not owed:
                await report(Outcome(row, skipped=True))
                continue
            tally = _Tally(summary)
            _row_tally.set(tally)  # this worker task's context only
            try:
                receipt = await sender.send(row.biz, row.args, *owed)
            except Exception as exc:  # the row failed; the batch goes on (CancelledError escapes)
                unsent = unsent_of(exc, owed)
                reached = tuple(t for t in owed if t not in unsent)
                if reached:
                    await journal.arecord(row, reached)
                failed = Outcome(
                    row, error=exc, sent_to=reached, unsent=unsent, retries=tally.retries,
                    limited=tally.limited,
                )  # fmt: skip
                await report(failed)
                continue
            await journal.arecord(row, owed)
            await report(Outcome(row, receipt=receipt, sent_to=owed, retries=tally.retries))

    opened_here = not journal.is_open  # a journal opened by the caller stays open
    journal.open()
    # Retries and limits come from the events of each row's send, not from its error.
    listener = _tally(summary)
    events.add_listener(listener)
    try:
        async with asyncio.TaskGroup() as group:
            committer = group.create_task(journal.commit_loop())
            async with asyncio.TaskGroup() as workers:
                for _ in range(concurrency):
                    workers.create_task(worker())
            committer.cancel()  # every worker has seen its entries on disk
    except BaseExceptionGroup as group:
        # Workers fail together for one reason (the journal, the callback): raise it plainly.
        raise _first_leaf(group) from None
    finally:
        events.remove_listener(listener)
        if opened_here:
            journal.close()  # and with it the lock, for the next run
    return summary


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
