"""The vendor registry: what a vendor is (:class:`VendorSpec`) and the vendors known by name.

Plugins fill it through the ``gocomm_register_vendors`` hook (:mod:`gocomm.hookspecs`); the
loader (:mod:`gocomm.plugins`) drives it through this public API only: :meth:`VendorRegistry.add`
inside :meth:`VendorRegistry.attributed_to` for one plugin's additions, and
:meth:`VendorRegistry.record_failure` for a plugin that did not register.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from gocomm.channels import CHANNELS
from gocomm.errors import ConfigError
from gocomm.sender import Sender

__all__ = ["DISABLE_ENV", "PluginFailure", "VendorRegistry", "VendorSettings", "VendorSpec"]

#: Comma-separated entry point names of plugins not to load.
DISABLE_ENV = "GOCOMM_DISABLE_PLUGINS"

_VENDOR_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_FAKE_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")

_log = logging.getLogger("gocomm.plugins")


class VendorSettings(BaseModel):
    """Base of every vendor's settings model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class VendorSpec:
    """One vendor: its registered name, the channels it serves, its settings model and factory.

    ``factory(settings)`` builds the vendor from a validated ``settings`` instance; import
    heavy dependencies inside it. ``distribution`` is filled in by the loader. ``fake``, when
    the package ships a fake server of the vendor, names its class as ``"module:Class"``
    (imported only when used, by ``gocomm fake NAME``; see :mod:`gocomm.testing.fakes`).
    """

    name: str
    channels: frozenset[str]
    settings: type[BaseModel]
    factory: Callable[[Any], Sender[Any]]
    description: str = ""
    distribution: str | None = None
    fake: str | None = None

    def __post_init__(self) -> None:
        # Accept any iterable of channel names ({"sms"}, ["email", "sms"]), store a frozenset.
        channels: object = self.channels
        if isinstance(channels, str):
            channels = {channels}
        if not isinstance(channels, Iterable):
            raise ConfigError(f"vendor {self.name!r}: channels must be a set of channel names")
        object.__setattr__(self, "channels", frozenset(channels))


class PluginFailure(NamedTuple):
    """A plugin that did not register: its entry point name, its distribution, what failed."""

    name: str
    distribution: str | None
    error: str


def _origin(spec: VendorSpec) -> str:
    if spec.distribution is None:
        return "an unattributed registration"
    return f"distribution {spec.distribution!r}"


def _check_spec(spec: VendorSpec) -> None:
    if not isinstance(spec, VendorSpec):
        raise ConfigError(f"registry.add() takes a VendorSpec, not {type(spec).__name__}")
    if not isinstance(spec.name, str) or not _VENDOR_NAME.fullmatch(spec.name):
        raise ConfigError(
            f"vendor name {spec.name!r} is not valid: use lowercase letters, digits, '-' and "
            "'_', starting with a letter"
        )
    if not spec.channels or not spec.channels <= set(CHANNELS):
        raise ConfigError(
            f"vendor {spec.name!r}: channels {sorted(spec.channels)} must be a non-empty "
            f"subset of {sorted(CHANNELS)}"
        )
    if not (isinstance(spec.settings, type) and issubclass(spec.settings, BaseModel)):
        raise ConfigError(
            f"vendor {spec.name!r}: settings must be a pydantic model class "
            "(subclass gocomm.plugins.VendorSettings)"
        )
    if not callable(spec.factory):
        raise ConfigError(f"vendor {spec.name!r}: factory must be callable as factory(settings)")
    fake = spec.fake
    if fake is not None and not (isinstance(fake, str) and _FAKE_PATH.fullmatch(fake)):
        raise ConfigError(
            f"vendor {spec.name!r}: fake must name a class as 'module:Class', got {spec.fake!r}"
        )


class VendorRegistry:
    """The vendors available by name, and the plugins that failed to provide theirs.

    Iterating yields the :class:`VendorSpec`\\ s in registration order (built-ins first).
    """

    def __init__(self) -> None:
        self._specs: dict[str, VendorSpec] = {}
        # While the loader calls one plugin's hook, its additions are staged here and kept only
        # if the hook returns: a plugin that raises leaves nothing half-registered.
        self._staged: dict[str, VendorSpec] | None = None
        self._distribution: str | None = None
        #: Plugins that failed to import or whose hook raised, in the order they were tried.
        self.failures: list[PluginFailure] = []
        #: Entry point names skipped because of ``GOCOMM_DISABLE_PLUGINS``.
        self.disabled: list[str] = []

    def add(self, spec: VendorSpec) -> None:
        """Register ``spec``; a name already registered raises :class:`ConfigError` naming
        the distributions of both."""
        _check_spec(spec)
        if self._staged is not None:
            # The loader knows which distribution is registering; a plugin cannot claim another.
            spec = replace(spec, distribution=self._distribution)
        existing = self._specs.get(spec.name)
        if existing is None and self._staged is not None:
            existing = self._staged.get(spec.name)
        if existing is not None:
            raise ConfigError(
                f"vendor {spec.name!r} from {_origin(spec)} is already registered by "
                f"{_origin(existing)}; a vendor name is registered once: uninstall one of them "
                f"or disable one plugin with {DISABLE_ENV}"
            )
        target = self._staged if self._staged is not None else self._specs
        target[spec.name] = spec

    def get(self, name: str) -> VendorSpec:
        """The vendor registered as ``name``; :class:`ConfigError` listing the names if none."""
        try:
            return self._specs[name]
        except KeyError:
            pass
        known = ", ".join(self.names()) or "none"
        reasons = [
            f"plugin {f.name!r} failed to load: {f.error}" for f in self.failures if f.name == name
        ]
        if name in self.disabled:
            reasons.append(f"plugin {name!r} is disabled by {DISABLE_ENV}")
        reason = "; ".join(reasons) if reasons else "install the package that provides it"
        raise ConfigError(f"unknown vendor {name!r} ({reason}); registered vendors: {known}")

    def names(self) -> list[str]:
        """The registered vendor names, sorted."""
        return sorted(self._specs)

    def specs(self) -> list[VendorSpec]:
        """The registered specs in registration order."""
        return list(self._specs.values())

    def for_channel(self, channel: str) -> list[VendorSpec]:
        """The specs of the vendors that serve ``channel``."""
        return [spec for spec in self._specs.values() if channel in spec.channels]

    def __iter__(self) -> Iterator[VendorSpec]:
        return iter(self.specs())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __repr__(self) -> str:
        return f"VendorRegistry(names={self.names()!r}, failures={len(self.failures)})"

    @contextlib.contextmanager
    def attributed_to(self, distribution: str | None) -> Iterator[None]:
        """Attribute what :meth:`add` registers inside the block to ``distribution`` (one
        plugin's hook runs there); it is kept only if the block does not raise."""
        self._staged, self._distribution = {}, distribution
        try:
            yield
            staged = self._staged
        finally:
            self._staged, self._distribution = None, None
        self._specs.update(staged)

    def record_failure(self, name: str, distribution: str | None, error: str) -> None:
        """Record (and log) that plugin ``name`` of ``distribution`` did not register."""
        self.failures.append(PluginFailure(name, distribution, error))
        where = f" (distribution {distribution!r})" if distribution else ""
        _log.warning("gocomm plugin %r%s not loaded: %s", name, where, error)


