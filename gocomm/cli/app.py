"""The ``gocomm`` application: options, exit codes, and what every command shares (building
the container, running it, printing errors and receipts); ``main`` is the console script."""

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

from gocomm.errors import ConfigError, InvalidMessage, InvalidRecipient
from gocomm.sender import Receipt

if TYPE_CHECKING:
    from gocomm.config import Settings
    from gocomm.containers import Container
    from gocomm.plugins import VendorRegistry

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


def _settings(options: Options, registry: VendorRegistry | None = None) -> Settings:
    """The validated settings (vendor entries by their plugins' models)."""
    from gocomm.config import load_settings
    from gocomm.plugins import load_registry

    return load_settings(options.config).bind(registry or load_registry())


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
