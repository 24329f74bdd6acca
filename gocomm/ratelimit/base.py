"""The limiter protocols that :class:`RateLimitSender` and :class:`ConcurrencyLimitSender` use."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["ActiveLimiter", "Decision", "DecisionLimiter", "Limiter", "RefundableLimiter"]


@dataclass(frozen=True, slots=True)
class Decision:
    """A limiter's answer: ``limited`` and, when limited, how long until a request may pass.

    ``token`` identifies an admission made by :meth:`RefundableLimiter.acquire`, so that it can
    be given back; it is None when limited and in the answers of ``check()``. Its value is the
    limiter's own business: keep it, pass it to ``refund``, never build one.
    """

    limited: bool
    retry_after: float | None = None
    # Keyword-only, so that subclasses (the breaker's decision) keep their positional fields.
    token: object = field(default=None, kw_only=True)


@runtime_checkable
class Limiter(Protocol):
    """go-comm's limiter: ``limit(key)`` is True when the request must not pass."""

    async def limit(self, key: str) -> bool: ...


@runtime_checkable
class DecisionLimiter(Limiter, Protocol):
    """A limiter that also says how long to wait."""

    async def check(self, key: str) -> Decision: ...


@runtime_checkable
class RefundableLimiter(Protocol):
    """A rate limiter that can give back what it admitted (DESIGN §11).

    ``acquire(key)`` decides as ``check(key)`` does and, when it admits, returns a
    :class:`Decision` whose ``token`` identifies that admission. ``refund(key, token)`` gives
    that admission back: at most once per token, and never more than it took. A token that is
    unknown, belongs to another key or limiter, or was already given back gives nothing; so does
    one whose admission no longer counts (it left the window, or the bucket refilled past it).
    """

    async def acquire(self, key: str) -> Decision: ...

    async def refund(self, key: str, token: object) -> None: ...


@runtime_checkable
class ActiveLimiter(Protocol):
    """Bounds the sends in flight per key: ``async with limiter.acquire(key):`` raises
    :class:`~gocomm.errors.Limited` when ``max_active`` are already in flight."""

    def acquire(self, key: str) -> AbstractAsyncContextManager[None]: ...
