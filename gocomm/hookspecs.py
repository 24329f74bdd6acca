"""The hooks a gocomm plugin implements (pytest's ``hookspec.py`` is the model).

This module imports nothing of gocomm's at run time, so plugins and the loader both import
it without a cycle. A plugin is a module (or any object) with functions marked
``@gocomm.plugins.hookimpl`` (the same marker as ``gocomm.hookspecs.hookimpl``) whose
names are hooks declared here. An installed distribution exposes its plugin through the entry
point group ``gocomm``::

    [project.entry-points.gocomm]
    acme = "gocomm_acme.plugin"

Hook implementations may take any subset of the arguments declared here, by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from gocomm.registry import VendorRegistry

__all__ = ["PROJECT", "gocomm_register_vendors", "hookimpl", "hookspec"]

PROJECT = "gocomm"
#: Marks the hook specifications below.
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's hook implementations (also importable as ``gocomm.plugins.hookimpl``).
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def gocomm_register_vendors(registry: VendorRegistry) -> None:
    """Register the vendors this plugin provides.

    :param registry: the registry being built; call ``registry.add(VendorSpec(...))`` once per
        vendor. Each plugin's implementation is called on its own, and what it adds is
        attributed to its distribution (any ``distribution`` set on the spec is overwritten).

    A vendor name already taken (by a built-in vendor or another plugin) makes ``add`` raise
    :class:`~gocomm.errors.ConfigError`. If the hook raises, nothing it added is kept, the
    failure is recorded in ``registry.failures`` and the other plugins still register.

    Keep this hook cheap: define the settings model at import time, but import the vendor's
    heavy dependencies inside its ``factory``, which runs only when the vendor is configured.

    Example::

        from gocomm.plugins import VendorSpec, hookimpl

        @hookimpl
        def gocomm_register_vendors(registry):
            registry.add(VendorSpec("acme", frozenset({"sms"}), AcmeSettings, make_acme))
    """
