"""Vendors' fake servers outside tests: what ``gocomm fake NAME`` runs for local development.

A vendor package names its fake in its :class:`~gocomm.plugins.VendorSpec`
(``fake="gocomm_acme.testing:FakeAcme"``), so every installed vendor that ships one is found
the same way, without gocomm knowing the vendor. A fake (:class:`LocalFake`) is built with no
argument, serves on loopback while ``async with fake.serving(port=...)`` runs, and offers
``settings()``, the vendor settings that reach it; each request it verifies is logged on
``gocomm.fake``. :class:`~gocomm.testing.httpserver.FakeVendorServer` is such a class.

No pytest here: this runs in a developer's shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, SecretStr

from gocomm.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable

    from gocomm.plugins import VendorRegistry, VendorSpec

__all__ = ["LocalFake", "configuration_entry", "environment", "load_fake", "serve_fake"]


class LocalFake(Protocol):
    """What ``gocomm fake`` needs of a vendor's fake server."""

    @property
    def url(self) -> str:
        """Its base URL while it serves."""
        ...

    def serving(self, port: int = 0) -> AbstractAsyncContextManager[Any]:
        """Serve on ``127.0.0.1:port`` (0: a free port) while the block runs."""
        ...

    def settings(self, **overrides: Any) -> BaseModel:
        """Vendor settings whose endpoint and credentials reach this fake."""
        ...


def _with_fakes(registry: VendorRegistry) -> str:
    names = [name for name in registry.names() if registry.get(name).fake is not None]
    return ", ".join(names) if names else "none is installed"


def load_fake(registry: VendorRegistry, name: str) -> tuple[VendorSpec, LocalFake]:
    """The vendor ``name`` and a new instance of its fake server (not serving yet).

    Raises :class:`ConfigError` for an unknown vendor, a vendor without a fake (naming those
    that have one) and a fake that cannot be imported.
    """
    spec = registry.get(name)
    if spec.fake is None:
        raise ConfigError(
            f"vendor {name!r} ships no fake server; vendors with one: {_with_fakes(registry)}"
        )
    module_name, _, attribute = spec.fake.partition(":")
    try:
        fake_class = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"vendor {name!r}: its fake server {spec.fake!r} cannot be loaded ({exc}); "
            f"reinstall {spec.distribution or 'its package'}"
        ) from exc
    fake: LocalFake = fake_class()
    return spec, fake


def configuration_entry(spec: VendorSpec, settings: BaseModel) -> dict[str, Any]:
    """The vendor entry of a configuration that points at a fake: ``plugin`` and the settings
    the fake set. Its credentials are shown as they are: they are the fake's own test values."""
    entry: dict[str, Any] = {"plugin": spec.name}
    values = settings.model_dump(mode="json", exclude_unset=True)
    for field in values:
        value = getattr(settings, field)
        entry[field] = value.get_secret_value() if isinstance(value, SecretStr) else values[field]
    return entry


def environment(spec: VendorSpec, entry: dict[str, Any]) -> dict[str, str]:
    """``GOCOMM_<CHANNEL>__VENDORS`` variables sending each channel of the vendor to the fake."""
    vendors = json.dumps([entry], ensure_ascii=False)
    return {f"GOCOMM_{channel.upper()}__VENDORS": vendors for channel in sorted(spec.channels)}


async def serve_fake(
    fake: LocalFake, port: int, ready: Callable[[], None], stop: asyncio.Event | None = None
) -> None:
    """Serve ``fake`` on ``127.0.0.1:port``, call ``ready()`` once it listens, and keep serving
    until ``stop`` is set (or the task is cancelled: Ctrl-C)."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(fake.serving(port=port))
        except OSError as exc:
            raise ConfigError(
                f"cannot serve on 127.0.0.1:{port} ({exc.strerror or exc}): choose another "
                "--port, or 0 for a free one"
            ) from exc
        ready()
        await (stop or asyncio.Event()).wait()
