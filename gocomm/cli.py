"""The ``gocomm`` command: send, batch, worker, dead-letter, plugins, config, fake.

Exit codes: 0 everything was sent (or the command had nothing to send), 1 a send failed,
2 a usage, configuration or input error found before anything was sent. Errors print as one
``error: ...`` line on stderr; ``--debug`` adds the traceback and debug logging.

Each command builds the container once and always shuts its resources down, whatever happens.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from gocomm.errors import ConfigError, InvalidMessage, InvalidRecipient
from gocomm.journals import FileLock, journal_for, remember_journal, state_directory
from gocomm.sender import Receipt

if TYPE_CHECKING:
    from rich.tree import Tree

    from gocomm.batch import Format, Journal, Outcome, Summary
    from gocomm.config import Settings
    from gocomm.containers import Container
    from gocomm.plugins import PluginFailure, VendorRegistry, VendorSpec
    from gocomm.stacks import StackNode
    from gocomm.testing.fakes import LocalFake

__all__ = ["app", "main"]

EXIT_OK = 0
EXIT_SEND_FAILED = 1
EXIT_BEFORE_SENDING = 2
EXIT_INTERRUPTED = 130

# Messages and recipients are data, never markup: nothing printed from them is interpreted.
stdout = Console(highlight=False, soft_wrap=True, emoji=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

app = typer.Typer(
    name="gocomm",
    help="Send SMS and email through gocomm's stack: rate limit, retry, failover, vendors.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
send_app = typer.Typer(help="Send one message.")
app.add_typer(send_app, name="send")


def _help_without_command(ctx: typer.Context) -> None:
    """A group run without a command shows its help and exits with the usage error code."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(EXIT_BEFORE_SENDING)


@send_app.callback(invoke_without_command=True)
def _send_group(ctx: typer.Context) -> None:
    _help_without_command(ctx)


class Channel(StrEnum):
    """The channels ``batch`` sends on."""

    email = "email"
    sms = "sms"


class FileFormat(StrEnum):
    """The formats ``batch`` reads."""

    csv = "csv"
    jsonl = "jsonl"


class UsageError(ValueError):
    """A command line that cannot be run; exit code 2."""


class PartlySent(RuntimeError):
    """A send reached some of its recipients and failed for the others; exit code 1."""


class BatchStopped(RuntimeError):
    """A batch stopped after it had started sending; exit code 1."""


@dataclass(frozen=True)
class Options:
    """The global options, given before the command."""

    config: Path | None = None
    debug: bool = False


@app.callback(invoke_without_command=True)
def _global_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="YAML configuration file (default: $GOCOMM_CONFIG, else the embedded default).",
            dir_okay=False,
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks and debug logging.")
    ] = False,
) -> None:
    ctx.obj = Options(config=config, debug=debug)
    _help_without_command(ctx)


# -- running a command -----------------------------------------------------------------------

_BEFORE_SENDING: tuple[type[BaseException], ...] = (
    ConfigError,
    InvalidRecipient,
    InvalidMessage,
    UsageError,
)


def _options(ctx: typer.Context) -> Options:
    options = ctx.find_root().obj
    return options if isinstance(options, Options) else Options()


def _setup_logging(options: Options, quiet: bool = False) -> None:
    from rich.logging import RichHandler

    level = logging.DEBUG if options.debug else logging.ERROR if quiet else logging.WARNING
    handler = RichHandler(console=stderr, show_path=False, show_time=options.debug)
    logging.basicConfig(level=level, handlers=[handler], format="%(name)s: %(message)s")


def _run(
    options: Options, command: Callable[[], int], *, quiet: bool = False, resumable: bool = False
) -> None:
    """Run ``command`` and exit with its code; map its errors to exit codes and one line."""
    from gocomm.batch import BatchInputError

    _setup_logging(options, quiet)
    try:
        code = command()
    except KeyboardInterrupt:
        hint = "; run the same command again to resume where it stopped" if resumable else ""
        _print_error(f"interrupted{hint}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:
        before = isinstance(exc, (*_BEFORE_SENDING, BatchInputError))
        _fail(options, exc, EXIT_BEFORE_SENDING if before else EXIT_SEND_FAILED)
    raise typer.Exit(code)


def _fail(options: Options, exc: BaseException, code: int) -> NoReturn:
    if options.debug:
        stderr.print_exception(show_locals=False)
    _print_error(_one_line(exc))
    raise typer.Exit(code)


def _print_error(message: str) -> None:
    from rich.text import Text

    stderr.print(Text.assemble(("error:", "red"), " ", message))


#: Longest word of an error line: a quoted value of a hostile input (a 300 KB cell) is elided.
_LONGEST_WORD = 200


def _one_line(exc: BaseException) -> str:
    text = " ".join(
        word if len(word) <= _LONGEST_WORD else f"{word[:80]}...({len(word)} characters)"
        for word in str(exc).split()
    )
    if isinstance(exc, UsageError | ConfigError) or type(exc).__module__.startswith("gocomm"):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _build(options: Options) -> Container:
    """The command's container (built once, before the event loop starts: reading the file and
    loading the plugins block). Vendor entries are validated by their plugins' models, once,
    when the container binds the settings."""
    from gocomm.config import load_settings
    from gocomm.containers import build_container
    from gocomm.plugins import load_registry

    registry = load_registry()
    container: Container = build_container(load_settings(options.config), registry=registry)
    return container


@asynccontextmanager
async def _running(container: Container) -> AsyncIterator[Container]:
    """``container`` in use; its resources (vendors, timers, Redis) are shut down on every exit."""
    try:
        yield container
    finally:
        await _shut_down(container)


async def _shut_down(container: Container) -> None:
    closing = container.shutdown_resources()
    if closing is not None:  # gocomm's container always returns an awaitable; the stubs allow None
        await closing


async def _sender(container: Container, channel: str) -> Any:
    stack = container.email if channel == "email" else container.sms
    return await stack.sender()


async def _send_one(sender: Any, biz: str, args: Any, to: tuple[str, ...]) -> Receipt | None:
    """One send; a failure that reached some recipients says which ones did not get it."""
    from gocomm.errors import CommError, refused_of, unsent_of

    try:
        receipt: Receipt | None = await sender.send(biz, args, *to)
    except CommError as exc:
        unsent = unsent_of(exc, to)
        refused = [t for t in to if t in refused_of(exc)]
        sent = [t for t in to if t not in unsent and t not in refused]
        if sent and len(sent) < len(to):
            gone = f"; refused for good: {', '.join(refused)}" if refused else ""
            raise PartlySent(
                f"{' '.join(str(exc).split())} (sent to {', '.join(sent)}; "
                f"not sent to {', '.join(unsent)}{gone})"
            ) from exc
        raise
    return receipt


def _send_and_print(
    options: Options, channel: str, biz: str, args: Any, to: tuple[str, ...]
) -> int:
    """``gocomm send``: build the stacks, send once on ``channel``, print the receipt."""
    container = _build(options)

    async def send() -> Receipt | None:
        async with _running(container):
            return await _send_one(await _sender(container, channel), biz, args, to)

    receipt = asyncio.run(send())
    stdout.print(_receipt_line(channel, to, receipt), markup=False)
    return EXIT_OK


def _receipt_line(channel: str, to: tuple[str, ...], receipt: Receipt | None) -> str:
    if receipt is None:
        return f"sent {channel} to {', '.join(to)}"
    ids = f", id {', '.join(receipt.message_ids)}" if receipt.message_ids else ""
    tries = "" if receipt.attempts == 1 else f", after {receipt.attempts} attempts"
    refused = f"; refused: {', '.join(receipt.refused)}" if receipt.refused else ""
    return f"sent {channel} to {', '.join(to)} via {receipt.vendor}{ids}{tries}{refused}"


# -- send ------------------------------------------------------------------------------------

ToOption = Annotated[
    list[str], typer.Option("--to", help="Recipient; repeat the option for several.")
]


@send_app.command("sms")
def send_sms(
    ctx: typer.Context,
    to: ToOption,
    biz: Annotated[str, typer.Option(help="The template's logical name (mapped per vendor).")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Template parameter NAME=VALUE; repeatable."),
    ] = None,
) -> None:
    """Send one SMS: gocomm send sms --to +8613800138000 --biz login --param code=1234"""
    from gocomm.recipients import validate_phone

    options = _options(ctx)

    def command() -> int:
        numbers = tuple(validate_phone(number) for number in to)
        return _send_and_print(options, "sms", biz, _params(param or []), numbers)

    _run(options, command)


def _params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise UsageError(f"--param {pair!r} is not NAME=VALUE (e.g. --param code=1234)")
        params[name.strip()] = value
    return params


@send_app.command("email")
def send_email(
    ctx: typer.Context,
    to: ToOption,
    subject: Annotated[str, typer.Option(help="The subject line.")],
    text: Annotated[str | None, typer.Option(help="The plain-text body.")] = None,
    html: Annotated[str | None, typer.Option(help="The HTML body.")] = None,
    cc: Annotated[list[str] | None, typer.Option(help="Cc address; repeatable.")] = None,
    bcc: Annotated[list[str] | None, typer.Option(help="Bcc address; repeatable.")] = None,
    sender: Annotated[
        str | None, typer.Option("--from", help="The From address (default: the vendor's).")
    ] = None,
    biz: Annotated[
        str, typer.Option(help="Template id for HTTP email vendors; SMTP ignores it.")
    ] = "email",
) -> None:
    """Send one email: gocomm send email --to a@example.com --subject Hi --text Hello"""
    from gocomm.messages import Email
    from gocomm.recipients import validate_email

    options = _options(ctx)

    def command() -> int:
        addresses = tuple(validate_email(a) for a in to)
        message = Email(
            subject=subject,
            text=text,
            html=html,
            sender=validate_email(sender) if sender else None,
            cc=tuple(validate_email(a) for a in cc or ()),
            bcc=tuple(validate_email(a) for a in bcc or ()),
        )
        return _send_and_print(options, "email", biz, message, addresses)

    _run(options, command)


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
    concurrency: Annotated[
        int, typer.Option(min=1, max=1000, help="Sends in flight at once.")
    ] = 8,
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
                    sender, name, file, file_format, total, run_journal, failed_path,
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


def _settings(options: Options, registry: VendorRegistry | None = None) -> Settings:
    """The validated settings (vendor entries by their plugins' models)."""
    from gocomm.config import load_settings
    from gocomm.plugins import load_registry

    return load_settings(options.config).bind(registry or load_registry())


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


# -- worker and dead letters -----------------------------------------------------------------


@app.command("worker")
def worker(
    ctx: typer.Context,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, max=256, help="Worker processes.")
    ] = 2,
) -> None:
    """Run workers that send what the application enqueues (the `queue` section).

    Each process sends `queue.concurrency` messages at once; a process that dies is restarted.
    SIGTERM or Ctrl-C finishes the sends in flight, then stops.
    """
    options = _options(ctx)

    def command() -> int:
        from gocomm.plugins import load_registry
        from gocomm.tasks import require_queue, run_workers

        registry = load_registry()
        settings = _settings(options, registry)
        require_queue(settings, "gocomm worker")
        level = logging.DEBUG if options.debug else logging.WARNING
        from gocomm.telemetry.install import metrics_endpoint

        # telemetry.prometheus.port: the metrics of every worker process, added up
        with metrics_endpoint(settings, processes=True):
            return run_workers(settings, workers=workers, registry=registry, log_level=level)

    _run(options, command)


dead_app = typer.Typer(help="Show, send again or remove the dead letters of the queue.")
app.add_typer(dead_app, name="dead-letter")


@dead_app.callback(invoke_without_command=True)
def _dead_group(ctx: typer.Context) -> None:
    _help_without_command(ctx)


IdsArgument = Annotated[
    list[str] | None,
    typer.Argument(help="Dead letter ids (default: all of them).", metavar="[ID]..."),
]


def _dead_letter_command(
    ctx: typer.Context, what: Callable[[Any, Any, list[Any]], Any], ids: list[str] | None
) -> None:
    options = _options(ctx)

    def command() -> int:
        from gocomm.tasks import GocommTasks, make_broker, require_queue

        settings = _settings(options)
        require_queue(settings, "gocomm dead-letter")

        async def run() -> None:
            async with GocommTasks(make_broker(settings), settings=settings) as tasks:
                store = tasks.dead_letter_store()
                letters = await store.list()
                if ids:
                    known = {letter.id for letter in letters}
                    unknown = [i for i in ids if i not in known]
                    if unknown:
                        raise UsageError(
                            f"no dead letter {unknown[0]!r}; `gocomm dead-letter list` shows them"
                        )
                    letters = [letter for letter in letters if letter.id in set(ids)]
                await what(tasks, store, letters)

        asyncio.run(run())
        return EXIT_OK

    _run(options, command)


@dead_app.command("list")
def dead_letter_list(ctx: typer.Context) -> None:
    """Show the dead letters: id, channel, biz, recipients and the error."""

    async def show(tasks: Any, store: Any, letters: list[Any]) -> None:
        from rich.text import Text

        table = Table(title=f"dead letters ({len(letters)})", title_justify="left")
        for column in ("id", "channel", "biz", "to", "error"):
            table.add_column(column, overflow="fold")
        for letter in letters:
            table.add_row(
                Text(letter.id), Text(letter.channel), Text(letter.biz),
                Text(", ".join(letter.to)), Text(letter.error, style="red"),
            )  # fmt: skip
        stdout.print(table)

    _dead_letter_command(ctx, show, None)


@dead_app.command("retry")
def dead_letter_retry(ctx: typer.Context, ids: IdsArgument = None) -> None:
    """Enqueue dead letters again (same idempotency key: nobody already sent gets a copy)."""

    async def retry(tasks: Any, store: Any, letters: list[Any]) -> None:
        for letter in letters:
            await tasks.kick({**letter.task, "attempt": 0})
            await store.delete([letter.id])
        stdout.print(f"enqueued {len(letters)} dead letters again", markup=False)

    _dead_letter_command(ctx, retry, ids)


@dead_app.command("purge")
def dead_letter_purge(ctx: typer.Context, ids: IdsArgument = None) -> None:
    """Remove dead letters for good."""

    async def purge(tasks: Any, store: Any, letters: list[Any]) -> None:
        removed = await store.delete([letter.id for letter in letters])
        stdout.print(f"removed {removed} dead letters", markup=False)

    _dead_letter_command(ctx, purge, ids)


# -- plugins ---------------------------------------------------------------------------------


@app.command("plugins")
def plugins(ctx: typer.Context) -> None:
    """List the registered vendors, and the plugins that failed to load."""
    options = _options(ctx)

    def command() -> int:
        from rich.text import Text

        from gocomm.plugins import load_registry

        registry = load_registry()
        stdout.print(_vendor_table(registry))
        if registry.failures:
            table = Table(title="plugins that failed to load", title_justify="left")
            table.add_column("plugin")
            table.add_column("error", style="red")
            for failure in registry.failures:
                table.add_row(Text(_failure_label(failure)), Text(" ".join(failure.error.split())))
            stdout.print(table)
        return EXIT_OK

    _run(options, command)


def _vendor_table(registry: VendorRegistry) -> Table:
    from importlib.metadata import PackageNotFoundError, version

    from rich.text import Text

    table = Table(title="vendors", title_justify="left")
    for column in ("name", "channels", "distribution", "version", "description"):
        table.add_column(column)
    for name in registry.names():
        spec = registry.get(name)
        distribution = spec.distribution or "gocomm"
        try:
            dist_version = version(distribution)
        except PackageNotFoundError:
            dist_version = "?"
        channels = ", ".join(sorted(spec.channels))
        cells = (name, channels, distribution, dist_version, spec.description)
        table.add_row(*(Text(cell) for cell in cells))
    return table


def _failure_label(failure: PluginFailure) -> str:
    return f"{failure.name} ({failure.distribution})" if failure.distribution else failure.name


# -- config ----------------------------------------------------------------------------------


@app.command("config")
def config(ctx: typer.Context) -> None:
    """Show the effective configuration, secrets masked, and each channel's stack."""
    options = _options(ctx)

    def command() -> int:
        container = _build(options)  # validates every vendor entry
        try:
            _print_config(container.settings())
        finally:
            asyncio.run(_shut_down(container))
        return EXIT_OK

    _run(options, command)


def _print_config(settings: Settings) -> None:
    import yaml
    from rich.syntax import Syntax
    from rich.tree import Tree

    from gocomm.stacks import describe_stacks

    masked = yaml.safe_dump(_plain(settings.masked_dict()), sort_keys=False, allow_unicode=True)
    stdout.print("[bold]configuration[/bold] (secrets masked)")
    stdout.print(Syntax(masked.rstrip(), "yaml", theme="ansi_dark", background_color="default"))
    for channel, stack in describe_stacks(settings).items():
        tree = Tree(f"[bold]{channel}[/bold]")
        if stack is None:
            tree.add("[dim]not configured[/dim]")
        else:
            _add_stage(tree, stack)
        stdout.print(tree, soft_wrap=False)


def _plain(value: Any) -> Any:
    """``value`` as YAML-safe data: paths and other objects as their text."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _add_stage(parent: Tree, node: StackNode) -> None:
    from rich.text import Text

    label = Text(node.label, style="bold" if node.children else "")
    if node.detail:
        label.append(f"  {node.detail}", style="dim")
    label.overflow = "fold"  # never crop a stage's description
    branch = parent.add(label)
    for child in node.children:
        _add_stage(branch, child)


# -- fake ------------------------------------------------------------------------------------


@app.command("fake")
def fake(
    ctx: typer.Context,
    vendor: Annotated[str, typer.Argument(help="The vendor whose fake to run, e.g. aliyun.")],
    port: Annotated[
        int, typer.Option("--port", "-p", help="Port on 127.0.0.1; 0 picks a free one.")
    ] = 0,
) -> None:
    """Run a vendor's fake server on 127.0.0.1 for local development, until Ctrl-C.

    Prints the configuration (YAML and GOCOMM_ variables) that sends to it, and logs every
    request it verifies.
    """
    options = _options(ctx)

    def command() -> int:
        from gocomm.plugins import load_registry
        from gocomm.testing.fakes import load_fake, serve_fake

        spec, server = load_fake(load_registry(), vendor)
        log = logging.getLogger("gocomm.fake")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False  # one plain line per request, not wrapped by the rich handler
        try:
            asyncio.run(serve_fake(server, port, lambda: _announce_fake(spec, server)))
        except KeyboardInterrupt:
            stderr.print(f"fake {vendor} stopped")
        finally:
            log.removeHandler(handler)
        return EXIT_OK

    _run(options, command)


def _announce_fake(spec: VendorSpec, server: LocalFake) -> None:
    import shlex

    import yaml

    from gocomm.testing.fakes import configuration_entry, environment

    entry = configuration_entry(spec, server.settings())
    channels = sorted(spec.channels)
    document = yaml.safe_dump(
        {channel: {"vendors": [entry]} for channel in channels},
        sort_keys=False,
        allow_unicode=True,
    )
    variables = "\n".join(
        f"export {name}={shlex.quote(value)}" for name, value in environment(spec, entry).items()
    )
    lines = [
        f"fake {spec.name} serving on {server.url} (Ctrl-C stops it); each request it "
        "verifies is logged below.",
        "",
        "Point a configuration at it (YAML):",
        "",
        document.rstrip(),
        "",
        "or through the environment:",
        "",
        variables,
        "",
    ]
    # Plain text, flushed at once: a script may be waiting on these lines through a pipe.
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the ``gocomm`` console script.

    Usage errors become one ``error:`` line too, with exit code 2.
    """
    try:
        code = app(args=argv, prog_name="gocomm", standalone_mode=False)
    except typer.Abort:
        _print_error("interrupted")
        code = EXIT_INTERRUPTED
    except typer.TyperException as exc:  # click's usage errors, as typer carries them
        format_message = getattr(exc, "format_message", None)
        message = format_message() if callable(format_message) else str(exc)
        context = getattr(exc, "ctx", None)
        hint = f" (see: {context.command_path} --help)" if context is not None else ""
        _print_error(f"{' '.join(str(message).split())}{hint}")
        code = getattr(exc, "exit_code", EXIT_BEFORE_SENDING)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
