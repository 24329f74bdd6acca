"""Vendor plugins: pluggy markers, the vendor spec and registry, and the loader.

A plugin is a module with a ``@hookimpl`` function ``gocomm_register_vendors(registry)`` (see
:mod:`gocomm.hookspecs`), published by its distribution under the entry point group
``gocomm``. :func:`load_registry` registers the built-in vendors, then loads the plugins one by
one, so that a broken plugin is reported (``registry.failures``) while the others still load.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, NamedTuple

import pluggy
from pydantic import BaseModel, ConfigDict

from gocomm.errors import ConfigError
from gocomm.sender import Sender

__all__ = [
    "BUILTIN_DISTRIBUTION",
    "CHANNELS",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "PROJECT",
    "PluginFailure",
    "VendorRegistry",
    "VendorSettings",
    "VendorSpec",
    "hookimpl",
    "hookspec",
    "load_registry",
]

PROJECT = "gocomm"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: The entry point group plugins are published under.
ENTRY_POINT_GROUP = "gocomm"
#: Comma-separated entry point names of plugins not to load.
DISABLE_ENV = "GOCOMM_DISABLE_PLUGINS"
#: The distribution the built-in vendors are attributed to.
BUILTIN_DISTRIBUTION = "gocomm"
#: The channels a vendor can serve.
CHANNELS = frozenset({"email", "sms"})

_HOOK = "gocomm_register_vendors"
_BUILTIN_PLUGIN = "gocomm.vendors.builtin"
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
    if not spec.channels or not spec.channels <= CHANNELS:
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

    def _register_from(self, distribution: str | None, register: Callable[[], object]) -> None:
        """Run ``register`` (one plugin's hook) with its additions attributed to
        ``distribution``; they are kept only if it returns."""
        self._staged, self._distribution = {}, distribution
        try:
            register()
            staged = self._staged
        finally:
            self._staged, self._distribution = None, None
        self._specs.update(staged)

    def _fail(self, name: str, distribution: str | None, error: str) -> None:
        self.failures.append(PluginFailure(name, distribution, error))
        where = f" (distribution {distribution!r})" if distribution else ""
        _log.warning("gocomm plugin %r%s not loaded: %s", name, where, error)


def _disabled_names() -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def _plugin_label(plugin: object) -> str:
    name = getattr(plugin, "__name__", None)
    return name if isinstance(name, str) else type(plugin).__qualname__


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _register_plugin(
    manager: pluggy.PluginManager,
    registry: VendorRegistry,
    plugin: object,
    name: str,
    distribution: str | None,
    loaded: dict[str, str | None],
) -> None:
    """Register one plugin with pluggy and call its hook on its own; record any failure.

    ``loaded`` maps the plugin names registered so far to their distributions, so that a
    second distribution using the same entry point name is refused naming both (pluggy's own
    refusal names neither).
    """
    if name in loaded:
        registry._fail(
            name,
            distribution,
            f"the plugin name {name!r} is already taken by distribution {loaded[name]!r}; "
            f"keep only one of {loaded[name]!r} and {distribution!r} installed",
        )
        return
    try:
        manager.register(plugin, name=name)
    except Exception as exc:  # a name or object registered twice, a hookimpl with bad arguments
        registry._fail(name, distribution, f"cannot register the plugin: {_describe(exc)}")
        return
    loaded[name] = distribution
    callers = manager.get_hookcallers(plugin) or []
    unknown = sorted(caller.name for caller in callers if not caller.has_spec())
    if unknown or not callers:
        manager.unregister(plugin)
        problem = f"unknown hook(s) {unknown}" if unknown else "no @hookimpl"
        registry._fail(
            name,
            distribution,
            f"{problem}: a gocomm plugin defines `{_HOOK}(registry)` marked with "
            "gocomm.plugins.hookimpl",
        )
        return
    others = [other for other in manager.get_plugins() if other is not plugin]
    call_one = manager.subset_hook_caller(_HOOK, remove_plugins=others)
    try:
        registry._register_from(distribution, lambda: call_one(registry=registry))
    except Exception as exc:  # reported; the other plugins still register
        registry._fail(name, distribution, f"{_HOOK} raised {_describe(exc)}")


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    # importlib.metadata already keeps one distribution per name (the first on sys.path).
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def load_registry(
    *, entry_points: bool = True, plugins: Iterable[ModuleType | object] = ()
) -> VendorRegistry:
    """Build the vendor registry.

    The built-in vendors (memory, console, file) are registered first and directly, so they
    are present even with ``entry_points=False`` and can be neither disabled nor replaced.
    Then each entry point of the group ``gocomm`` is imported and its hook called on its own,
    unless its name is listed in ``GOCOMM_DISABLE_PLUGINS``; one that fails to import, or whose
    hook raises, is recorded in ``registry.failures`` and the others still load. Finally each
    object of ``plugins`` (a module or any object with hook implementations; for tests and
    applications) registers, attributed to its ``__name__``.
    """
    from gocomm import hookspecs
    from gocomm.vendors import builtin

    registry = VendorRegistry()
    loaded: dict[str, str | None] = {}
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(builtin, name=_BUILTIN_PLUGIN)
    loaded[_BUILTIN_PLUGIN] = BUILTIN_DISTRIBUTION
    # A failure here is a bug in gocomm itself: let it raise rather than record it.
    registry._register_from(
        BUILTIN_DISTRIBUTION, lambda: builtin.gocomm_register_vendors(registry=registry)
    )

    if entry_points:
        disabled = _disabled_names()
        builtin_names = set(registry.names()) | {BUILTIN_DISTRIBUTION}
        for name in sorted(disabled & builtin_names):
            _log.warning("%s lists %r: built-in vendors cannot be disabled", DISABLE_ENV, name)
        for entry_point in _entry_points():
            distribution = entry_point.dist.name if entry_point.dist is not None else None
            if entry_point.name in disabled:
                registry.disabled.append(entry_point.name)
                _log.info("gocomm plugin %r disabled by %s", entry_point.name, DISABLE_ENV)
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:  # a broken plugin must not stop the others
                registry._fail(
                    entry_point.name,
                    distribution,
                    f"cannot import {entry_point.value}: {_describe(exc)}",
                )
                continue
            _register_plugin(manager, registry, plugin, entry_point.name, distribution, loaded)

    for plugin in plugins:
        label = _plugin_label(plugin)
        _register_plugin(manager, registry, plugin, label, label, loaded)
    return registry
