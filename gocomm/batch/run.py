"""The batch run: rows sent with bounded concurrency, outcomes recorded, and the summary."""

from __future__ import annotations

import asyncio
import csv
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gocomm import events
from gocomm.batch.journal import Journal
from gocomm.batch.rows import ERROR_FIELD, Format, Row
from gocomm.errors import (
    unsent_of,
)
from gocomm.sender import Receipt, Sender


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
            row[ERROR_FIELD] = error
            if self._csv is None:
                self._handle = self.path.open("w", encoding="utf-8", newline="")
                self._csv = csv.DictWriter(self._handle, fieldnames=list(row))
                self._csv.writeheader()
            self._csv.writerow(row)
        else:
            to: Any = unsent if isinstance(row.get("to"), list) or len(unsent) > 1 else unsent[0]
            row["to"] = to
            row[ERROR_FIELD] = error
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

