"""What happens inside gocomm, as typed events for exporters and applications.

Every strategy, vendor call, limiter decision, breaker change and dead letter emits one of the
frozen dataclasses below to the listeners added with :func:`add_listener`. A listener is a
plain function called synchronously, in the task and context of the send (so it may read
contextvars, such as :func:`current_send`); it must be quick and must not block. With no
listener an event costs one check (``if _listeners:``) and is never built.

No event holds message content, a secret or an address, with one exception:
:attr:`LimiterDecided.key` is the limiter's key, which may be made of a recipient's address
(``sms:{to}``). gocomm's exporters never put it in an attribute or a label; yours must not
either.

A listener that raises never breaks a send: its error is logged once per listener (on the
``gocomm.events`` logger) and later errors of the same listener are dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from gocomm.sender import Receipt, Sender, Stage, aclose_all, send_to_of, vendor_name

__all__ = [
    "BreakerChanged",
    "Event",
    "FailoverSwitched",
    "LimiterDecided",
    "Listener",
    "ObservedVendor",
    "Outcome",
    "RetryScheduled",
    "SendFinished",
    "SendScope",
    "TaskDeadLettered",
    "VendorAttempted",
    "add_listener",
    "current_send",
    "emit",
    "error_type",
    "log_fields",
    "observe_send",
    "outcome_of",
    "remove_listener",
]

_log = logging.getLogger("gocomm.events")

#: How a send or a vendor call ended: ``sent``; ``failed``; ``limited`` (a limiter said no, so
#: nothing was sent); ``cancelled`` (the caller's cancellation or deadline).
Outcome = Literal["sent", "failed", "limited", "cancelled"]


@dataclass(frozen=True, slots=True)
class SendFinished:
    """A send through a channel's stack ended (emitted by
    :class:`~gocomm.recipients.ValidatingSender`, the first stage of every stack)."""

    channel: str
    biz: str
    vendor: str | None
    """The vendor that sent (the receipt's); on failure the failing error's vendor, if any."""
    recipients: int
    """How many recipients the send was for (a count, never addresses)."""
    outcome: Outcome
    error_type: str | None
    """The class name of the error raised (``AllSendersFailed``, ``Limited``...), else None."""
    duration: float
    """Seconds from the start of the send to its end, waits between retries included."""


@dataclass(frozen=True, slots=True)
class VendorAttempted:
    """One call to one vendor ended (a send makes several when retried or failed over)."""

    vendor: str
    biz: str
    recipients: int
    outcome: Outcome
    error_type: str | None
    started: float
    """When the call began, in seconds since the epoch (``time.time()``)."""
    duration: float
    """Seconds the call took."""


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """A retry strategy will call again after ``attempt`` failed, in ``wait`` seconds."""

    attempt: int
    """The number of the attempt that failed (from 1)."""
    wait: float
    error_type: str


@dataclass(frozen=True, slots=True)
class FailoverSwitched:
    """A failover strategy moved from one vendor to another.

    ``reason``: ``error`` (the vendor failed this send, which goes on with the next),
    ``timeouts`` (consecutive timeouts: later sends use the next vendor), ``restore`` (back to
    the first vendor after ``restore_after``).
    """

    from_vendor: str
    to_vendor: str
    reason: Literal["error", "timeouts", "restore"]


@dataclass(frozen=True, slots=True)
class LimiterDecided:
    """A rate or concurrency limiter admitted (``limited=False``) or refused a send.

    ``key`` may hold a recipient's address: never put it in a metric label or span attribute.
    """

    key: str
    limited: bool
    retry_after: float | None


@dataclass(frozen=True, slots=True)
class BreakerChanged:
    """A circuit breaker's state changed, as this process saw it at a decision.

    States: ``closed``, ``open``, ``half_open``. ``name`` is the circuit's name
    (``sms.vendors[0].aliyun`` in the container).
    """

    name: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class TaskDeadLettered:
    """A queued send was given up and kept as a dead letter (:mod:`gocomm.tasks`)."""

    task_id: str
    channel: str
    biz: str
    recipients: int
    attempts: int
    error_type: str


Event: TypeAlias = (
    SendFinished
    | VendorAttempted
    | RetryScheduled
    | FailoverSwitched
    | LimiterDecided
    | BreakerChanged
    | TaskDeadLettered
)
Listener: TypeAlias = Callable[[Event], object]

#: The listeners, in the order added. Emitters check it before building an event: changed in
#: place only, so that ``from gocomm.events import _listeners`` stays the same list.
_listeners: list[Listener] = []
_failed: list[Listener] = []  # listeners whose error was logged already


def add_listener(fn: Listener) -> None:
    """Call ``fn(event)`` for every event from now on (once, however often it is added)."""
    if not callable(fn):
        raise TypeError(f"a listener must be callable, got {fn!r}")
    if fn not in _listeners:
        _listeners.append(fn)


def remove_listener(fn: Listener) -> None:
    """Stop calling ``fn``; a listener not added is ignored."""
    if fn in _listeners:
        _listeners.remove(fn)
    if fn in _failed:
        _failed.remove(fn)


def emit(event: Event) -> None:
    """Give ``event`` to every listener; a listener's error is logged (once) and dropped.

    Emitters call it only under ``if _listeners:`` so that no listener costs one check.
    """
    for fn in tuple(_listeners):
        try:
            fn(event)
        except Exception:
            if fn not in _failed:
                _failed.append(fn)
                _log.exception(
                    "event listener %r raised on %s; the send goes on, and further errors of "
                    "this listener are not logged",
                    fn,
                    type(event).__name__,
                )


@dataclass(frozen=True, slots=True)
class SendScope:
    """The send the current task is in: a process-unique ``id`` and the ``channel``."""

    id: int
    channel: str


_current: ContextVar[SendScope | None] = ContextVar("gocomm_send", default=None)
_ids = itertools.count(1)


def current_send() -> SendScope | None:
    """The send whose stack the caller runs in, or None outside one.

    Listeners use it to tell which send an event belongs to (events of concurrent sends
    interleave): a :class:`VendorAttempted` and the :class:`SendFinished` of the same send see
    the same scope. Set by :class:`~gocomm.recipients.ValidatingSender` while listeners exist.
    """
    return _current.get()


def error_type(exc: BaseException) -> str:
    """The name reported as an event's ``error_type`` (and ``error.type``): the class name."""
    return type(exc).__name__


def outcome_of(exc: BaseException) -> Outcome:
    """The outcome of a send that raised ``exc``: ``limited`` when a limiter refused it (also
    behind a retry or a failover where every cause was), ``cancelled``, else ``failed``."""
    from gocomm.errors import Limited

    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return "limited" if _limited(exc, Limited) else "failed"


def _limited(exc: BaseException, limited: type[BaseException]) -> bool:
    if isinstance(exc, limited):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_limited(e, limited) for e in exc.exceptions)
    last_error = getattr(exc, "last_error", None)
    return isinstance(last_error, BaseException) and _limited(last_error, limited)


def log_fields(
    sender: object, error: BaseException, *, attempt: int | None = None, wait: float | None = None
) -> dict[str, object]:
    """The ``extra`` of a strategy's log record about ``error``, for structured logging: the
    fields ``gocomm_vendor``, ``gocomm_attempt``, ``gocomm_wait`` (seconds) and
    ``gocomm_error_type`` (None where they do not apply)."""
    vendor = getattr(error, "vendor", None)
    return {
        "gocomm_vendor": vendor if isinstance(vendor, str) else vendor_name(sender),
        "gocomm_attempt": attempt,
        "gocomm_wait": wait,
        "gocomm_error_type": type(error).__name__,
    }


def _vendor_of(exc: BaseException) -> str | None:
    vendor = getattr(exc, "vendor", None)
    return vendor if isinstance(vendor, str) else None


async def observe_send(
    channel: str, biz: str, recipients: int, send: Coroutine[Any, Any, Receipt | None]
) -> Receipt | None:
    """Await ``send`` (one whole send on ``channel``) inside a new :class:`SendScope`, then
    emit its :class:`SendFinished`, whatever the outcome. Called only while listeners exist."""
    token = _current.set(SendScope(next(_ids), channel))
    start = time.perf_counter()
    try:
        try:
            receipt = await send
        except (Exception, asyncio.CancelledError) as exc:
            if _listeners:
                duration = time.perf_counter() - start
                vendor = _vendor_of(exc)
                outcome = outcome_of(exc)
                kind = error_type(exc)
                emit(SendFinished(channel, biz, vendor, recipients, outcome, kind, duration))
            raise
        if _listeners:
            vendor = receipt.vendor if receipt is not None else None
            duration = time.perf_counter() - start
            emit(SendFinished(channel, biz, vendor, recipients, "sent", None, duration))
        return receipt
    finally:
        _current.reset(token)


class ObservedVendor(Stage[Any]):
    """Sends through ``sender`` (one vendor) and emits a :class:`VendorAttempted` for each
    call while listeners exist; otherwise it only hands the call over.

    The container puts every vendor in one, inside its circuit breaker (a call the breaker
    refuses never reaches the vendor). ``vendor`` names it in events (default: the sender's
    name). Closing it closes ``sender``.
    """

    def __init__(self, sender: Sender[Any], *, vendor: str | None = None) -> None:
        self.sender = sender
        self.vendor = vendor if vendor is not None else vendor_name(sender)
        self._send_inner = send_to_of(sender)

    @property
    def name(self) -> str:
        """The vendor's name, so that logs name the vendor, not this stage."""
        return self.vendor

    def send_to(
        self, biz: str, args: Any, to: tuple[str, ...]
    ) -> Coroutine[Any, Any, Receipt | None]:
        # No coroutine of its own without listeners: the inner one is returned as it is.
        if _listeners:
            return self._observed(biz, args, to)
        return self._send_inner(biz, args, to)

    async def _observed(self, biz: str, args: Any, to: tuple[str, ...]) -> Receipt | None:
        started = time.time()
        start = time.perf_counter()
        try:
            receipt = await self._send_inner(biz, args, to)
        except (Exception, asyncio.CancelledError) as exc:
            if _listeners:
                duration = time.perf_counter() - start
                outcome = outcome_of(exc)
                emit(
                    VendorAttempted(
                        self.vendor, biz, len(to), outcome, error_type(exc), started, duration
                    )
                )
            raise
        if _listeners:
            duration = time.perf_counter() - start
            emit(VendorAttempted(self.vendor, biz, len(to), "sent", None, started, duration))
        return receipt

    async def _aclose(self) -> None:
        await aclose_all(self.sender)

    def __repr__(self) -> str:
        return f"ObservedVendor({self.sender!r}, vendor={self.vendor!r})"
