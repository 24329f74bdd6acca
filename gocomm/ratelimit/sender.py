"""Senders that ask a limiter before they let a send through.

:class:`RateLimitSender` asks a rate limiter (go-comm's ``ratelimit.NewService``);
:class:`ConcurrencyLimitSender` holds a concurrency limiter's slot while the send runs.

Both derive their limiter keys from a fixed string or from a function of the send, called once
per send. A function may return several keys (one per recipient, say): each is asked in order and
if any says no, nothing is sent. ``CancelledError`` is never caught: it travels through untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from types import TracebackType
from typing import Any, Generic, TypeVar

from gocomm.errors import ConfigError, Limited, LimiterError
from gocomm.ratelimit.base import ActiveLimiter, Decision, Limiter
from gocomm.sender import AsyncCloseable, Receipt, Sender, aclose_all

__all__ = ["ConcurrencyLimitSender", "KeyFunc", "RateLimitSender"]

T = TypeVar("T")

#: Derives the limiter key(s) of one send from ``(biz, args, to)``.
KeyFunc = Callable[[str, T, tuple[str, ...]], "str | Sequence[str]"]

_ExitCallback = Callable[
    [type[BaseException] | None, BaseException | None, TracebackType | None], Awaitable[bool]
]

_RATE_LOG = logging.getLogger("gocomm.ratelimit")


def _check_sender(sender: object) -> None:
    if not callable(getattr(sender, "send", None)):
        raise ConfigError(
            f"sender must have an async send() method, got {type(sender).__name__}"
        )


def _check_key(key: object) -> None:
    if isinstance(key, str):
        if not key:
            raise ConfigError(
                "key must be a non-empty string or a callable (biz, args, to) -> key"
            )
    elif not callable(key):
        raise ConfigError(
            f"key must be a string or a callable (biz, args, to) -> key(s), "
            f"got {type(key).__name__}"
        )


def _limiter_name(limiter: object) -> str:
    return type(limiter).__name__


def _limiter_failed(owner: _LimitSender[Any], kind: str, exc: Exception) -> None:
    """The limiter failed: log it and return when failing open, else raise LimiterError."""
    name = _limiter_name(owner.limiter)
    if owner.fail_open:
        owner.logger.warning(
            "%s limiter %s failed (%s: %s); sending anyway (fail_open)",
            kind,
            name,
            type(exc).__name__,
            exc,
        )
        return
    if isinstance(exc, LimiterError):
        raise exc  # already says what failed
    raise LimiterError(
        f"{kind} limiter {name} failed ({type(exc).__name__}: {exc}); nothing was sent. "
        "Fix the limiter's backend, or pass fail_open=True to send when it fails"
    ) from exc


class _LimitSender(AsyncCloseable, Generic[T]):
    """What both limit senders share: the inner sender, the key (or key function), fail_open,
    the logger, the repr, and closing the inner sender (never the limiter)."""

    limiter: object

    def __init__(
        self,
        sender: Sender[T],
        key: str | KeyFunc[T],
        fail_open: bool,
        logger: logging.Logger | None,
    ) -> None:
        _check_sender(sender)
        _check_key(key)
        self.sender = sender
        self.key = key
        self.fail_open = fail_open
        self.logger = logger if logger is not None else _RATE_LOG
        # Decided once here, so that a send does no type checks on its hot path.
        self._static_key: str | None = key if isinstance(key, str) else None
        self._key_func: KeyFunc[T] | None = None if isinstance(key, str) else key

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.sender!r}, key={self.key!r}, "
            f"limiter={self.limiter!r}, fail_open={self.fail_open!r})"
        )

    async def _aclose(self) -> None:
        await aclose_all(self.sender)


class RateLimitSender(_LimitSender[T]):
    """Asks ``limiter`` before each send; limited: :class:`~gocomm.errors.Limited`, and the
    vendor is not called.

    ``key`` is a string or a callable ``(biz, args, to) -> str | Sequence[str]``, called once per
    send. With several keys each is asked in order; the first that is limited stops the send, and
    quota already taken by the keys before it stays spent. A key function that raises is a bug in
    it: its error propagates as it is.

    When the limiter has ``check()`` (a :class:`~gocomm.ratelimit.DecisionLimiter`) it is used, so
    ``Limited.retry_after`` says how long to wait; otherwise ``limit()``. When the limiter itself
    fails, :class:`~gocomm.errors.LimiterError` is raised from its error (fail closed); with
    ``fail_open=True`` the failure is logged once and the message is sent anyway, without asking
    about the keys after the one that failed.

    Closing closes the inner sender, never the limiter (nor a Redis client it was given).
    """

    def __init__(
        self,
        sender: Sender[T],
        key: str | KeyFunc[T],
        limiter: Limiter,
        *,
        fail_open: bool = False,
        logger: logging.Logger | None = None,
    ) -> None:
        if not callable(getattr(limiter, "limit", None)):
            raise ConfigError(
                f"limiter must have an async limit(key) method, got {_limiter_name(limiter)}"
            )
        super().__init__(sender, key, fail_open, logger)
        self.limiter: Limiter = limiter
        self._limit: Callable[[str], Awaitable[bool]] = limiter.limit
        check = getattr(limiter, "check", None)
        self._check: Callable[[str], Awaitable[Decision]] | None = (
            check if callable(check) else None
        )

    async def send(self, biz: str, args: T, *to: str) -> Receipt | None:
        key = self._static_key
        check = self._check
        if key is not None and check is not None:
            # The common case (one fixed key, a DecisionLimiter), inlined: it is the hot path.
            try:
                decision = await check(key)
            except Limited:
                raise
            except Exception as exc:  # CancelledError is a BaseException: it passes untouched
                _limiter_failed(self, "rate", exc)
            else:
                if decision.limited:
                    raise Limited(key, decision.retry_after)
            return await self.sender.send(biz, args, *to)
        if key is not None:
            await self._admit(key)
        else:
            assert self._key_func is not None
            keys = self._key_func(biz, args, to)
            if isinstance(keys, str):
                await self._admit(keys)
            else:
                for key in keys:
                    if not await self._admit(key):
                        break  # failing open: the limiter is down, asking it again only delays
        return await self.sender.send(biz, args, *to)

    async def _admit(self, key: str) -> bool:
        """True if ``key`` may pass, False if the limiter failed and we fail open; else raise
        :class:`Limited` or :class:`LimiterError`."""
        check = self._check
        try:
            if check is not None:
                decision = await check(key)
                if not decision.limited:
                    return True
                retry_after = decision.retry_after
            else:
                if not await self._limit(key):
                    return True
                retry_after = None
        except Limited:
            raise  # the limiter said no in its own way: that is a decision, not a failure
        except Exception as exc:  # CancelledError is a BaseException: it passes untouched
            _limiter_failed(self, "rate", exc)
            return False
        raise Limited(key, retry_after)


class ConcurrencyLimitSender(_LimitSender[T]):
    """Holds a slot of ``limiter`` (``async with limiter.acquire(key)``) while each send runs;
    when the key has ``max_active`` sends in flight: :class:`~gocomm.errors.Limited`, and the
    vendor is not called.

    ``key`` is a string or a callable ``(biz, args, to) -> str | Sequence[str]``, called once per
    send; with several keys a slot of each is held, and if one is full the slots already taken
    are given back and nothing is sent. When the limiter fails to give a slot,
    :class:`~gocomm.errors.LimiterError` is raised from its error, or with ``fail_open=True`` the
    failure is logged once and the message is sent anyway (holding the slots already taken).
    A failure to give a slot back after the send is logged, not raised: the message went out,
    and raising would invite a second copy (the slot's lease frees it).

    Closing closes the inner sender, never the limiter.
    """

    def __init__(
        self,
        sender: Sender[T],
        key: str | KeyFunc[T],
        limiter: ActiveLimiter,
        *,
        fail_open: bool = False,
        logger: logging.Logger | None = None,
    ) -> None:
        if not callable(getattr(limiter, "acquire", None)):
            raise ConfigError(
                f"limiter must have an acquire(key) method, got {_limiter_name(limiter)}"
            )
        super().__init__(sender, key, fail_open, logger)
        self.limiter: ActiveLimiter = limiter

    async def send(self, biz: str, args: T, *to: str) -> Receipt | None:
        key = self._static_key
        if key is None:
            assert self._key_func is not None
            keys = self._key_func(biz, args, to)
            if not isinstance(keys, str):
                return await self._send_holding_all(keys, biz, args, to)
            key = keys
        # One key, the common case: no AsyncExitStack on the hot path.
        slot = self.limiter.acquire(key)
        if not await self._enter(slot):
            return await self.sender.send(biz, args, *to)
        try:
            receipt = await self.sender.send(biz, args, *to)
        except BaseException as exc:  # cancellation too: give the slot back, then re-raise
            await self._exit(slot, exc)
            raise
        await self._exit(slot, None)
        return receipt

    async def _send_holding_all(
        self, keys: Sequence[str], biz: str, args: T, to: tuple[str, ...]
    ) -> Receipt | None:
        async with AsyncExitStack() as held:
            for key in keys:
                slot = self.limiter.acquire(key)
                if not await self._enter(slot):
                    break  # failing open: the limiter is down, asking it again only delays
                held.push_async_exit(self._exiter(slot))
            return await self.sender.send(biz, args, *to)

    async def _enter(self, slot: AbstractAsyncContextManager[None]) -> bool:
        """Take the slot: True if held; False if the limiter failed and we fail open."""
        try:
            await slot.__aenter__()
        except Limited:
            raise
        except Exception as exc:  # CancelledError passes untouched
            _limiter_failed(self, "concurrency", exc)  # raises unless failing open
            return False
        return True

    async def _exit(
        self, slot: AbstractAsyncContextManager[None], exc: BaseException | None
    ) -> None:
        """Give the slot back; a failure to do so is logged, never raised over the send's
        outcome."""
        try:
            await slot.__aexit__(type(exc) if exc is not None else None, exc, None)
        except Exception as error:
            self.logger.warning(
                "concurrency limiter %s failed to release a slot (%s: %s); its lease will free it",
                _limiter_name(self.limiter),
                type(error).__name__,
                error,
            )

    def _exiter(self, slot: AbstractAsyncContextManager[None]) -> _ExitCallback:
        async def release(
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
        ) -> bool:
            await self._exit(slot, exc)
            return False  # never swallow what the block raised

        return release
