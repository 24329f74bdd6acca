"""Registers gocomm's built-in development vendors: ``memory``, ``console`` and ``file``.

This module is a plugin like any other, except that :func:`gocomm.plugins.load_registry`
registers it directly rather than through an entry point: it cannot be disabled, and its
vendor names are taken before any third-party plugin registers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gocomm.channels import CHANNELS
from gocomm.hookspecs import hookimpl
from gocomm.registry import VendorSpec
from gocomm.vendors.console import ConsoleSettings, ConsoleVendor
from gocomm.vendors.file import FileSettings, FileVendor
from gocomm.vendors.memory import MemorySettings, MemoryVendor

if TYPE_CHECKING:
    from gocomm.registry import VendorRegistry

__all__ = ["BUILTIN_VENDORS", "gocomm_register_vendors"]

BOTH = frozenset(CHANNELS)


def _memory(settings: MemorySettings) -> MemoryVendor:
    return MemoryVendor(settings)


def _console(settings: ConsoleSettings) -> ConsoleVendor:
    return ConsoleVendor(settings)


def _file(settings: FileSettings) -> FileVendor:
    return FileVendor.from_settings(settings)


BUILTIN_VENDORS: tuple[VendorSpec, ...] = (
    VendorSpec(
        "memory", BOTH, MemorySettings, _memory, "records every send in memory (tests, demos)"
    ),
    VendorSpec("console", BOTH, ConsoleSettings, _console, "prints each message to stdout"),
    VendorSpec(
        "file", BOTH, FileSettings, _file, "writes each message to a directory (.eml, .json)"
    ),
)


@hookimpl
def gocomm_register_vendors(registry: VendorRegistry) -> None:
    for spec in BUILTIN_VENDORS:
        registry.add(spec)
