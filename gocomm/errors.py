"""The gocomm error hierarchy.

Every error gocomm raises is a :class:`CommError`::

    CommError                       base of every gocomm error; .unsent, .refused
    ├── SendError                   a vendor did not send; .vendor, .code, .retry_after
    │   ├── PermanentError          retrying cannot help (bad recipient, template, auth)
    │   │   ├── InvalidRecipient    bad `to`, found before any network call (also ValueError)
    │   │   └── InvalidMessage      bad message, e.g. CR/LF in a header (also ValueError)
    │   ├── SendTimeout             the vendor took too long (also TimeoutError)
    │   └── CircuitOpen             the vendor's circuit breaker is open; nothing was sent
    ├── Limited                     a limiter said no; .key, .retry_after
    ├── LimiterError                the limiter itself failed (e.g. Redis unreachable)
    ├── AllSendersFailed            failover tried every vendor (an ExceptionGroup)
    ├── RetryExhausted              .attempts, .last_error
    ├── DuplicateInFlight           a send under the same idempotency key is in flight; .retry_after
    └── ConfigError                 bad configuration or unknown plugin (also ValueError)
        └── IdempotencyConflict     an idempotency key reused for a different message

``unsent`` names the recipients still owed the message; ``None`` means all of those the raiser
was given. ``refused`` names the recipients refused for good (invalid, blocked, unsubscribed,
over a per-number daily cap): they are never in ``unsent`` and no strategy sends to them again.
Messages never carry secrets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Self

__all__ = [
    "AllSendersFailed",
    "CircuitOpen",
    "CommError",
    "ConfigError",
    "DuplicateInFlight",
    "IdempotencyConflict",
    "InvalidMessage",
    "InvalidRecipient",
    "Limited",
    "LimiterError",
    "PermanentError",
    "RetryExhausted",
    "SendError",
    "SendTimeout",
    "is_retryable",
    "narrow_unsent",
    "refused_of",
    "unsent_of",
]


def _tuple(recipients: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if recipients is None else tuple(recipients)


class CommError(Exception):
    """Base of every gocomm error.

    ``unsent``: the recipients still owed the message (None: all of those the raiser was given).
    ``refused``: the recipients refused for good, never sent to again by any strategy.
    """

    unsent: tuple[str, ...] | None
    refused: tuple[str, ...]

    def __init__(
        self, message: str, *, unsent: Iterable[str] | None = None, refused: Iterable[str] = ()
    ) -> None:
        super().__init__(message)
        self.unsent = _tuple(unsent)
        self.refused = tuple(refused)


class SendError(CommError):
    """A vendor did not send the message."""

    def __init__(
        self,
        message: str,
        *,
        vendor: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        unsent: Iterable[str] | None = None,
        refused: Iterable[str] = (),
    ) -> None:
        super().__init__(message, unsent=unsent, refused=refused)
        self.vendor = vendor
        self.code = code
        self.retry_after = retry_after


class PermanentError(SendError):
    """Retrying cannot help: a bad recipient, template, signature or credential."""


class InvalidRecipient(PermanentError, ValueError):
    """A recipient is malformed; raised before any network call."""


class InvalidMessage(PermanentError, ValueError):
    """The message is malformed (e.g. CR or LF in a header); raised before any network call."""


class SendTimeout(SendError, TimeoutError):
    """The vendor took too long to answer."""


class CircuitOpen(SendError):
    """The vendor's circuit breaker is open after repeated failures: it was not called.

    Retryable: ``retry_after`` is the time the breaker stays open, ``unsent`` every recipient.
    Failover moves past it at no cost (see :mod:`gocomm.health`).
    """


class Limited(CommError):
    """A rate or concurrency limiter refused the send; nothing was sent."""

    def __init__(
        self,
        key: str,
        retry_after: float | None = None,
        *,
        unsent: Iterable[str] | None = None,
        refused: Iterable[str] = (),
    ) -> None:
        hint = f"; retry in {retry_after:.3g}s" if retry_after is not None else ""
        super().__init__(
            f"rate limit reached for key {key!r}{hint}", unsent=unsent, refused=refused
        )
        self.key = key
        self.retry_after = retry_after


class LimiterError(CommError):
    """The limiter itself failed (for example Redis was unreachable)."""


class AllSendersFailed(CommError, ExceptionGroup[Exception]):
    """Failover tried every sender; ``exceptions`` holds their errors in the order tried."""

    def __new__(
        cls,
        message: str,
        exceptions: Sequence[Exception],
        *,
        unsent: Iterable[str] | None = None,
        refused: Iterable[str] = (),
    ) -> Self:
        return super().__new__(cls, message, exceptions)

    def __init__(
        self,
        message: str,
        exceptions: Sequence[Exception],
        *,
        unsent: Iterable[str] | None = None,
        refused: Iterable[str] = (),
    ) -> None:
        # ExceptionGroup keeps message and exceptions from __new__; only these are ours.
        self.unsent = _tuple(unsent)
        self.refused = tuple(refused)

    def __str__(self) -> str:
        causes = "; ".join(f"{type(e).__name__}: {e}" for e in self.exceptions)
        return f"{self.message}: {causes}"


class RetryExhausted(CommError):
    """Every attempt failed; raised ``from last_error``."""

    def __init__(
        self,
        attempts: int,
        last_error: BaseException,
        *,
        unsent: Iterable[str] | None = None,
        refused: Iterable[str] = (),
    ) -> None:
        noun = "attempt" if attempts == 1 else "attempts"
        super().__init__(
            f"gave up after {attempts} {noun}; last error: {type(last_error).__name__}: "
            f"{last_error}",
            unsent=unsent,
            refused=refused,
        )
        self.attempts = attempts
        self.last_error = last_error


class ConfigError(CommError, ValueError):
    """Bad configuration or an unknown plugin; the message names the field and its source."""


class DuplicateInFlight(CommError):
    """Another send under the same idempotency key still holds it; retrying later can succeed
    (by then it has sent, and the retry gets its receipt back, or its lease has ended)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, unsent: Iterable[str] | None = None
    ) -> None:
        super().__init__(message, unsent=unsent)
        self.retry_after = retry_after


class IdempotencyConflict(ConfigError):
    """An idempotency key was reused for a different message (another ``biz`` or ``args``)."""


def is_retryable(exc: BaseException) -> bool:
    """Whether sending again could succeed where ``exc`` failed.

    False for permanent errors, configuration errors and limits (a limit is a policy: wait for
    it with ``retry_on``); for groups, True if any cause is retryable; True for any other
    ``Exception``. ``CancelledError`` and other ``BaseException``\\s are never retryable.
    """
    if isinstance(exc, PermanentError | ConfigError | Limited):
        return False
    if isinstance(exc, AllSendersFailed):
        return any(is_retryable(e) for e in exc.exceptions)
    if isinstance(exc, RetryExhausted):
        return is_retryable(exc.last_error)
    return isinstance(exc, Exception)


def refused_of(exc: BaseException) -> tuple[str, ...]:
    """The recipients ``exc`` says were refused for good (empty for a foreign exception)."""
    refused = getattr(exc, "refused", None)
    return tuple(refused) if isinstance(refused, tuple | list) else ()


def unsent_of(exc: BaseException, to: Sequence[str]) -> tuple[str, ...]:
    """The recipients of ``to`` still owed the message after ``exc``, in the order of ``to``.

    Recipients in ``exc.refused`` are never owed, even when ``unsent`` is None ("all").
    """
    unsent = getattr(exc, "unsent", None)
    refused = refused_of(exc)
    if unsent is None:
        if not refused:
            return tuple(to)
        gone = set(refused)
        return tuple(r for r in to if r not in gone)
    owed = set(unsent).difference(refused)
    return tuple(r for r in to if r in owed)


def narrow_unsent(
    exc: BaseException,
    owed: tuple[str, ...],
    to: tuple[str, ...],
    refused: tuple[str, ...] = (),
) -> None:
    """Make ``exc.unsent`` name what is still owed out of the caller's ``to`` (``owed``), and
    ``exc.refused`` every recipient refused for good on the way; for strategies that raise a
    vendor's error as it is."""
    # An exception type with __slots__ cannot take the attribute; nothing better to do then.
    with contextlib.suppress(AttributeError):
        if refused or getattr(exc, "refused", None) is not None:
            exc.refused = refused  # type: ignore[attr-defined]
        if owed == to and getattr(exc, "unsent", None) is None:
            return  # None already means "all of to"
        # Empty only when everyone was refused: None ("all of to") would offer them again.
        exc.unsent = owed if refused else owed or None  # type: ignore[attr-defined]
