"""``gocomm worker`` and ``gocomm dead-letter``: the taskiq workers and their dead letters."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

if TYPE_CHECKING:
    pass

from gocomm.cli.app import (
    EXIT_OK,
    UsageError,
    _help_without_command,
    _options,
    _run,
    _settings,
    app,
    stdout,
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
