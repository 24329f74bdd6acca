"""Circuit breakers: stop calling a vendor that keeps failing, in one process or in all of them.

A breaker keeps one circuit per name (a vendor)::

    closed ──(failure ratio reached over at least minimum_calls in the window)──▶ open
    open ──(open_for seconds later)──▶ half-open: admits half_open_calls probes
    half-open ──(a probe succeeds)──▶ closed        half-open ──(a probe fails)──▶ open

* :class:`MemoryCircuitBreaker` keeps the circuits in this process.
* :class:`RedisCircuitBreaker` keeps them in Redis, updated by Lua scripts on the server's clock,
  so one process's evidence opens the breaker for every process, and the probes of a half-open
  circuit are reserved across all processes.
* :class:`BreakerSender` asks the breaker before calling its vendor and refuses with
  :class:`~gocomm.errors.CircuitOpen` (retryable; failover moves on to the next vendor at once).

Only evidence of the vendor's health counts (:func:`is_health_failure`): timeouts, transport
errors and retryable :class:`~gocomm.errors.SendError`\\s are failures; permanent errors, bad
input, limits and cancellation count as nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from redis.asyncio import Redis

from gocomm._breaker_scripts import DECIDE, RELEASE
from gocomm.errors import (
    CircuitOpen,
    CommError,
    ConfigError,
    Limited,
    LimiterError,
    PermanentError,
    SendError,
    is_retryable,
)
from gocomm.events import BreakerChanged, _listeners, emit
from gocomm.ratelimit._checks import positive_int, positive_number
from gocomm.ratelimit.base import Decision
from gocomm.ratelimit.redis_scripts import runner_for
from gocomm.sender import AsyncCloseable, Receipt, Sender, aclose_all, vendor_name

__all__ = [
    "BreakerDecision",
    "BreakerSender",
    "CircuitBreaker",
    "CircuitOpen",
    "MemoryCircuitBreaker",
    "RedisCircuitBreaker",
    "is_health_failure",
]

T = TypeVar("T")

#: Buckets of the sliding window: outcomes older than ``window`` leave it a tenth at a time.
BUCKETS = 10

#: The prefix of every key the Redis breaker creates, unless one is given.
DEFAULT_PREFIX = "gocomm:breaker:"

_DEFAULT_LOGGER = logging.getLogger("gocomm.health")


@dataclass(frozen=True, slots=True)
class BreakerDecision(Decision):
    """A breaker's answer: ``limited`` (open: do not call), ``retry_after`` (seconds it stays
    so) and ``probe`` (admitted as one of a half-open circuit's probes)."""

    probe: bool = False


_CLOSED = BreakerDecision(False)
_NO_OUTCOMES = [0, 0]
_PROBE = BreakerDecision(False, probe=True)


@runtime_checkable
class CircuitBreaker(Protocol):
    """Decides whether a vendor may be called, from the outcomes recorded for it."""

    async def allow(self, name: str) -> Decision: ...

    async def record(self, name: str, ok: bool) -> None: ...


def is_health_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is evidence that a vendor is unhealthy.

    Timeouts, transport errors (``OSError``) and retryable gocomm errors are; permanent errors,
    bad input, limits, a limiter's own failure, an open breaker, cancellation and exceptions
    gocomm does not know (a bug says nothing of the vendor) are not.
    """
    if isinstance(exc, PermanentError | Limited | LimiterError | CircuitOpen | ConfigError):
        return False
    if isinstance(exc, TimeoutError | OSError | SendError):
        return True
    return isinstance(exc, CommError) and is_retryable(exc)


def _ratio(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError(f"failure_ratio must be a number above 0 and at most 1, got {value!r}")
    return float(value)


class _Settings:
    """The parameters every breaker takes, checked."""

    def __init__(
        self,
        failure_ratio: float,
        minimum_calls: int,
        window: float,
        open_for: float,
        half_open_calls: int,
        logger: logging.Logger | None,
    ) -> None:
        self.failure_ratio = _ratio(failure_ratio)
        self.minimum_calls = positive_int("minimum_calls", minimum_calls)
        self.window = positive_number("window", window, "of seconds")
        self.open_for = positive_number("open_for", open_for, "of seconds")
        self.half_open_calls = positive_int("half_open_calls", half_open_calls)
        self._logger = logger if logger is not None else _DEFAULT_LOGGER

    def _describe(self) -> str:
        return (
            f"failure_ratio={self.failure_ratio:g}, minimum_calls={self.minimum_calls}, "
            f"window={self.window:g}, open_for={self.open_for:g}, "
            f"half_open_calls={self.half_open_calls}"
        )


# ------------------------------------------------------------------------------------ memory


class _Circuit:
    """One name's state: ``open_until`` is None while closed; past it, the circuit is
    half-open and ``probes`` holds the expiry of each probe slot taken."""

    __slots__ = ("bucket_end", "calls", "epochs", "failures", "open_until", "probes", "slot")

    def __init__(self) -> None:
        self.open_until: float | None = None
        self.probes: list[float] = []
        self.epochs = [-1] * BUCKETS
        self.calls = [0] * BUCKETS
        self.failures = [0] * BUCKETS
        self.slot = 0  # the bucket being filled, until bucket_end
        self.bucket_end = -math.inf

    def reset(self, open_until: float | None) -> None:
        self.open_until = open_until
        self.probes = []
        self.epochs = [-1] * BUCKETS
        self.bucket_end = -math.inf


class MemoryCircuitBreaker(_Settings):
    """Circuit breakers kept in this process (times in seconds of ``clock``).

    Closed: outcomes are counted in ``BUCKETS`` buckets spanning ``window``; when at least
    ``minimum_calls`` fell in the window and the share of failures reaches ``failure_ratio``,
    the circuit opens. Open: every call is refused for ``open_for``. Then half-open:
    ``half_open_calls`` probes are admitted (a probe holds its slot until its outcome, or
    ``open_for`` at most); a probe's success closes the circuit with a fresh window, its
    failure opens it again. Safe under concurrent asyncio tasks: nothing awaits inside.
    """

    def __init__(
        self,
        *,
        failure_ratio: float = 0.5,
        minimum_calls: int = 20,
        window: float = 30.0,
        open_for: float = 30.0,
        half_open_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(failure_ratio, minimum_calls, window, open_for, half_open_calls, logger)
        self._clock = clock
        self._width = self.window / BUCKETS
        self._circuits: dict[str, _Circuit] = {}

    def __repr__(self) -> str:
        return f"MemoryCircuitBreaker({self._describe()})"

    async def allow(self, name: str) -> BreakerDecision:
        return self.allow_now(name)

    async def record(self, name: str, ok: bool) -> None:
        self.record_now(name, ok)

    async def release(self, name: str) -> None:
        """Give back a probe slot whose call ended with no evidence either way."""
        circuit = self._circuits.get(name)
        if circuit is not None and circuit.probes:
            circuit.probes.pop()

    def allow_now(self, name: str) -> BreakerDecision:
        """:meth:`allow` without the coroutine (for :class:`BreakerSender`'s fast path)."""
        circuit = self._circuits.get(name)
        if circuit is None or circuit.open_until is None:
            return _CLOSED
        now = self._clock()
        if now < circuit.open_until:
            return BreakerDecision(True, circuit.open_until - now)
        probes = [expiry for expiry in circuit.probes if expiry > now]
        circuit.probes = probes
        if len(probes) < self.half_open_calls:
            probes.append(now + self.open_for)
            return _PROBE
        return BreakerDecision(True, min(probes) - now)

    def record_now(self, name: str, ok: bool) -> None:
        """:meth:`record` without the coroutine (for :class:`BreakerSender`'s fast path)."""
        circuit = self._circuits.get(name)
        if circuit is None:
            circuit = self._circuits[name] = _Circuit()
        now = self._clock()
        if ok and now < circuit.bucket_end and circuit.open_until is None:
            circuit.calls[circuit.slot] += 1  # the common case: a success in the same bucket
            return
        if circuit.open_until is not None:
            if now < circuit.open_until:
                return  # the late outcome of a call admitted before the circuit opened
            if ok:
                circuit.reset(None)
                self._logger.info("circuit %s closed: a probe succeeded", name)
            else:
                circuit.reset(now + self.open_for)
                self._logger.warning(
                    "circuit %s opened again: a probe failed; refusing calls for %gs",
                    name,
                    self.open_for,
                )
            return
        epoch = int(now // self._width)
        slot = epoch % BUCKETS
        if circuit.epochs[slot] != epoch:
            circuit.epochs[slot] = epoch
            circuit.calls[slot] = 0
            circuit.failures[slot] = 0
            circuit.slot = slot
            circuit.bucket_end = (epoch + 1) * self._width
        circuit.calls[slot] += 1
        if ok:
            return
        circuit.failures[slot] += 1
        oldest = epoch - BUCKETS
        calls = failures = 0
        for bucket in range(BUCKETS):
            if circuit.epochs[bucket] > oldest:
                calls += circuit.calls[bucket]
                failures += circuit.failures[bucket]
        if calls >= self.minimum_calls and failures >= self.failure_ratio * calls:
            circuit.reset(now + self.open_for)
            self._logger.warning(
                "circuit %s opened: %d of %d calls failed in the last %gs; refusing calls "
                "for %gs",
                name,
                failures,
                calls,
                self.window,
                self.open_for,
            )


# ------------------------------------------------------------------------------------- Redis

#: Outcomes wait at most this long (seconds) for a decision to carry them to Redis.
FLUSH_AFTER = 0.002


def _millis(name: str, seconds: float) -> int:
    millis = round(seconds * 1000)
    if millis < 1:
        raise ConfigError(f"{name} must be at least 0.001 seconds, got {seconds!r}")
    return millis


class RedisCircuitBreaker(_Settings):
    """Circuit breakers kept in Redis and shared by every process that uses the same Redis and
    ``prefix``; the same rules as :class:`MemoryCircuitBreaker`, on the Redis server's clock.

    Each decision is one Lua script, pipelined with the other decisions and limiter calls
    waiting at the same moment (see :mod:`gocomm.ratelimit.redis_scripts`). At most one
    decision per vendor is in flight per process: sends that ask while it is on its way are
    answered at once from the last decision received (so under load a decision is at most one
    round trip old, and a send never waits for Redis twice); a half-open probe slot belongs
    only to the send whose decision took it. Outcomes are not waited for: those recorded
    during one turn of the event loop are added up per name and sent as one script call in the
    next pipeline, so recording costs no round trip of its own.
    ``timeout`` bounds each call; past it, or when Redis fails, :meth:`allow` raises
    :class:`~gocomm.errors.LimiterError` (:class:`BreakerSender` then calls the vendor anyway).
    The breaker never closes the client it is given.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        failure_ratio: float = 0.5,
        minimum_calls: int = 20,
        window: float = 30.0,
        open_for: float = 30.0,
        half_open_calls: int = 1,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 1.0,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(failure_ratio, minimum_calls, window, open_for, half_open_calls, logger)
        if not isinstance(redis, Redis):
            raise ConfigError(
                f"redis must be a redis.asyncio.Redis client, got {type(redis).__name__}"
            )
        if not isinstance(prefix, str):
            raise ConfigError(f"prefix must be a string, got {type(prefix).__name__}")
        self.redis = redis
        self.prefix = prefix
        self.timeout = positive_number("timeout", timeout, "of seconds")
        self._runner = runner_for(redis)
        window_ms = _millis("window", self.window)
        open_for_ms = _millis("open_for", self.open_for)
        ttl_ms = max(window_ms, 2 * open_for_ms) + 1000
        self._args = (
            window_ms,
            BUCKETS,
            self.minimum_calls,
            repr(self.failure_ratio),
            open_for_ms,
            ttl_ms,
            self.half_open_calls,
        )
        self._pending: dict[str, list[int]] = {}  # name -> [successes, failures] to send
        self._asking: set[str] = set()  # the names with a decision in flight
        self._last: dict[str, tuple[bool, int, float]] = {}  # name -> last answer, loop time
        self._flush_timer: asyncio.TimerHandle | None = None  # the pending flush, if any
        self._flush_loop: asyncio.AbstractEventLoop | None = None  # the loop it is on

    def __repr__(self) -> str:
        return f"RedisCircuitBreaker({self._describe()}, prefix={self.prefix!r})"

    def redis_key(self, name: str) -> str:
        """The hash holding ``name``'s circuit: ``<prefix>{<name>}`` (a Cluster hash tag)."""
        return f"{self.prefix}{{{name}}}"

    def answer_now(self, name: str) -> BreakerDecision | None:
        """The answer to :meth:`allow` without waiting, when a decision on ``name`` is on its
        way: the last one received (at most one round trip old); else None."""
        if name in self._asking:
            last = self._last.get(name)
            if last is not None:
                return self._reuse(last)
        return None

    async def allow(self, name: str) -> BreakerDecision:
        answer = self.answer_now(name)
        if answer is not None:
            return answer
        # The outcomes recorded on this vendor since the last decision travel with this one.
        successes, failures = self._pending.pop(name, None) or _NO_OUTCOMES
        args = (successes, failures, *self._args, 1)
        self._asking.add(name)
        try:
            refused, value = await self._runner.run(
                DECIDE, self.redis_key(name), args, self.timeout
            )
        finally:
            self._asking.discard(name)
        self._last[name] = (bool(refused), int(value), asyncio.get_running_loop().time())
        if refused:
            return BreakerDecision(True, int(value) / 1000)
        return _PROBE if value else _CLOSED

    def _reuse(self, last: tuple[bool, int, float]) -> BreakerDecision:
        refused, value, received = last
        if not refused:
            # Closed; or half-open, where that probe slot belongs to the caller that asked.
            return BreakerDecision(True, None) if value else _CLOSED
        left = value / 1000 - (asyncio.get_running_loop().time() - received)
        return BreakerDecision(True, left if left > 0 else None)

    async def record(self, name: str, ok: bool) -> None:
        self.record_now(name, ok)

    def record_now(self, name: str, ok: bool) -> None:
        """:meth:`record` without the coroutine (needs a running event loop)."""
        pending = self._pending
        loop = asyncio.get_running_loop()
        if self._flush_timer is None or self._flush_loop is not loop:
            # Most outcomes leave with the next decision on their vendor; this sends the rest.
            self._flush_loop = loop
            self._flush_timer = loop.call_later(FLUSH_AFTER, self._flush)
        counts = pending.get(name)
        if counts is None:
            counts = pending[name] = [0, 0]
        counts[0 if ok else 1] += 1

    async def release(self, name: str) -> None:
        """Give back a probe slot whose call ended with no evidence either way."""
        future = self._runner.submit_detached(
            RELEASE, self.redis_key(name), (self.half_open_calls,), self.timeout
        )
        future.add_done_callback(self._log_failure)
        await asyncio.wait([future])  # a failure is logged, never raised: it costs a probe slot

    async def flush(self) -> None:
        """Send the outcomes recorded so far and wait until Redis has counted them."""
        futures = self._flush()
        if futures:
            await asyncio.wait(futures)

    async def aclose(self) -> None:
        """Send the outcomes not sent yet and wait for them (at most ``timeout``). The Redis
        client stays open: it is not the breaker's."""
        await self.flush()

    def _flush(self) -> list[asyncio.Future[Any]]:
        pending, self._pending = self._pending, {}
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        futures = []
        for name, (successes, failures) in pending.items():
            future = self._runner.submit_detached(
                DECIDE, self.redis_key(name), (successes, failures, *self._args, 0), self.timeout
            )
            future.add_done_callback(self._log_failure)
            futures.append(future)
        return futures

    def _log_failure(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            self._logger.warning(
                "the circuit breaker could not record outcomes in Redis: %s", error
            )


# ------------------------------------------------------------------------------------ sender


class BreakerSender(AsyncCloseable, Generic[T]):
    """Calls ``sender`` only while ``breaker`` allows it, and tells the breaker how it went.

    An open circuit raises :class:`~gocomm.errors.CircuitOpen` (retryable, ``retry_after`` the
    time left open, every recipient unsent) without calling the vendor. A breaker that fails
    (Redis unreachable) is logged and the vendor is called anyway: a breaker protects sends, it
    must not stop them. ``name`` (default: the vendor's name) is the circuit's name; processes
    share a circuit by name. Closing it closes ``sender``, never the breaker.
    """

    def __init__(
        self,
        sender: Sender[T],
        breaker: CircuitBreaker,
        *,
        name: str | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        if not callable(getattr(sender, "send", None)):
            raise ConfigError(f"BreakerSender needs a sender with an async send(), got {sender!r}")
        if not callable(getattr(breaker, "allow", None)) or not callable(
            getattr(breaker, "record", None)
        ):
            raise ConfigError(
                f"BreakerSender needs a CircuitBreaker (allow() and record()), got {breaker!r}"
            )
        self.sender = sender
        self.breaker = breaker
        self.name = name if name is not None else vendor_name(sender)
        self._logger = logger if logger is not None else _DEFAULT_LOGGER
        self._release = getattr(breaker, "release", None)
        self._state = "closed"  # as the last decision showed it, for BreakerChanged events
        # gocomm's breakers answer without awaiting where they can: skip those coroutines on
        # the hot path (the in-memory one decides at once, both record at once).
        self._memory = breaker if isinstance(breaker, MemoryCircuitBreaker) else None
        self._redis = breaker if isinstance(breaker, RedisCircuitBreaker) else None
        self._record_now: Callable[[str, bool], None] | None = (
            breaker.record_now
            if isinstance(breaker, MemoryCircuitBreaker | RedisCircuitBreaker)
            else None
        )

    def __repr__(self) -> str:
        return f"BreakerSender({self.sender!r}, {self.breaker!r}, name={self.name!r})"

    async def send(self, biz: str, args: T, *to: str) -> Receipt | None:
        memory = self._memory
        if memory is not None:
            circuit = memory._circuits.get(self.name)
            closed = circuit is None or circuit.open_until is None
            decision: Decision = _CLOSED if closed else memory.allow_now(self.name)
        else:
            answer = None if self._redis is None else self._redis.answer_now(self.name)
            if answer is not None:
                decision = answer  # most sends under load: no coroutine, no wait
            else:
                decision = await self._allow()
        if _listeners:
            self._observe(decision)
        if decision.limited:
            raise self._open(decision, to)
        try:
            receipt = await self.sender.send(biz, args, *to)
        except Exception as exc:
            if is_health_failure(exc):
                await self._record(False)
            elif getattr(decision, "probe", False):
                await self._give_back()
            raise
        except asyncio.CancelledError:
            if getattr(decision, "probe", False):
                await self._give_back()
            raise
        record_now = self._record_now
        if record_now is not None:
            record_now(self.name, True)
        else:
            await self._record(True)
        return receipt

    async def _allow(self) -> Decision:
        try:
            return await self.breaker.allow(self.name)
        except LimiterError as exc:
            self._logger.warning(
                "circuit breaker of %s unavailable (%s); calling the vendor anyway", self.name, exc
            )
            return _CLOSED

    def _observe(self, decision: Decision) -> None:
        """Emit BreakerChanged when a decision shows another state than the last one did."""
        if decision.limited:
            state = "open"
        else:
            state = "half_open" if getattr(decision, "probe", False) else "closed"
        old, self._state = self._state, state
        if old != state:
            emit(BreakerChanged(self.name, old, state))

    async def _record(self, ok: bool) -> None:
        try:
            await self.breaker.record(self.name, ok)
        except LimiterError as exc:
            self._logger.warning(
                "circuit breaker of %s could not record an outcome: %s", self.name, exc
            )

    async def _give_back(self) -> None:
        if self._release is not None:
            await self._release(self.name)

    def _open(self, decision: Decision, to: tuple[str, ...]) -> CircuitOpen:
        retry_after = decision.retry_after
        wait = "" if retry_after is None else f" for another {retry_after:.3g}s"
        return CircuitOpen(
            f"the circuit breaker of {self.name} is open after repeated failures: not calling "
            f"it{wait}; failover moves on to the next vendor",
            vendor=self.name,
            retry_after=retry_after,
            unsent=to,
        )

    async def _aclose(self) -> None:
        await aclose_all(self.sender)

