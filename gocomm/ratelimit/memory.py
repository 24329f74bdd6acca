"""In-memory limiters for one process: sliding window, token bucket and concurrency.

Every decision is made without an ``await`` between reading and writing the state, so each one
is atomic under any number of concurrent asyncio tasks and no lock is needed. Time comes from an
injectable ``clock`` (seconds, ``time.monotonic`` by default), which is what lets tests move time
by hand. Nothing here needs a running event loop to be built.

Keys are kept in an :class:`~collections.OrderedDict` in the order they were last used. Each call
first looks at the front of that order (only when the earliest possible expiry has passed: one
float comparison otherwise) and drops at most :data:`SWEEP_BATCH` keys that have been idle for
longer than their window. Every key is inserted once and dropped once, so forgetting costs
amortised constant time per call, and memory stays bounded by the keys active within one window
however many distinct keys pass.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Generic, TypeVar

from gocomm.errors import ConfigError, Limited
from gocomm.ratelimit._checks import positive_int, positive_number
from gocomm.ratelimit.base import Decision

__all__ = ["SWEEP_BATCH", "ConcurrencyLimiter", "SlidingWindowLimiter", "TokenBucketLimiter"]

Clock = Callable[[], float]
_State = TypeVar("_State")

#: Most idle keys one call may drop: bounds the work of a single call while still dropping keys
#: faster than a call can add them.
SWEEP_BATCH = 8

#: A billionth of a token: absorbs float rounding, so that a request made exactly
#: ``retry_after`` seconds later passes.
_TOKEN_EPSILON = 1e-9

_ADMITTED = Decision(limited=False)


def _check_clock(clock: object) -> Clock:
    if not callable(clock):
        raise ConfigError(f"clock must be a callable returning seconds, got {clock!r}")
    return clock


#: The token of one in-memory admission: ``[limiter, key, mark...]``, where the marks are what the
#: admission left in the key's state (the sliding window: its entry's expiry; the token bucket:
#: the tokens left and the time), which is how a refund finds it. A refund empties the list, so
#: a token gives back once. A list because one is made on every admission, and a list literal is
#: the cheapest record Python makes (a class with ``__slots__`` costs four times as much).
_Token = list[object]


class _KeyedRateLimiter(Generic[_State]):
    """What the sliding window and the token bucket share: per-key state in an ordered dict kept
    in admission order, the idle keys at its front forgotten a few at a time, and every way of
    asking (``limit``, ``check``, ``acquire``) answered by the one decision, ``acquire_nowait``;
    refunds check the token and leave the rest to ``_give_back``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = _check_clock(clock)
        # Keys in admission order, so the front is the key idle longest.
        self._states: OrderedDict[str, _State] = OrderedDict()
        # No key can be idle before this time: the sweep is skipped until then.
        self._sweep_at = math.inf

    def __len__(self) -> int:
        """The number of keys currently remembered."""
        return len(self._states)

    def acquire_nowait(self, key: str) -> object:
        """Count a request for ``key`` without a coroutine (nothing here waits for I/O): the
        admission's token, or :class:`~gocomm.errors.Limited` with ``retry_after`` (and nothing
        counted)."""
        raise NotImplementedError

    async def limit(self, key: str) -> bool:
        """Count a request for ``key``; True means it is limited (and was not counted)."""
        try:
            self.acquire_nowait(key)
        except Limited:
            return True
        return False

    async def check(self, key: str) -> Decision:
        """Count a request for ``key`` and say whether it is limited and for how long."""
        try:
            self.acquire_nowait(key)
        except Limited as limited:
            return Decision(True, limited.retry_after)
        return _ADMITTED

    async def acquire(self, key: str) -> Decision:
        """:meth:`check`, with a ``token`` to :meth:`refund` the admission by."""
        try:
            token = self.acquire_nowait(key)
        except Limited as limited:
            return Decision(True, limited.retry_after)
        return Decision(False, token=token)

    async def refund(self, key: str, token: object) -> None:
        """Give back the admission ``token`` identifies (see
        :class:`~gocomm.ratelimit.RefundableLimiter`)."""
        self.refund_nowait(key, token)

    def refund_nowait(self, key: str, token: object) -> None:
        """:meth:`refund` without a coroutine."""
        if type(token) is not list or len(token) < 3 or token[0] is not self or token[1] != key:
            return  # not an admission of this limiter and key, or already given back
        marks = token[2:]
        token.clear()
        state = self._states.get(key)
        if state is not None:
            self._give_back(key, state, marks)

    def _give_back(self, key: str, state: _State, marks: list[Any]) -> None:
        """Undo the admission that left ``marks`` in ``state``, if it still counts."""
        raise NotImplementedError

    def _idle_at(self, state: _State) -> float:
        """When a key with ``state`` can be forgotten (it would be decided as a new key)."""
        raise NotImplementedError

    def _sweep(self, now: float) -> None:
        states = self._states
        for _ in range(SWEEP_BATCH):
            if not states:
                self._sweep_at = math.inf
                return
            key, state = next(iter(states.items()))
            # Keys are in admission order, so the front is the first to become idle.
            idle_at = self._idle_at(state)
            if idle_at > now:
                self._sweep_at = idle_at
                return
            del states[key]


#: The log of one sliding-window key: the expiry times of its counted requests, oldest first.
#: One entry, the most common state of a key (a login code sent once), is kept as a bare float:
#: a one-entry deque would take 760 bytes where a float takes 24.
_Log = float | deque[float]


class SlidingWindowLimiter(_KeyedRateLimiter[_Log]):
    """At most ``rate`` requests per key in any ``window`` seconds (an exact sliding log).

    A request at time ``t`` counts against its key until ``t + window``. When limited,
    ``retry_after`` is the time until the oldest counted request stops counting. Memory per key
    is at most ``rate`` floats (the expiry times of its counted requests, oldest first); keys
    idle for longer than ``window`` are forgotten. A refund removes the admission's entry while
    it is still in the window.
    """

    def __init__(self, window: float, rate: int, *, clock: Clock = time.monotonic) -> None:
        self.window = positive_number("window", window, "of seconds")
        self.rate = positive_int("rate", rate)
        super().__init__(clock)

    def __repr__(self) -> str:
        return f"SlidingWindowLimiter(window={self.window!r}, rate={self.rate!r})"

    def acquire_nowait(self, key: str) -> object:
        now = self._clock()
        if now >= self._sweep_at:
            self._sweep(now)
        logs = self._states
        log = logs.get(key)
        expiry = now + self.window
        if log is None:
            if not logs:
                self._sweep_at = expiry
            logs[key] = expiry
            return [self, key, expiry]
        if isinstance(log, float):
            if log <= now:  # out of the window: the key starts afresh
                logs[key] = expiry
            elif self.rate == 1:
                raise Limited(key, log - now)
            else:
                logs[key] = deque((log, expiry))
        else:
            while log and log[0] <= now:
                log.popleft()
            if not log:
                logs[key] = expiry
            elif len(log) < self.rate:
                log.append(expiry)
            else:
                raise Limited(key, log[0] - now)
        logs.move_to_end(key)
        return [self, key, expiry]

    def _give_back(self, key: str, state: _Log, marks: list[Any]) -> None:
        [expiry] = marks
        if expiry <= self._clock():
            return  # out of the window already: it counts no more
        if isinstance(state, float):
            if state == expiry:
                del self._states[key]
            return
        # Entries with the same expiry are admissions of the same instant: any one will do.
        if expiry in state:
            state.remove(expiry)
            if len(state) == 1:
                self._states[key] = state[0]

    def _idle_at(self, state: _Log) -> float:
        if isinstance(state, float):
            return state
        return state[-1] if state else -math.inf


class TokenBucketLimiter(_KeyedRateLimiter[list[float]]):
    """A bucket of ``burst`` tokens per key, refilled at ``rate`` tokens per second.

    Each request takes one token; a key's bucket starts full and never holds more than
    ``burst``. When limited, ``retry_after`` is the time until one token is back. A key idle for
    ``burst / rate`` seconds (its window: the bucket is full again) is forgotten.

    A refund puts the admission's token back while that admission is still the key's latest,
    which leaves the bucket exactly as if it had never happened. After a later admission of the
    same key it gives nothing: the bucket does not remember whether it filled up in between (and
    so had already taken the token back), and giving back a token it does not owe would let
    more through than ``rate`` allows.
    """

    def __init__(self, rate: float, burst: int, *, clock: Clock = time.monotonic) -> None:
        self.rate = positive_number("rate", rate, "per second")
        self.burst = positive_int("burst", burst)
        super().__init__(clock)
        self._idle = self.burst / self.rate

    def __repr__(self) -> str:
        return f"TokenBucketLimiter(rate={self.rate!r}, burst={self.burst!r})"

    def acquire_nowait(self, key: str) -> object:
        # State per key: [tokens after the last admission, time of the last admission].
        now = self._clock()
        if now >= self._sweep_at:
            self._sweep(now)
        buckets = self._states
        state = buckets.get(key)
        if state is None:
            if not buckets:
                self._sweep_at = now + self._idle
            left = self.burst - 1.0
            buckets[key] = [left, now]
            return [self, key, left, now]
        tokens = state[0] + (now - state[1]) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        if tokens < 1.0 - _TOKEN_EPSILON:
            # A limited request changes nothing: the refill is computed from the last admission.
            raise Limited(key, (1.0 - tokens) / self.rate)
        tokens -= 1.0
        left = state[0] = tokens if tokens > 0.0 else 0.0
        state[1] = now
        buckets.move_to_end(key)
        return [self, key, left, now]

    def _give_back(self, key: str, state: list[float], marks: list[Any]) -> None:
        if state == marks:  # still the latest admission: [tokens left, time] as it left them
            tokens = state[0] + 1.0
            state[0] = tokens if tokens < self.burst else float(self.burst)

    def _idle_at(self, state: list[float]) -> float:
        return state[1] + self._idle


class _Slot(AbstractAsyncContextManager[None]):
    """One ``acquire(key)``: holds a slot of the key from ``__aenter__`` to ``__aexit__``."""

    __slots__ = ("_holder", "_key", "_limiter", "_state", "acquired_at")

    def __init__(self, limiter: ConcurrencyLimiter, key: str) -> None:
        self._limiter = limiter
        self._key = key
        self._state = 0  # 0 new, 1 held, 2 released
        self._holder: weakref.ref[asyncio.Task[object]] | None = None
        self.acquired_at = 0.0

    def holder_alive(self) -> bool:
        """Whether the task that took the slot is still running (its lease is then renewed)."""
        task = self._holder() if self._holder is not None else None
        return task is not None and not task.done()

    async def __aenter__(self) -> None:
        if self._state != 0:
            raise RuntimeError("a ConcurrencyLimiter.acquire() context can be entered only once")
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop: nothing can renew the lease
            task = None
        self._holder = weakref.ref(task) if task is not None else None
        self._limiter._take(self._key, self)
        self._state = 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state == 1:
            self._state = 2
            self._limiter._release(self._key, self)


class _Active:
    """The slots held for one key and when the key was last looked at."""

    __slots__ = ("slots", "touched")

    def __init__(self, now: float) -> None:
        self.slots: set[_Slot] = set()
        self.touched = now


class ConcurrencyLimiter:
    """At most ``max_active`` requests in flight per key: ``async with limiter.acquire(key):``
    raises :class:`~gocomm.errors.Limited` (``retry_after`` None) when the key is full.

    Leases: a slot not released within ``lease`` seconds is freed unless the task that took it
    is still running, which renews it (as the Redis limiter renews its lease while the block
    runs). With ``async with`` a slot is always released, so in memory the lease only matters
    for robustness: a context entered by hand and never exited, in a task that has finished,
    stops counting after ``lease`` seconds. Keys with no slot held are forgotten.
    """

    def __init__(
        self, max_active: int, *, lease: float = 30.0, clock: Clock = time.monotonic
    ) -> None:
        self.max_active = positive_int("max_active", max_active)
        self.lease = positive_number("lease", lease, "of seconds")
        self._clock = _check_clock(clock)
        self._keys: OrderedDict[str, _Active] = OrderedDict()
        self._sweep_at = math.inf

    def __repr__(self) -> str:
        return f"ConcurrencyLimiter(max_active={self.max_active!r}, lease={self.lease!r})"

    def __len__(self) -> int:
        """The number of keys currently remembered."""
        return len(self._keys)

    def active(self, key: str) -> int:
        """The slots of ``key`` currently held (abandoned ones included until reaped)."""
        state = self._keys.get(key)
        return 0 if state is None else len(state.slots)

    def acquire(self, key: str) -> AbstractAsyncContextManager[None]:
        """A context that holds one of ``key``'s slots while it runs."""
        return _Slot(self, key)

    def _take(self, key: str, slot: _Slot) -> None:
        now = self._clock()
        if now >= self._sweep_at:
            self._sweep(now)
        keys = self._keys
        state = keys.get(key)
        if state is None:
            if not keys:
                self._sweep_at = now + self.lease
            state = keys[key] = _Active(now)
        elif len(state.slots) >= self.max_active:
            self._reap(state, now)
            if len(state.slots) >= self.max_active:
                raise Limited(key)
        slot.acquired_at = now
        state.slots.add(slot)
        state.touched = now
        keys.move_to_end(key)

    def _release(self, key: str, slot: _Slot) -> None:
        state = self._keys.get(key)
        if state is not None:
            state.slots.discard(slot)
            if not state.slots:
                del self._keys[key]

    def _reap(self, state: _Active, now: float) -> None:
        """Free the slots whose lease ran out and whose holder is gone."""
        expired = now - self.lease
        dead = [s for s in state.slots if s.acquired_at <= expired and not s.holder_alive()]
        state.slots.difference_update(dead)

    def _sweep(self, now: float) -> None:
        keys = self._keys
        for _ in range(SWEEP_BATCH):
            if not keys:
                self._sweep_at = math.inf
                return
            key, state = next(iter(keys.items()))
            due = state.touched + self.lease
            if due > now:
                self._sweep_at = due
                return
            self._reap(state, now)
            if state.slots:
                # Held by running tasks: look again after another lease.
                state.touched = now
                keys.move_to_end(key)
            else:
                del keys[key]
