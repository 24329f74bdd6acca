"""Rows per second of ``gocomm.batch.run_batch`` and what its journal costs.

A CSV of ``--rows`` SMS rows is sent to an in-process vendor that does nothing, so the figures
are the batch machinery alone: reading and checking rows, the bounded worker pool and the
journal. Three ways, alternating over ``--rounds`` rounds in one process, each on a fresh
journal in a temporary directory (a real file system: fsync is real):

* ``group commit``: ``run_batch`` as ``gocomm batch`` runs it; concurrent sends share one
  journal write and fsync;
* ``fsync per row``: the same loop, each row's entry written and fsync'd on its own (what
  the journal would cost without group commit);
* ``no journal``: the same loop without journaling, the floor.

Each row shows the median rows per second over the rounds.

    .venv/bin/python bench/batch.py [--rows N] [--concurrency C] [--rounds R]

A benchmark prints figures; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gocomm.batch import Journal, Row, read_rows, run_batch
from gocomm.sender import Receipt


class NullVendor:
    """Accepts every send at once."""

    name = "null"

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        return Receipt(vendor=self.name)


def write_rows(path: Path, count: int) -> None:
    lines = ["to,biz,param.code"]
    lines += [f"+86138{n:08d},login,{n % 1000000:06d}" for n in range(count)]
    path.write_text("\n".join(lines) + "\n")


async def group_commit(source: Path, journal: Journal, concurrency: int) -> None:
    await run_batch(NullVendor(), read_rows(source, "sms", "csv"), journal, concurrency=concurrency)


async def per_row(
    source: Path, journal: Journal, concurrency: int, *, journaled: bool = True
) -> None:
    """The worker pool of run_batch, with each entry written and fsync'd on its own."""
    vendor = NullVendor()
    rows = read_rows(source, "sms", "csv")

    async def worker() -> None:
        row: Row
        for row in rows:
            await vendor.send(row.biz, row.args, *row.to)
            if journaled:
                await asyncio.to_thread(journal.record, row, row.to)

    journal.open()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())


async def no_journal(source: Path, journal: Journal, concurrency: int) -> None:
    await per_row(source, journal, concurrency, journaled=False)


Way = Callable[[Path, Journal, int], Awaitable[None]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    ways: dict[str, Way] = {
        "group commit": group_commit,
        "fsync per row": per_row,
        "no journal": no_journal,
    }
    rates: dict[str, list[float]] = {name: [] for name in ways}
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / "rows.csv"
        write_rows(source, options.rows)
        for round_number in range(options.rounds):
            for name, way in ways.items():
                journal = Journal(Path(directory) / f"{round_number}-{len(rates[name])}.journal")
                started = time.perf_counter()
                asyncio.run(way(source, journal, options.concurrency))
                elapsed = time.perf_counter() - started
                journal.close()
                rates[name].append(options.rows / elapsed)
    print(f"{options.rows} rows, concurrency {options.concurrency}, {options.rounds} rounds")
    for name, values in rates.items():
        print(f"  {name:<14} {statistics.median(values):>10,.0f} rows/s")


if __name__ == "__main__":
    main()
