"""The limiter protocols that :class:`RateLimitSender` and :class:`ConcurrencyLimitSender` use."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["ActiveLimiter", "Decision", "DecisionLimiter", "Limiter"]


@dataclass(frozen=True, slots=True)
class Decision:
    """A limiter's answer: ``limited`` and, when limited, how long until a request may pass."""

    limited: bool
    retry_after: float | None = None


@runtime_checkable
class Limiter(Protocol):
    """go-comm's limiter: ``limit(key)`` is True when the request must not pass."""

    async def limit(self, key: str) -> bool: ...


@runtime_checkable
class DecisionLimiter(Limiter, Protocol):
    """A limiter that also says how long to wait."""

    async def check(self, key: str) -> Decision: ...


@runtime_checkable
class ActiveLimiter(Protocol):
    """Bounds the sends in flight per key: ``async with limiter.acquire(key):`` raises
    :class:`~gocomm.errors.Limited` when ``max_active`` are already in flight."""

    def acquire(self, key: str) -> AbstractAsyncContextManager[None]: ...
