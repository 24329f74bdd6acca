"""``gocomm batch``: send (or enqueue) every row of a CSV or JSON lines file, resumably."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from gocomm.journals import FileLock, journal_for, remember_journal, state_directory

if TYPE_CHECKING:
    from gocomm.batch import Format, Journal, Outcome, Summary

from gocomm.cli.app import (
    EXIT_OK,
    EXIT_SEND_FAILED,
    BatchStopped,
    Channel,
    FileFormat,
    Options,
    UsageError,
    _build,
    _one_line,
    _options,
    _print_error,
    _run,
    _running,
    _sender,
    _settings,
    app,
    stdout,
)

# -- batch -----------------------------------------------------------------------------------


@app.command("batch")
def batch(
    ctx: typer.Context,
    channel: Annotated[Channel, typer.Argument(help="email or sms.", metavar="CHANNEL")],
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV or JSON lines, one message per row.", dir_okay=False, metavar="FILE"
        ),
    ],
    concurrency: Annotated[int, typer.Option(min=1, max=1000, help="Sends in flight at once.")] = 8,
    failed: Annotated[
        Path | None,
        typer.Option(
            help="Where failed rows go, in FILE's format (default: next to FILE, "
            "NAME.failed.csv or NAME.failed.jsonl).",
            dir_okay=False,
        ),
    ] = None,
    journal: Annotated[
        Path | None,
        typer.Option(
            help="The resume journal (default: FILE.journal next to the real file, or the one "
            "its last run used through another name).",
            dir_okay=False,
        ),
    ] = None,
    fmt: Annotated[
        FileFormat | None,
        typer.Option("--format", help="csv or jsonl (default: from FILE's suffix)."),
    ] = None,
    enqueue: Annotated[
        bool,
        typer.Option(
            "--enqueue",
            help="Put each row on the queue for `gocomm worker` instead of sending it here.",
        ),
    ] = False,
) -> None:
    """Send every row of FILE; a run stopped halfway resumes where it stopped.

    sms rows: to, biz, param.NAME... (CSV) or {"to", "biz", "args"} (JSON lines).
    email rows: to, subject, text, html, cc, bcc (CSV or JSON lines).
    Several recipients in one CSV cell are separated by ';'. Rows already in the journal are
    skipped; delete the journal to send the file again.
    """
    options = _options(ctx)

    def command() -> int:
        from gocomm.batch import BatchInputError

        # The lock and the journal belong to the file, not to the name used (journals.py).
        file_lock = FileLock(file, BatchInputError)
        file_lock.acquire()
        try:
            return locked(state_directory())
        finally:
            file_lock.release()

    def locked(state: Path) -> int:
        from gocomm.batch import Journal, check_rows, detect_format

        # Everything that can refuse the run happens here, before any vendor is touched.
        name = channel.value
        file_format = detect_format(file, fmt.value if fmt else None)
        journal_path = journal or journal_for(file, state)
        failed_path = failed or _failed_path(file, file_format)
        _check_distinct(file, journal_path, failed_path)
        total, errors = check_rows(file, name, file_format)
        for error in errors[:-1]:
            _print_error(_one_line(error))
        if errors:
            raise errors[-1]
        if enqueue:
            return _enqueue_batch(options, name, file, file_format, journal_path, concurrency)
        run_journal = Journal(journal_path)
        run_journal.open()  # locked before anything is touched: one run per journal
        remember_journal(file, journal_path, state)
        failed_path.unlink(missing_ok=True)  # the file of failed rows describes this run only
        container = _build(options)

        async def send_all() -> Summary:
            async with _running(container):
                sender = await _sender(container, name)
                return await _send_batch(
                    sender,
                    name,
                    file,
                    file_format,
                    total,
                    run_journal,
                    failed_path,
                    concurrency,
                )

        from gocomm.telemetry.install import metrics_endpoint

        with metrics_endpoint(container.settings()):  # telemetry.prometheus.port
            summary = asyncio.run(send_all())
        _print_summary(summary, name, journal_path, failed_path)
        return EXIT_SEND_FAILED if summary.failed else EXIT_OK

    _run(options, command, quiet=True, resumable=True)


def _enqueue_batch(
    options: Options, channel: str, file: Path, fmt: Format, journal_path: Path, concurrency: int
) -> int:
    """``batch --enqueue``: each row not journaled goes on the queue under its journal key."""
    from gocomm.batch import Journal, read_rows
    from gocomm.tasks import GocommTasks, enqueue_rows, make_broker, require_queue

    settings = _settings(options)
    require_queue(settings, "gocomm batch --enqueue")
    run_journal = Journal(journal_path)
    run_journal.open()  # one run per journal

    async def enqueue_all() -> tuple[int, int]:
        async with GocommTasks(make_broker(settings), settings=settings) as tasks:
            rows = read_rows(file, channel, fmt)
            return await enqueue_rows(tasks, channel, rows, run_journal, concurrency=concurrency)

    try:
        enqueued, skipped = asyncio.run(enqueue_all())
    finally:
        run_journal.close()
    stdout.print(
        f"enqueued {enqueued} {channel} rows of {file.name}"
        + (f" ({skipped} already enqueued, per the journal)" if skipped else ""),
        markup=False,
    )
    stdout.print(f"journal: {journal_path}", markup=False)
    return EXIT_OK


def _failed_path(file: Path, fmt: Format) -> Path:
    stem = file.name.removesuffix(file.suffix) if file.suffix else file.name
    return file.with_name(f"{stem}.failed.{'csv' if fmt == 'csv' else 'jsonl'}")


def _check_distinct(file: Path, journal: Path, failed: Path) -> None:
    paths = {"FILE": file, "--journal": journal, "--failed": failed}
    seen: dict[object, str] = {}
    for option, path in paths.items():
        try:  # a hard link is the same file under another name
            info = path.stat()
            identity: object = (info.st_dev, info.st_ino)
        except OSError:
            identity = path.resolve()
        if identity in seen:
            raise UsageError(f"{option} {path} is the same file as {seen[identity]}")
        seen[identity] = option


async def _send_batch(
    sender: Any,
    channel: str,
    file: Path,
    fmt: Format,
    total: int,
    journal: Journal,
    failed_path: Path,
    concurrency: int,
) -> Summary:
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from gocomm.batch import BatchInputError, FailedRowWriter, read_rows, run_batch

    failures = FailedRowWriter(failed_path, fmt)
    progress = Progress(
        TextColumn(f"{channel} [bold]{escape(file.name)}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[sent]} sent[/green] [red]{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stdout,
    )
    task = progress.add_task("batch", total=total, sent=0, failed=0)
    counts = {"sent": 0, "failed": 0}

    def on_outcome(outcome: Outcome) -> None:
        if outcome.error is not None:
            failures.write(outcome)
            counts["failed"] += 1
            # Say why, above the bar, for the first few; the file of failed rows has them all.
            if counts["failed"] <= _FAILURES_SHOWN:
                progress.console.print(
                    f"line {outcome.row.line}: {', '.join(outcome.unsent or outcome.row.to)}: "
                    f"{_one_line(outcome.error)}",
                    markup=False,
                    style="red",
                )
            elif counts["failed"] == _FAILURES_SHOWN + 1:
                progress.console.print(
                    f"more failures: see {failed_path}", markup=False, style="red"
                )
        elif not outcome.skipped:
            counts["sent"] += 1
        progress.update(task, advance=1, sent=counts["sent"], failed=counts["failed"])

    try:
        with progress:
            return await run_batch(
                sender,
                read_rows(file, channel, fmt),
                journal,
                concurrency=concurrency,
                on_outcome=on_outcome,
            )
    except BatchInputError as exc:
        # The file was checked whole before the first send: it changed while being sent.
        raise BatchStopped(f"{exc}; the file changed while it was being sent") from exc
    finally:
        failures.close()
        journal.close()


_FAILURES_SHOWN = 10
"""How many failed rows `batch` describes on screen as they happen."""


def _print_summary(summary: Summary, channel: str, journal: Path, failed: Path) -> None:
    from rich.text import Text

    table = Table(title="batch summary", show_header=True, title_justify="left")
    table.add_column("", style="bold")
    table.add_column("rows", justify="right")
    table.add_row("sent", Text(str(summary.sent), style="green"))
    table.add_row("failed", Text(str(summary.failed), style="red" if summary.failed else ""))
    for vendor, count in sorted(summary.per_vendor.items()):
        table.add_row(Text(f"  via {vendor}"), str(count))
    table.add_row("retries", str(summary.retries))
    table.add_row("limited", str(summary.limited))
    table.add_row("already sent (journal)", str(summary.skipped))
    stdout.print(table)
    stdout.print(f"journal: {journal}", markup=False)
    if summary.failed:
        stdout.print(
            f"failed rows: {failed}; once the cause is fixed, send them with: "
            f"gocomm batch {channel} {failed}",
            markup=False,
        )
