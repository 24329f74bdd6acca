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
from typing import Any, TypeVar

from gocomm.errors import ConfigError, Limited, LimiterError, refused_of, unsent_of
from gocomm.events import LimiterDecided, _listeners, emit
from gocomm.ratelimit.base import ActiveLimiter, Decision, Limiter
from gocomm.sender import Receipt, Sender, Stage, aclose_all, send_to_of

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


class _LimitSender(Stage[T]):
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
        self._sender = sender
        self._send_inner = send_to_of(sender)
        self.key = key
        self.fail_open = fail_open
        self.logger = logger if logger is not None else _RATE_LOG
        # Decided once here, so that a send does no type checks on its hot path.
        self._static_key: str | None = key if isinstance(key, str) else None
        self._key_func: KeyFunc[T] | None = None if isinstance(key, str) else key

    @property
    def sender(self) -> Sender[T]:
        """The sender limited."""
        return self._sender

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
    send. With several keys each is asked in order; the first that is limited stops the send. A
    key function that raises is a bug in it: its error propagates as it is.

    The limiter is asked with ``acquire_nowait()`` where it has one (the in-memory limiters: no
    coroutine where no I/O is needed), else ``acquire()`` when refunding, else ``check()`` (a
    :class:`~gocomm.ratelimit.DecisionLimiter`), so ``Limited.retry_after`` says how long to
    wait; else go-comm's ``limit()``. When the limiter itself fails,
    :class:`~gocomm.errors.LimiterError` is raised from its error (fail closed); with
    ``fail_open=True`` the failure is logged once and the message is sent anyway, without asking
    about the keys after the one that failed.

    Refunds (``refund=True``, the default, when the limiter is a
    :class:`~gocomm.ratelimit.RefundableLimiter`): the quota of every recipient the send did not
    reach is given back, so that a failed login code does not lock its user out for the window.
    Not reached are the error's ``unsent`` (and ``refused``) when the send raises, and the
    receipt's ``refused`` when it returns. A key made per recipient (a key function whose
    ``per_recipient`` attribute is true, as the configuration's ``{to}`` templates are: one key
    per distinct recipient, in order) is given back for the recipients not reached; any other key
    only when nobody was reached. When a key is limited, or the limiter fails, the quota the keys
    before it took is given back: nothing was sent. A cancelled send gives nothing back (whether
    the vendor got it is unknown). A refund that fails is logged, never raised over the send's
    own outcome. With ``refund=False`` quota once taken stays spent, as in go-comm.

    Closing closes the inner sender, never the limiter (nor a Redis client it was given).
    """

    def __init__(
        self,
        sender: Sender[T],
        key: str | KeyFunc[T],
        limiter: Limiter,
        *,
        fail_open: bool = False,
        refund: bool = True,
        logger: logging.Logger | None = None,
    ) -> None:
        if not callable(getattr(limiter, "limit", None)):
            raise ConfigError(
                f"limiter must have an async limit(key) method, got {_limiter_name(limiter)}"
            )
        if not isinstance(refund, bool):
            raise ConfigError(f"refund must be True or False, got {refund!r}")
        super().__init__(sender, key, fail_open, logger)
        self.limiter: Limiter = limiter
        self.refund = refund
        self._limit: Callable[[str], Awaitable[bool]] = limiter.limit
        self._check: Callable[[str], Awaitable[Decision]] | None = _method(limiter, "check")
        self._acquire_nowait: Callable[[str], object] | None = _method(limiter, "acquire_nowait")
        acquire = _method(limiter, "acquire")
        give_back = _method(limiter, "refund")
        refunding = refund and acquire is not None and give_back is not None
        self._acquire: Callable[[str], Awaitable[Decision]] | None = (
            acquire if refunding else None
        )
        self._give_back: Callable[[str, object], Awaitable[None]] | None = (
            give_back if refunding else None
        )
        self._per_recipient = (
            self._key_func is not None and getattr(key, "per_recipient", False) is True
        )

    async def send_to(self, biz: str, args: T, to: tuple[str, ...]) -> Receipt | None:
        key = self._static_key
        acquire_nowait = self._acquire_nowait
        if key is not None and acquire_nowait is not None:
            # The common case (one fixed key, an in-memory limiter), inlined: it is the hot path.
            try:
                token = acquire_nowait(key)
            except Limited as exc:
                if _listeners:
                    emit(LimiterDecided(exc.key, True, exc.retry_after))
                raise
            except Exception as exc:  # CancelledError is a BaseException: it passes untouched
                _limiter_failed(self, "rate", exc)
                return await self._send_inner(biz, args, to)
            if _listeners:
                emit(LimiterDecided(key, False, None))
            if self._give_back is None:
                return await self._send_inner(biz, args, to)
            held: Sequence[_Held] = ((key, token, None),)
        else:
            held = await self._admit_all(biz, args, to)
            if not held:
                return await self._send_inner(biz, args, to)
        try:
            receipt = await self._send_inner(biz, args, to)
        except Exception as exc:  # a cancelled send gives nothing back: it may have gone out
            unreached = set(unsent_of(exc, to)).union(refused_of(exc))
            await self._refund_unreached(held, to, unreached)
            raise
        if receipt is not None and receipt.refused:
            await self._refund_unreached(held, to, set(receipt.refused))
        return receipt

    async def _admit_all(self, biz: str, args: T, to: tuple[str, ...]) -> list[_Held]:
        """Ask about every key of the send; the admissions to give back if it does not reach
        their recipients (none when not refunding)."""
        if self._static_key is not None:
            keys: Sequence[str] = (self._static_key,)
        else:
            assert self._key_func is not None
            made = self._key_func(biz, args, to)
            keys = (made,) if isinstance(made, str) else made
        recipients: Sequence[str | None] = ()
        if self._per_recipient:
            distinct = tuple(dict.fromkeys(to))
            if len(distinct) == len(keys):
                recipients = distinct
        held: list[_Held] = []
        try:
            nowait = self._acquire_nowait is not None
            for position, key in enumerate(keys):
                # In memory: no coroutine per key.
                token = self._admit_nowait(key) if nowait else await self._admit(key)
                if token is _FAILED_OPEN:
                    break  # failing open: the limiter is down, asking it again only delays
                if token is not None and self._give_back is not None:
                    recipient = recipients[position] if recipients else None
                    held.append((key, token, recipient))
        except BaseException:
            # Limited, LimiterError or cancelled: nothing was sent, give back what was taken.
            await self._refund_unreached(held, to, None)
            raise
        return held

    def _admit_nowait(self, key: str) -> object:
        """:meth:`_admit` for a limiter with ``acquire_nowait``."""
        assert self._acquire_nowait is not None
        try:
            token = self._acquire_nowait(key)
        except Limited as exc:
            if _listeners:
                emit(LimiterDecided(exc.key, True, exc.retry_after))
            raise
        except Exception as exc:  # CancelledError is a BaseException: it passes untouched
            _limiter_failed(self, "rate", exc)
            return _FAILED_OPEN
        if _listeners:
            emit(LimiterDecided(key, False, None))
        return token

    async def _admit(self, key: str) -> object:
        """Ask about ``key``: the admission's token (None if the limiter gives none), or
        ``_FAILED_OPEN`` when the limiter failed and we fail open; else raise :class:`Limited` or
        :class:`LimiterError`."""
        token = await self._decide(key)
        if _listeners and token is not _FAILED_OPEN:
            emit(LimiterDecided(key, False, None))
        return token

    async def _decide(self, key: str) -> object:
        try:
            if self._acquire is not None:
                decision = await self._acquire(key)
            elif self._check is not None:
                decision = await self._check(key)
            elif await self._limit(key):
                decision = _LIMITED
            else:
                return None
        except Limited as exc:  # the limiter said no in its own way: a decision, not a failure
            if _listeners:
                emit(LimiterDecided(exc.key, True, exc.retry_after))
            raise
        except Exception as exc:  # CancelledError is a BaseException: it passes untouched
            _limiter_failed(self, "rate", exc)
            return _FAILED_OPEN
        if decision.limited:
            if _listeners:
                emit(LimiterDecided(key, True, decision.retry_after))
            raise Limited(key, decision.retry_after)
        return decision.token

    async def _refund_unreached(
        self, held: Sequence[_Held], to: tuple[str, ...], unreached: set[str] | None
    ) -> None:
        """Give back the admissions of the recipients in ``unreached`` (None: nobody was
        reached); a key not made per recipient only when nobody was reached."""
        give_back = self._give_back
        if give_back is None:
            return
        if unreached is not None and not all(r in unreached for r in to):
            held = [h for h in held if h[2] is not None and h[2] in unreached]
        for key, token, _ in held:
            try:
                await give_back(key, token)
            except Exception as error:
                self.logger.warning(
                    "rate limiter %s failed to give back the quota of key %r (%s: %s); "
                    "it stays spent",
                    _limiter_name(self.limiter),
                    key,
                    type(error).__name__,
                    error,
                )


#: One admission a send may give back: its key, its token, and the recipient the key was made
#: for (None for a key not made per recipient).
_Held = tuple[str, object, "str | None"]

#: What :meth:`RateLimitSender._admit` returns when the limiter failed and the send fails open.
_FAILED_OPEN = object()

_LIMITED = Decision(limited=True)


def _method(obj: object, name: str) -> Any:
    """``obj.<name>`` if it is callable, else None."""
    method = getattr(obj, name, None)
    return method if callable(method) else None


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
        # A rate limiter's acquire() counts a request (RefundableLimiter): not a slot to hold.
        if not callable(getattr(limiter, "acquire", None)) or callable(
            getattr(limiter, "limit", None)
        ):
            raise ConfigError(
                f"limiter must have an acquire(key) method that holds a slot (a concurrency "
                f"limiter), got {_limiter_name(limiter)}"
            )
        super().__init__(sender, key, fail_open, logger)
        self.limiter: ActiveLimiter = limiter

    async def send_to(self, biz: str, args: T, to: tuple[str, ...]) -> Receipt | None:
        key = self._static_key
        if key is None:
            assert self._key_func is not None
            keys = self._key_func(biz, args, to)
            if not isinstance(keys, str):
                return await self._send_holding_all(keys, biz, args, to)
            key = keys
        # One key, the common case: no AsyncExitStack on the hot path.
        slot = self.limiter.acquire(key)
        if not await self._enter(slot, key):
            return await self._send_inner(biz, args, to)
        try:
            receipt = await self._send_inner(biz, args, to)
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
                if not await self._enter(slot, key):
                    break  # failing open: the limiter is down, asking it again only delays
                held.push_async_exit(self._exiter(slot))
            return await self._send_inner(biz, args, to)

    async def _enter(self, slot: AbstractAsyncContextManager[None], key: str) -> bool:
        """Take the slot: True if held; False if the limiter failed and we fail open."""
        try:
            await slot.__aenter__()
        except Limited as exc:
            if _listeners:
                emit(LimiterDecided(exc.key, True, exc.retry_after))
            raise
        except Exception as exc:  # CancelledError passes untouched
            _limiter_failed(self, "concurrency", exc)  # raises unless failing open
            return False
        if _listeners:
            emit(LimiterDecided(key, False, None))
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
