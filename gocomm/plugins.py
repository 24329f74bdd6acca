"""Vendor plugins: pluggy markers, the vendor spec and registry, and the loader."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pluggy
from pydantic import BaseModel, ConfigDict

from gocomm.sender import Sender

PROJECT = "gocomm"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class VendorSettings(BaseModel):
    """Base of every vendor's settings model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class VendorSpec:
    """One vendor: its registered name, the channels it serves, its settings model and factory."""

    name: str
    channels: frozenset[str]
    settings: type[BaseModel]
    factory: Callable[[Any], Sender[Any]]
    description: str = ""
    distribution: str | None = None
