"""Checks (and their tools) that every vendor package's own tests make the same way.

- :func:`shown_texts` and :func:`assert_not_shown`: after a failed send, no secret may appear in
  anything a user sees (the error, the vendor's and the settings' reprs, the log).
- :func:`assert_plugin_entry_point`: the installed distribution registers its vendor through
  the ``gocomm`` entry point, with the right channels and settings model;
  :func:`assert_hook_registers`: the plugin's hook registers exactly that vendor.
- :func:`stalled_server`: an HTTP server on loopback that takes requests and answers none
  while the block runs, for read timeouts and cancellation in flight.
- :func:`modules_imported_by`: which of some modules a fresh interpreter loads along with one
  import, for "this import stays light" checks.

The contract suite (:mod:`gocomm.testing.contract`) checks what a vendor does; these check how a
vendor package presents itself, where each package supplies its own names and values.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

import pytest
from pydantic import BaseModel

from gocomm.plugins import VendorRegistry, VendorSpec, load_registry
from gocomm.testing.httpserver import HttpRequest, HttpResponse, LocalHttpServer

__all__ = [
    "StalledServer",
    "assert_hook_registers",
    "assert_not_shown",
    "assert_plugin_entry_point",
    "modules_imported_by",
    "shown_texts",
    "stalled_server",
]


def shown_texts(
    error: BaseException, vendor: object, settings: BaseModel, caplog: pytest.LogCaptureFixture
) -> list[str]:
    """Every text of a failed send a user may see: error, vendor, settings and the log."""
    texts = [str(error), repr(error), repr(vendor), str(vendor), repr(vars(vendor))]
    texts += [repr(settings), str(settings), settings.model_dump_json(), caplog.text]
    texts += [record.getMessage() for record in caplog.records]
    return texts


def assert_not_shown(texts: Iterable[str], *secrets: str) -> None:
    """Fail, naming the text, if any of ``secrets`` appears in any of ``texts``."""
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret appears in {text[:200]!r}"


def assert_plugin_entry_point(
    name: str, *, distribution: str, channels: Iterable[str], settings: type[BaseModel]
) -> VendorSpec:
    """The vendor ``name`` loads through the entry point of ``distribution``; return its spec."""
    registry = load_registry()
    assert not [f for f in registry.failures if f.name == name], registry.failures
    spec = registry.get(name)
    assert spec.distribution == distribution
    assert spec.channels == frozenset(channels)
    assert spec.settings is settings
    return spec


def assert_hook_registers(
    hook: Callable[[VendorRegistry], object],
    spec: VendorSpec,
    *,
    name: str,
    channels: Iterable[str],
) -> None:
    """``hook`` (a plugin's ``gocomm_register_vendors``) registers ``spec`` alone, as described."""
    registry = VendorRegistry()
    hook(registry)
    assert list(registry) == [spec]
    assert (spec.name, spec.channels) == (name, frozenset(channels))


@dataclass
class StalledServer:
    """A running :func:`stalled_server`: its ``url``; ``entered`` is set by the first request."""

    server: LocalHttpServer
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return self.server.url


@contextlib.asynccontextmanager
async def stalled_server() -> AsyncIterator[StalledServer]:
    """A loopback HTTP server that holds every request unanswered until the block ends."""
    release = asyncio.Event()
    entered = asyncio.Event()

    async def stall(request: HttpRequest) -> HttpResponse:
        entered.set()
        await release.wait()
        return HttpResponse(503)

    async with LocalHttpServer(stall) as server:
        try:
            yield StalledServer(server, entered)
        finally:
            release.set()  # let held handlers finish before the server closes


def modules_imported_by(statement: str, candidates: Iterable[str]) -> list[str]:
    """Those of ``candidates`` in ``sys.modules`` after ``statement`` runs in a fresh Python."""
    names = sorted(candidates)
    code = "\n".join(
        [
            "import json, sys",
            statement,
            f"print(json.dumps([m for m in {names!r} if m in sys.modules]))",
        ]
    )
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    loaded: list[str] = json.loads(result.stdout)
    return loaded
