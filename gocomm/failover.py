"""Failover strategies: spread sends over several vendors when one misbehaves.

``FailoverSender`` is go-comm's ``failover.NewService``: on an error, try the next vendor, each at
most once per send. ``TimeoutFailoverSender`` is ``failover.NewTimeoutService``: keep using one
vendor until it times out ``threshold`` times in a row, then switch to the next.

Where go-comm is wrong this port is not: concurrent failures of one vendor advance the index
once (go-comm's ``idx.Add(1)`` can skip the healthy vendor), cancellation is never counted as a
vendor failure, a late timeout from a vendor that is no longer current is not counted against its
successor, and each vendor is sent only to the recipients still owed the message: never to one
a vendor refused for good (``refused``), whom the receipt or the final error names.

Both are safe under concurrent asyncio tasks without a lock: every read-modify-write of their
state happens between two awaits, so no other task can interleave.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from typing import Any, TypeVar, overload

from gocomm.errors import (
    AllSendersFailed,
    CircuitOpen,
    ConfigError,
    InvalidMessage,
    InvalidRecipient,
    SendTimeout,
    narrow_unsent,
    refused_of,
    unsent_of,
)
from gocomm.events import FailoverSwitched, _listeners, emit, log_fields
from gocomm.sender import (
    Receipt,
    Sender,
    Stage,
    aclose_all,
    merge_refused,
    vendor_name,
    with_refused,
)

__all__ = ["AllSendersFailed", "FailoverSender", "TimeoutFailoverSender"]

T = TypeVar("T")

_DEFAULT_LOGGER = logging.getLogger("gocomm.failover")

# Bad input, found before any network call, says nothing of a vendor's health: it is still
# passed to the next vendor (one may accept what another refuses) but moves no index.
_INPUT_ERRORS = (InvalidRecipient, InvalidMessage)


def _check_senders(owner: str, senders: object) -> tuple[Sender[T], ...]:
    if isinstance(senders, str | bytes) or not isinstance(senders, Sequence):
        raise ConfigError(f"{owner} takes a sequence of senders, got {senders!r}")
    checked = tuple(senders)
    if not checked:
        raise ConfigError(f"{owner} needs at least one sender; got an empty list")
    for position, sender in enumerate(checked):
        if not callable(getattr(sender, "send", None)):
            raise ConfigError(
                f"{owner}: senders[{position}] has no async send() method: {sender!r}"
            )
    return checked


class _IndexedSenders(Stage[T]):
    """Vendors in failover order with the index of the one currently preferred."""

    def __init__(self, senders: Sequence[Sender[Any]], logger: logging.Logger | None) -> None:
        self._senders: tuple[Sender[T], ...] = _check_senders(type(self).__name__, senders)
        self._index = 0
        self._logger = logger if logger is not None else _DEFAULT_LOGGER

    @property
    def senders(self) -> tuple[Sender[T], ...]:
        """The vendors in failover order."""
        return self._senders

    @property
    def current_index(self) -> int:
        """The index of the vendor a send starts with."""
        return self._index

    @current_index.setter
    def current_index(self, index: int) -> None:
        # As go-comm: an index out of range means "start over at the first vendor".
        self._set_index(index if 0 <= index < len(self._senders) else 0)

    def _set_index(self, index: int) -> None:
        self._index = index

    async def _aclose(self) -> None:
        await aclose_all(*self._senders)


class FailoverSender(_IndexedSenders[T]):
    """Sends through the current vendor and, when it raises, through the next ones in ring order.

    Each vendor is tried at most once per send, only with the recipients still owed. When vendor
    ``i`` fails, the current index moves to ``i + 1`` only if it still points at ``i``, so many
    concurrent failures of one vendor move it once. When every vendor fails,
    :class:`AllSendersFailed` carries their errors in the order tried; when every one refused
    the input (``InvalidRecipient`` / ``InvalidMessage``), the first refusal is raised instead,
    the others chained as its cause.
    ``asyncio.CancelledError`` passes through untouched and moves nothing.
    """

    # The second overload types a list of vendors of different classes, whose join mypy
    # would otherwise infer as their common base (often no Sender), as FailoverSender[Any].
    @overload
    def __init__(
        self: FailoverSender[T],
        senders: Sequence[Sender[T]],
        *,
        logger: logging.Logger | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: FailoverSender[Any],
        senders: Sequence[Sender[Any]],
        *,
        logger: logging.Logger | None = None,
    ) -> None: ...

    def __init__(
        self, senders: Sequence[Sender[Any]], *, logger: logging.Logger | None = None
    ) -> None:
        super().__init__(senders, logger)

    async def send_to(self, biz: str, args: T, to: tuple[str, ...]) -> Receipt | None:
        # Fast path: one index read and one await.
        start = self._index
        try:
            return await self._senders[start].send(biz, args, *to)
        except Exception as exc:
            first_error = exc
        return await self._fail_over(biz, args, to, start, first_error)

    async def _fail_over(
        self, biz: str, args: T, to: tuple[str, ...], start: int, error: Exception
    ) -> Receipt | None:
        """Vendors after ``start`` in ring order, once ``senders[start]`` raised ``error``."""
        senders = self._senders
        count = len(senders)
        errors: list[Exception] = []
        owed = to
        refused: tuple[str, ...] = ()
        position = start
        while True:
            errors.append(error)
            # Compare-and-set: concurrent failures of one vendor move the index once.
            if self._index == position and not isinstance(error, _INPUT_ERRORS):
                self._index = (position + 1) % count
            explicit = getattr(error, "unsent", None) is not None
            refused = merge_refused(refused, refused_of(error))
            owed = unsent_of(error, owed)
            # Nobody owed: everyone got it after all, but for those refused for good, who are
            # offered to no other vendor (see retryable).
            if not owed and to and (explicit or refused):
                if set(to) <= set(refused):  # nobody got it: the refusal is the outcome
                    narrow_unsent(error, owed, to, refused)
                    raise error
                self._logger.warning(
                    "%s raised %s but left no recipient unsent (%d refused for good); "
                    "treating the send as done",
                    vendor_name(senders[position]),
                    type(error).__name__,
                    len(refused),
                    extra=log_fields(senders[position], error),
                )
                vendor = getattr(error, "vendor", None)
                name = vendor if isinstance(vendor, str) else vendor_name(senders[position])
                return Receipt(vendor=name, refused=refused)
            if len(errors) == count:
                break
            next_position = (position + 1) % count
            self._logger.warning(
                "vendor %d (%s) failed (%s: %s); failing over to vendor %d (%s) "
                "for %d recipient(s)",
                position,
                vendor_name(senders[position]),
                type(error).__name__,
                error,
                next_position,
                vendor_name(senders[next_position]),
                len(owed),
                extra=log_fields(senders[position], error),
            )
            if _listeners:
                emit(
                    FailoverSwitched(
                        vendor_name(senders[position]), vendor_name(senders[next_position]), "error"
                    )
                )
            position = next_position
            try:
                receipt = await senders[position].send(biz, args, *owed)
            except Exception as exc:
                error = exc
            else:
                return with_refused(receipt, refused, senders[position])
        if all(isinstance(e, _INPUT_ERRORS) for e in errors):
            narrow_unsent(errors[0], owed, to, refused)
            raise _input_error(errors)
        raise AllSendersFailed(
            f"all {count} senders failed; each vendor's error follows, check their status "
            f"and credentials",
            errors,
            unsent=owed or None,  # empty only when to was: None, "all of to", says the same
            refused=refused,
        )

    def __repr__(self) -> str:
        return f"FailoverSender({list(self._senders)!r}, current_index={self._index})"


def _input_error(errors: list[Exception]) -> Exception:
    """Every vendor refused the input: the caller gets the first refusal, not AllSendersFailed
    (the input is at fault, not the vendors), with the others chained."""
    first = errors[0]
    others = [error for error in errors[1:] if error is not first]
    if others and first.__cause__ is None:
        first.__cause__ = ExceptionGroup("the other vendors refused it too", others)
    return first


class TimeoutFailoverSender(_IndexedSenders[T]):
    """Sends through the current vendor only; after ``threshold`` consecutive timeouts the next
    send switches to the next vendor.

    A ``TimeoutError`` (``SendTimeout`` included) counts only if the current vendor has not
    changed since its call began; a success resets the count; other errors pass through
    uncounted, and so does cancellation. ``attempt_timeout`` bounds each vendor call (raising
    :class:`SendTimeout`, which counts). ``restore_after`` seconds after a switch, the index goes
    back to vendor 0; a newer switch replaces the pending restore, and :meth:`aclose` cancels it.
    """

    @overload
    def __init__(
        self: TimeoutFailoverSender[T],
        senders: Sequence[Sender[T]],
        threshold: int,
        *,
        restore_after: float | None = None,
        attempt_timeout: float | None = None,
        logger: logging.Logger | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self: TimeoutFailoverSender[Any],
        senders: Sequence[Sender[Any]],
        threshold: int,
        *,
        restore_after: float | None = None,
        attempt_timeout: float | None = None,
        logger: logging.Logger | None = None,
    ) -> None: ...

    def __init__(
        self,
        senders: Sequence[Sender[Any]],
        threshold: int,
        *,
        restore_after: float | None = None,
        attempt_timeout: float | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(senders, logger)
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise ConfigError(
                f"threshold must be an integer >= 1 (consecutive timeouts before switching), "
                f"got {threshold!r}"
            )
        self._threshold = threshold
        self._restore_after = _optional_seconds("restore_after", restore_after)
        self._attempt_timeout = _optional_seconds("attempt_timeout", attempt_timeout)
        self._count = 0
        # Bumped on every index change, so a timeout can tell whether its vendor is still
        # current even if the index came back to the same value meanwhile.
        self._epoch = 0
        self._restore_handle: asyncio.TimerHandle | None = None

    @property
    def threshold(self) -> int:
        """Consecutive timeouts that make the next send switch vendors."""
        return self._threshold

    @property
    def timeouts(self) -> int:
        """Consecutive timeouts counted against the current vendor."""
        return self._count

    def _set_index(self, index: int) -> None:
        # A manual choice of vendor starts its count afresh and overrides a pending restore.
        self._cancel_restore()
        self._move_to(index)

    def _move_to(self, index: int) -> None:
        self._index = index
        self._count = 0
        self._epoch += 1

    async def send_to(
        self, biz: str, args: T, to: tuple[str, ...], skips: int | None = None
    ) -> Receipt | None:
        # skips: how many more vendors an open circuit breaker may still move this send to.
        if self._count >= self._threshold:
            self._switch()
        index = self._index
        epoch = self._epoch
        sender = self._senders[index]
        try:
            if self._attempt_timeout is None:
                receipt = await sender.send(biz, args, *to)
            else:
                receipt = await self._send_within(sender, biz, args, to)
        except TimeoutError:
            if self._epoch == epoch:  # a late timeout of a former vendor is not counted
                self._count += 1
            raise
        except CircuitOpen:
            # Its circuit breaker says the vendor keeps failing (gocomm.health): switch now and
            # send through the next one, as long as some vendor was not tried yet.
            skips = len(self._senders) - 1 if skips is None else skips
            if skips <= 0:
                raise
            if self._epoch == epoch:
                self._switch("has its circuit breaker open")
            return await self.send_to(biz, args, to, skips - 1)
        if self._epoch == epoch:
            self._count = 0
        return receipt

    async def _send_within(
        self, sender: Sender[T], biz: str, args: T, to: tuple[str, ...]
    ) -> Receipt | None:
        timeout = self._attempt_timeout
        try:
            async with asyncio.timeout(timeout) as scope:
                return await sender.send(biz, args, *to)
        except TimeoutError as exc:
            if not scope.expired():  # the vendor's own timeout: raised as it is
                raise
            name = vendor_name(sender)
            raise SendTimeout(
                f"{name} did not answer within attempt_timeout={timeout:g}s; "
                f"the message may or may not have been sent",
                vendor=name,
            ) from exc

    def _switch(self, reason: str | None = None) -> None:
        previous = self._index
        new = (previous + 1) % len(self._senders)
        self._logger.warning(
            "vendor %d (%s) %s; switching to vendor %d (%s)",
            previous,
            vendor_name(self._senders[previous]),
            reason or f"timed out {self._count} times in a row",
            new,
            vendor_name(self._senders[new]),
            extra={"gocomm_vendor": vendor_name(self._senders[previous])},
        )
        if _listeners:
            switched = (vendor_name(self._senders[previous]), vendor_name(self._senders[new]))
            emit(FailoverSwitched(*switched, "timeouts"))
        self._move_to(new)
        self._cancel_restore()  # a newer switch replaces the pending restore
        if new != 0 and self._restore_after is not None and not self.closed:
            loop = asyncio.get_running_loop()
            self._restore_handle = loop.call_later(self._restore_after, self._restore)

    def _restore(self) -> None:
        self._restore_handle = None
        if self._index != 0:
            self._logger.info(
                "restoring vendor 0 (%s) after %gs",
                vendor_name(self._senders[0]),
                self._restore_after,
                extra={"gocomm_vendor": vendor_name(self._senders[0])},
            )
            if _listeners:
                emit(
                    FailoverSwitched(
                        vendor_name(self._senders[self._index]),
                        vendor_name(self._senders[0]),
                        "restore",
                    )
                )
            self._move_to(0)

    def _cancel_restore(self) -> None:
        handle, self._restore_handle = self._restore_handle, None
        if handle is not None:
            handle.cancel()

    async def _aclose(self) -> None:
        self._cancel_restore()
        await super()._aclose()

    def __repr__(self) -> str:
        return (
            f"TimeoutFailoverSender({list(self._senders)!r}, threshold={self._threshold}, "
            f"restore_after={self._restore_after!r}, attempt_timeout={self._attempt_timeout!r}, "
            f"current_index={self._index})"
        )


def _optional_seconds(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number of seconds or None, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)
