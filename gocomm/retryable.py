"""Retry strategies: send again when a vendor fails, with or without a wait between attempts.

``RetrySender`` is go-comm's ``retryable.NewService`` (at most ``max_attempts`` calls, no wait);
``IntervalRetrySender`` is ``NewIntervalService`` (a wait chosen by an interval function between
attempts). Both go beyond go-comm where it matters for a messaging library:

* each retry is sent only to the recipients still owed the message (``unsent``), so nobody gets
  a second copy because a vendor reached some recipients and failed for others, and nobody a
  vendor refused for good (``refused``) is tried again; the receipt or the final error names
  every refused recipient;
* ``asyncio.CancelledError`` (the caller's cancellation or deadline) is never caught, so it is
  never retried, and a wait it interrupts ends at once;
* an error that ``retry_on`` refuses is raised as it is, after one call;
* a wait honours the error's ``retry_after`` and is capped by ``max_delay``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from gocomm.errors import (
    ConfigError,
    RetryExhausted,
    is_retryable,
    narrow_unsent,
    refused_of,
    unsent_of,
)
from gocomm.events import RetryScheduled, _listeners, emit, log_fields
from gocomm.sender import (
    Receipt,
    Sender,
    Stage,
    aclose_all,
    merge_refused,
    send_to_of,
    vendor_name,
    with_refused,
)

__all__ = [
    "Interval",
    "IntervalRetrySender",
    "RetrySender",
    "exponential",
    "fixed",
    "uniform",
]

T = TypeVar("T")

Interval = Callable[[int], float]
"""The wait in seconds after failed attempt number ``attempt`` (counted from 1)."""

RetryPredicate = Callable[[BaseException], bool]

_DEFAULT_LOGGER = logging.getLogger("gocomm.retryable")


# --------------------------------------------------------------------------- interval helpers


def _check_seconds(name: str, value: float, *, positive: bool = False) -> float:
    """``value`` as a float, or a ConfigError naming ``name`` when it is no usable duration."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return seconds


@dataclass(frozen=True, slots=True)
class _Fixed:
    seconds: float

    def __call__(self, attempt: int) -> float:
        return self.seconds


@dataclass(frozen=True, slots=True)
class _Uniform:
    low: float
    high: float

    def __call__(self, attempt: int) -> float:
        return random.uniform(self.low, self.high)


@dataclass(frozen=True, slots=True)
class _Exponential:
    initial: float
    maximum: float
    multiplier: float
    jitter: bool

    def capped(self, attempt: int) -> float:
        """``min(maximum, initial * multiplier ** (attempt - 1))`` without float overflow."""
        steps = max(attempt - 1, 0)
        if self.multiplier == 1.0 or steps == 0:
            return min(self.initial, self.maximum)
        # Compare in log space: multiplier ** steps overflows a float long before the cap.
        if steps * math.log(self.multiplier) >= math.log(self.maximum / self.initial):
            return self.maximum
        return min(self.maximum, self.initial * self.multiplier**steps)

    def __call__(self, attempt: int) -> float:
        ceiling = self.capped(attempt)
        # Full jitter: uniform over [0, ceiling], so waits stay spread out at the cap too.
        return random.uniform(0.0, ceiling) if self.jitter else ceiling


def fixed(seconds: float) -> Interval:
    """Wait the same ``seconds`` after every failed attempt."""
    return _Fixed(_check_seconds("fixed(seconds)", seconds))


def uniform(low: float, high: float) -> Interval:
    """Wait a random time in ``[low, high]`` seconds after every failed attempt."""
    lo = _check_seconds("uniform(low)", low)
    hi = _check_seconds("uniform(high)", high)
    if hi < lo:
        raise ConfigError(f"uniform(low, high) needs low <= high, got low={low!r}, high={high!r}")
    return _Uniform(lo, hi)


def exponential(
    initial: float, maximum: float, multiplier: float = 2.0, jitter: bool = True
) -> Interval:
    """Exponential backoff: ``initial * multiplier ** (attempt - 1)`` capped at ``maximum``.

    With ``jitter`` the wait is random in ``[0, capped value]`` ("full jitter"), which stays
    random once the cap is reached, so many clients failing together do not retry in lockstep.
    """
    first = _check_seconds("exponential(initial)", initial, positive=True)
    cap = _check_seconds("exponential(maximum)", maximum, positive=True)
    if cap < first:
        raise ConfigError(
            f"exponential(initial, maximum) needs initial <= maximum, "
            f"got initial={initial!r}, maximum={maximum!r}"
        )
    if isinstance(multiplier, bool) or not isinstance(multiplier, int | float):
        raise ConfigError(f"exponential(multiplier) must be a number >= 1, got {multiplier!r}")
    if not math.isfinite(multiplier) or multiplier < 1:
        raise ConfigError(f"exponential(multiplier) must be a number >= 1, got {multiplier!r}")
    return _Exponential(first, cap, float(multiplier), bool(jitter))


# --------------------------------------------------------------------------- shared helpers


def _check_attempts(max_attempts: int) -> int:
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ConfigError(
            f"max_attempts must be an integer >= 1 (the number of calls in all), "
            f"got {max_attempts!r}"
        )
    return max_attempts


def _check_callable(name: str, value: object) -> None:
    if not callable(value):
        raise ConfigError(f"{name} must be callable, got {value!r}")


def _retry_after(exc: BaseException) -> float | None:
    """The wait an error asks for before the next try, or None if it asks for none.

    For a failover group this is the shortest wait any retryable cause asks for, and None as
    soon as one retryable cause asks for none: some vendor may be tried again right away.
    """
    if isinstance(exc, BaseExceptionGroup):
        waits = [_retry_after(e) for e in exc.exceptions if is_retryable(e)]
        if not waits or None in waits:
            return None
        return min(w for w in waits if w is not None)
    last_error = getattr(exc, "last_error", None)
    if isinstance(last_error, BaseException):
        return _retry_after(last_error)
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, int | float) else None


def _sent_anyway(
    exc: BaseException, sender: object, attempts: int = 1, refused: tuple[str, ...] = ()
) -> Receipt:
    """The receipt for an error that left nobody owed: everyone got the message after all,
    but for those refused for good."""
    vendor = getattr(exc, "vendor", None)
    name = vendor if isinstance(vendor, str) else vendor_name(sender)
    return Receipt(vendor=name, attempts=attempts, refused=refused)


def _all_refused(to: tuple[str, ...], refused: tuple[str, ...]) -> bool:
    """Whether every recipient of ``to`` was refused for good (so nobody got the message)."""
    return bool(refused) and set(to) <= set(refused)


class _RetryBase(Stage[T]):
    """What both retry strategies share: the inner sender, the attempt budget, closing."""

    def __init__(
        self,
        sender: Sender[T],
        max_attempts: int,
        retry_on: RetryPredicate,
        logger: logging.Logger | None,
    ) -> None:
        _check_callable("retry_on", retry_on)
        send = getattr(sender, "send", None)
        if not callable(send):
            raise ConfigError(f"sender must have an async send() method, got {sender!r}")
        self._sender = sender
        self._send_inner = send_to_of(sender)
        self._max_attempts = _check_attempts(max_attempts)
        self._retry_on = retry_on
        self._logger = logger if logger is not None else _DEFAULT_LOGGER

    @property
    def sender(self) -> Sender[T]:
        """The sender retried."""
        return self._sender

    @property
    def max_attempts(self) -> int:
        """The most calls one send makes, the first included."""
        return self._max_attempts

    async def send_to(self, biz: str, args: T, to: tuple[str, ...]) -> Receipt | None:
        # Fast path: the first attempt costs one await and no bookkeeping.
        try:
            receipt = await self._send_inner(biz, args, to)
        except Exception as exc:
            first_error = exc
        else:
            if receipt is not None and receipt.attempts != 1:
                return dataclasses.replace(receipt, attempts=1)
            return receipt
        return await self._retry(biz, args, to, first_error)

    async def _retry(
        self, biz: str, args: T, to: tuple[str, ...], error: Exception
    ) -> Receipt | None:
        """Attempts 2..n after the first failed with ``error``."""
        owed = to
        refused: tuple[str, ...] = ()
        attempt = 1
        while True:
            explicit = getattr(error, "unsent", None) is not None
            refused = merge_refused(refused, refused_of(error))
            owed = unsent_of(error, owed)
            # Owed nobody: owed is empty although to was not (a send to nobody that failed
            # stays a failure). An error with an empty unsent is raised only when every
            # recipient was refused for good; refused recipients are never tried again.
            if not owed and to and (explicit or refused):
                if _all_refused(to, refused):
                    narrow_unsent(error, owed, to, refused)
                    raise error
                # The vendor raised but says nobody is owed the message: that is a send.
                self._logger.warning(
                    "%s raised %s but left no recipient unsent (%d refused for good); "
                    "treating the send as done",
                    vendor_name(self._sender),
                    type(error).__name__,
                    len(refused),
                    extra=log_fields(self._sender, error, attempt=attempt),
                )
                return _sent_anyway(error, self._sender, attempt, refused)
            if not self._retry_on(error):
                narrow_unsent(error, owed, to, refused)
                raise error
            if attempt >= self._max_attempts:
                raise RetryExhausted(
                    attempt, error, unsent=owed or None, refused=refused
                ) from error
            wait = self._wait(attempt, error)
            if wait is None:  # retry_after beyond max_delay: retrying now cannot help
                raise RetryExhausted(
                    attempt, error, unsent=owed or None, refused=refused
                ) from error
            self._logger.warning(
                "attempt %d of %d via %s failed (%s: %s); retrying %d recipient(s)%s",
                attempt,
                self._max_attempts,
                vendor_name(self._sender),
                type(error).__name__,
                error,
                len(owed),
                f" in {wait:.3g}s" if wait else "",
                extra=log_fields(self._sender, error, attempt=attempt, wait=wait),
            )
            if _listeners:
                emit(RetryScheduled(attempt, wait, type(error).__name__))
            if wait:
                await asyncio.sleep(wait)  # a cancellation here propagates at once
            attempt += 1
            try:
                receipt = await self._send_inner(biz, args, owed)
            except Exception as exc:
                error = exc
                continue
            receipt = with_refused(receipt, refused, self._sender)
            if receipt is not None and receipt.attempts != attempt:
                receipt = dataclasses.replace(receipt, attempts=attempt)
            return receipt

    def _wait(self, attempt: int, error: BaseException) -> float | None:
        """Seconds to wait after failed ``attempt``; None means stop retrying."""
        return 0.0

    async def _aclose(self) -> None:
        await aclose_all(self._sender)


class RetrySender(_RetryBase[T]):
    """Sends through ``sender``, trying again at once on a retryable error.

    At most ``max_attempts`` calls in all. When they all fail, :class:`RetryExhausted` is raised
    from the last error; an error that ``retry_on`` refuses (by default
    :func:`gocomm.errors.is_retryable`) is raised as it is. Each retry goes only to the
    recipients still owed. The receipt returned carries the number of ``attempts``.
    """

    def __init__(
        self,
        sender: Sender[T],
        max_attempts: int,
        *,
        retry_on: RetryPredicate = is_retryable,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(sender, max_attempts, retry_on, logger)

    def __repr__(self) -> str:
        return f"RetrySender({self._sender!r}, max_attempts={self._max_attempts})"


class IntervalRetrySender(_RetryBase[T]):
    """Like :class:`RetrySender`, waiting ``interval(attempt)`` seconds after failed attempt
    number ``attempt`` (from 1; never after the last).

    The wait is raised to at least the error's ``retry_after``; ``max_delay`` caps each wait,
    and when an error's ``retry_after`` exceeds it, retrying stops at once with
    :class:`RetryExhausted`. Cancelling the caller ends a wait at once.
    """

    def __init__(
        self,
        sender: Sender[T],
        max_attempts: int,
        interval: Interval,
        *,
        retry_on: RetryPredicate = is_retryable,
        max_delay: float | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(sender, max_attempts, retry_on, logger)
        _check_callable("interval", interval)
        self._interval = interval
        self._max_delay = None if max_delay is None else _check_seconds("max_delay", max_delay)

    @property
    def max_delay(self) -> float | None:
        """The longest single wait, or None for no cap."""
        return self._max_delay

    def _wait(self, attempt: int, error: BaseException) -> float | None:
        wait = float(self._interval(attempt))
        if not math.isfinite(wait) or wait < 0:
            raise ConfigError(f"interval({attempt}) returned {wait!r}; it must be seconds >= 0")
        retry_after = _retry_after(error)
        if retry_after is not None:
            if self._max_delay is not None and retry_after > self._max_delay:
                self._logger.warning(
                    "%s asks to wait %.3gs, more than max_delay=%.3gs; giving up",
                    vendor_name(self._sender),
                    retry_after,
                    self._max_delay,
                    extra=log_fields(self._sender, error, attempt=attempt, wait=retry_after),
                )
                return None
            wait = max(wait, retry_after)
        if self._max_delay is not None:
            wait = min(wait, self._max_delay)
        return wait

    def __repr__(self) -> str:
        return (
            f"IntervalRetrySender({self._sender!r}, max_attempts={self._max_attempts}, "
            f"interval={self._interval!r}, max_delay={self._max_delay!r})"
        )
