"""Loading vendor plugins: the built-in vendors, then every entry point of group ``gocomm``.

A plugin is a module with a ``@hookimpl`` function ``gocomm_register_vendors(registry)`` (see
:mod:`gocomm.hookspecs`), published by its distribution under the entry point group
``gocomm``. :func:`load_registry` registers the built-in vendors, then loads the plugins one by
one, so that a broken plugin is reported (``registry.failures``) while the others still load.

This module is also where plugin authors import from: it re-exports the markers
(:mod:`gocomm.hookspecs`) and the registry's types (:mod:`gocomm.registry`).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Iterable
from types import ModuleType

import pluggy

from gocomm import hookspecs
from gocomm.channels import CHANNELS
from gocomm.hookspecs import PROJECT, hookimpl, hookspec
from gocomm.registry import (
    DISABLE_ENV,
    PluginFailure,
    VendorRegistry,
    VendorSettings,
    VendorSpec,
)
from gocomm.vendors import builtin

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

#: The entry point group plugins are published under.
ENTRY_POINT_GROUP = "gocomm"
#: The distribution the built-in vendors are attributed to.
BUILTIN_DISTRIBUTION = "gocomm"

_HOOK = "gocomm_register_vendors"
_BUILTIN_PLUGIN = "gocomm.vendors.builtin"

_log = logging.getLogger("gocomm.plugins")


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
        registry.record_failure(
            name,
            distribution,
            f"the plugin name {name!r} is already taken by distribution {loaded[name]!r}; "
            f"keep only one of {loaded[name]!r} and {distribution!r} installed",
        )
        return
    try:
        manager.register(plugin, name=name)
    except Exception as exc:  # a name or object registered twice, a hookimpl with bad arguments
        registry.record_failure(name, distribution, f"cannot register the plugin: {_describe(exc)}")
        return
    loaded[name] = distribution
    callers = manager.get_hookcallers(plugin) or []
    unknown = sorted(caller.name for caller in callers if not caller.has_spec())
    if unknown or not callers:
        manager.unregister(plugin)
        problem = f"unknown hook(s) {unknown}" if unknown else "no @hookimpl"
        registry.record_failure(
            name,
            distribution,
            f"{problem}: a gocomm plugin defines `{_HOOK}(registry)` marked with "
            "gocomm.plugins.hookimpl",
        )
        return
    others = [other for other in manager.get_plugins() if other is not plugin]
    call_one = manager.subset_hook_caller(_HOOK, remove_plugins=others)
    try:
        with registry.attributed_to(distribution):
            call_one(registry=registry)
    except Exception as exc:  # reported; the other plugins still register
        registry.record_failure(name, distribution, f"{_HOOK} raised {_describe(exc)}")


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

    registry = VendorRegistry()
    loaded: dict[str, str | None] = {}
    manager = pluggy.PluginManager(PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(builtin, name=_BUILTIN_PLUGIN)
    loaded[_BUILTIN_PLUGIN] = BUILTIN_DISTRIBUTION
    # A failure here is a bug in gocomm itself: let it raise rather than record it.
    with registry.attributed_to(BUILTIN_DISTRIBUTION):
        builtin.gocomm_register_vendors(registry=registry)

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
                registry.record_failure(
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
