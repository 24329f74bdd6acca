"""``gocomm plugins`` and ``gocomm config``: what is installed and what a configuration builds."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

if TYPE_CHECKING:
    from rich.tree import Tree

    from gocomm.config import Settings
    from gocomm.plugins import PluginFailure, VendorRegistry
    from gocomm.stacks import StackNode

from gocomm.cli.app import (
    EXIT_OK,
    _build,
    _options,
    _run,
    _shut_down,
    app,
    stdout,
)

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
