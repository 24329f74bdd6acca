"""Argument checks shared by the in-memory and Redis limiters: a bad value raises
:class:`~gocomm.errors.ConfigError` naming the argument and the value."""

from __future__ import annotations

import math

from gocomm.errors import ConfigError

__all__ = ["positive_int", "positive_number"]


def positive_number(name: str, value: object, unit: str) -> float:
    """``value`` as a float if it is a finite number above 0; ``unit`` completes the message
    ("of seconds", "per second")."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigError(f"{name} must be a positive number {unit}, got {value!r}")
    return float(value)


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an int of at least 1 (a bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")
    return value
