"""Batch rows: reading and checking CSV or JSON lines files, and writing back the failed ones.

File layouts (one message per row; several recipients in one ``to`` cell are separated by ``;``
in CSV, or given as a list in JSON):

* ``sms`` CSV: columns ``to``, ``biz`` and one ``param.<name>`` column per template parameter
  (an empty cell leaves that parameter out). JSON lines:
  ``{"to": "+8613800138000", "biz": "login", "args": {"code": "1234"}}``.
* ``email`` CSV: columns ``to``, ``subject``, ``text``, ``html`` and the optional ``cc``,
  ``bcc``, ``sender``, ``reply_to`` and ``biz``. JSON lines: the same keys, lists allowed for
  the address fields.

A column or key named ``error`` is ignored: the file of failed rows (:class:`FailedRowWriter`)
carries each row's error there and is read back as it is.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal

from gocomm.channels import CHANNELS
from gocomm.errors import (
    CommError,
    InvalidMessage,
    InvalidRecipient,
)
from gocomm.messages import Email, email_fields
from gocomm.recipients import validate_email, validate_phone

Format = Literal["csv", "jsonl"]
ERROR_FIELD = "error"
_EMAIL_FIELDS = ("to", "subject", "text", "html", "cc", "bcc", "sender", "reply_to", "biz")
_EMAIL_LISTS = frozenset({"to", "cc", "bcc", "reply_to"})
_SMS_PARAM = "param."
DEFAULT_EMAIL_BIZ = "email"
#: The largest CSV cell read (a row for 20,000 recipients is about 300 KB).
MAX_CELL = 16 * 2**20
_SURROGATE = re.compile("[\ud800-\udfff]")



class BatchInputError(CommError, ValueError):
    """A batch file cannot be read as the channel's layout; names the file, line and field."""


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
            if n not in ("to", "biz", ERROR_FIELD) and not n.startswith(_SMS_PARAM)
        ]
        required: tuple[str, ...] = ("to", "biz")
    else:
        allowed = ", ".join(_EMAIL_FIELDS)
        unknown = [n for n in header if n not in _EMAIL_FIELDS and n != ERROR_FIELD]
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
            canonical = {"biz": biz, **email_fields(args)}
    except (InvalidRecipient, InvalidMessage) as exc:
        raise BatchInputError(f"{where}: {exc}") from None
    canonical.update(channel=channel, to=list(to))
    digest = hashlib.sha256(
        json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()[:16]
    raw = {k: v for k, v in record.items() if k != ERROR_FIELD}
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
    unknown = [k for k in record if k not in ("to", "biz", "args", ERROR_FIELD)]
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
    unknown = [k for k in record if k not in _EMAIL_FIELDS and k != ERROR_FIELD]
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


# -- the journal -----------------------------------------------------------------------------
