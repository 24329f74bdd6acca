"""``gocomm fake NAME``: a vendor's fake server for local development."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from gocomm.plugins import VendorSpec
    from gocomm.testing.fakes import LocalFake

from gocomm.cli.app import (
    EXIT_OK,
    _options,
    _run,
    app,
    stderr,
)

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
