"""Limiters whose state lives in Redis, so that every process using the same Redis, prefix and
kind of limiter shares one limit.

* :class:`RedisSlidingWindowLimiter`: an exact sliding-window log (``sliding_window.lua``).
* :class:`RedisTokenBucketLimiter`: a token bucket as GCRA (``token_bucket.lua``).
* :class:`RedisConcurrencyLimiter`: at most ``max_active`` holders per key, each holding a lease
  that is renewed while its block runs (``concurrency_*.lua``).

Each decision is one Lua script run atomically on the server, with the time taken from Redis
``TIME``: the clocks of the client machines play no part. Scripts are sent with ``EVALSHA``,
never retried, and pipelined with the other decisions waiting at the same moment (see
:mod:`gocomm.ratelimit.redis_scripts`). Every key carries a TTL; keys are named
``<prefix><kind>:{<key>}``, so all keys of one limited key share a Redis Cluster hash tag.

The limiters never close the client they are given, and need no running event loop to be built.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import weakref
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

from redis.asyncio import Redis

from gocomm.errors import ConfigError, Limited, LimiterError
from gocomm.ratelimit._checks import positive_int, positive_number
from gocomm.ratelimit.base import Decision
from gocomm.ratelimit.redis_scripts import Script, ScriptArg, ScriptRunner, runner_for

__all__ = [
    "DEFAULT_PREFIX",
    "RedisConcurrencyLimiter",
    "RedisSlidingWindowLimiter",
    "RedisTokenBucketLimiter",
]

#: The prefix of every key the Redis limiters create, unless one is given.
DEFAULT_PREFIX = "gocomm:ratelimit:"

SLIDING_WINDOW = Script.load("sliding_window.lua")
SLIDING_WINDOW_REFUND = Script.load("sliding_window_refund.lua")
TOKEN_BUCKET = Script.load("token_bucket.lua")
TOKEN_BUCKET_REFUND = Script.load("token_bucket_refund.lua")
CONCURRENCY_ACQUIRE = Script.load("concurrency_acquire.lua")
CONCURRENCY_RENEW = Script.load("concurrency_renew.lua")
CONCURRENCY_RELEASE = Script.load("concurrency_release.lua")

_ADMITTED = Decision(limited=False)
_MICROS = 1_000_000


class _Tokens:
    """Unique ids for sliding-window entries and leases: a random per-process prefix (drawn
    again in a forked child) and a counter. Cheaper than a UUID per request."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._prefix = os.urandom(8).hex() + ":"
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):x}"


_tokens = _Tokens()


def _micros(name: str, seconds: float) -> int:
    micros = round(seconds * _MICROS)
    if micros < 1000:
        raise ConfigError(f"{name} must be at least 0.001 seconds, got {seconds!r}")
    return micros


def _check_redis(redis: object) -> Redis:
    if not isinstance(redis, Redis):
        raise ConfigError(
            f"redis must be a redis.asyncio.Redis client, got {type(redis).__name__}; "
            "create one with redis.asyncio.Redis.from_url(...)"
        )
    return redis


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise ConfigError(f"prefix must be a string, got {type(prefix).__name__}")
    return prefix


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"a limiter key must be a str, got {type(key).__name__}")
    return key


class _RedisLimiter:
    """What every Redis limiter has: the client, the key space of its kind and the runner."""

    kind: str

    def __init__(self, redis: Redis, prefix: str, timeout: float) -> None:
        self.redis = _check_redis(redis)
        self.prefix = _check_prefix(prefix)
        self.timeout = positive_number("timeout", timeout, "of seconds")
        self._key_prefix = f"{self.prefix}{self.kind}:"
        self._runner: ScriptRunner = runner_for(self.redis)

    def redis_key(self, key: str) -> str:
        """The Redis key holding ``key``'s state: ``<prefix><kind>:{<key>}`` (a hash tag)."""
        return f"{self._key_prefix}{{{_check_key(key)}}}"

    async def _run_to_the_end(self, script: Script, key: str, args: tuple[ScriptArg, ...]) -> Any:
        """Run ``script``; a cancelled caller stops waiting, but the call still goes out (a
        refund must not be lost because the task that asked for it was cancelled)."""
        return await asyncio.shield(
            self._runner.submit_detached(script, self.redis_key(key), args, self.timeout)
        )


class _RedisRateLimiter(_RedisLimiter):
    """What both Redis rate limiters share: every way of asking answered by one script call
    (``_decide``) that counts the request under a unique id, the admission's token."""

    async def _decide(self, key: str, token: str) -> Decision:
        raise NotImplementedError

    async def limit(self, key: str) -> bool:
        """Count a request for ``key``; True means it is limited (and was not counted)."""
        return (await self._decide(key, _tokens.next())).limited

    async def check(self, key: str) -> Decision:
        """Count a request for ``key`` and say whether it is limited and for how long."""
        return await self._decide(key, _tokens.next())

    async def acquire(self, key: str) -> Decision:
        """:meth:`check`, with a ``token`` to :meth:`refund` the admission by."""
        token = _tokens.next()
        decision = await self._decide(key, token)
        return decision if decision.limited else Decision(False, token=token)


class RedisSlidingWindowLimiter(_RedisRateLimiter):
    """At most ``rate`` requests per key in any ``window`` seconds, counted exactly.

    Each key is a sorted set with one entry per admitted request (a unique member scored with
    the Redis time it was admitted at), so it holds at most ``rate`` entries and expires one
    ``window`` after its last decision. A request is limited when ``rate`` entries are younger
    than ``window``; it then leaves no entry, and ``retry_after`` is the time until the entry
    holding the count at ``rate`` leaves the window. A refund removes the admission's entry
    (one ``ZREM``), which gives nothing once it is gone.
    """

    kind = "sliding_window"

    def __init__(
        self,
        redis: Redis,
        window: float,
        rate: int,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 1.0,
    ) -> None:
        self.window = positive_number("window", window, "of seconds")
        self.rate = positive_int("rate", rate)
        self._window_us = _micros("window", self.window)
        super().__init__(redis, prefix, timeout)

    def __repr__(self) -> str:
        return (
            f"RedisSlidingWindowLimiter(window={self.window!r}, rate={self.rate!r}, "
            f"prefix={self.prefix!r}, timeout={self.timeout!r})"
        )

    async def _decide(self, key: str, token: str) -> Decision:
        wait_ms = await self._runner.run(
            SLIDING_WINDOW, self.redis_key(key), (self._window_us, self.rate, token), self.timeout
        )
        return _ADMITTED if wait_ms == 0 else Decision(True, wait_ms / 1000)

    async def refund(self, key: str, token: object) -> None:
        """Give back the admission ``token`` identifies: one atomic script call."""
        if isinstance(token, str):
            await self._run_to_the_end(SLIDING_WINDOW_REFUND, key, (token,))


class RedisTokenBucketLimiter(_RedisRateLimiter):
    """A bucket of ``burst`` tokens per key, refilled at ``rate`` tokens per second (GCRA).

    Each key is one string: the bucket's theoretical arrival time in µs of Redis time and the
    id of the latest admission. It expires when the bucket is full again (at most
    ``burst / rate`` seconds), which is the same as having no key. A limited request changes
    nothing; ``retry_after`` is the time until one token is back.

    A refund gives the token back while its admission is still the key's latest, leaving the
    bucket exactly as if it had never happened; after a later admission it gives nothing (see
    :class:`~gocomm.ratelimit.TokenBucketLimiter`).
    """

    kind = "token_bucket"

    def __init__(
        self,
        redis: Redis,
        rate: float,
        burst: int,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 1.0,
    ) -> None:
        self.rate = positive_number("rate", rate, "of tokens per second")
        self.burst = positive_int("burst", burst)
        # The emission interval, in µs: how often one token comes back.
        self._interval_us = _MICROS / self.rate
        super().__init__(redis, prefix, timeout)

    def __repr__(self) -> str:
        return (
            f"RedisTokenBucketLimiter(rate={self.rate!r}, burst={self.burst!r}, "
            f"prefix={self.prefix!r}, timeout={self.timeout!r})"
        )

    async def _decide(self, key: str, token: str) -> Decision:
        wait_ms = await self._runner.run(
            TOKEN_BUCKET,
            self.redis_key(key),
            (repr(self._interval_us), self.burst, token),
            self.timeout,
        )
        return _ADMITTED if wait_ms == 0 else Decision(True, wait_ms / 1000)

    async def refund(self, key: str, token: object) -> None:
        """Give back the admission ``token`` identifies: one atomic script call."""
        if isinstance(token, str):
            await self._run_to_the_end(
                TOKEN_BUCKET_REFUND, key, (repr(self._interval_us), token)
            )


class _Lease(AbstractAsyncContextManager[None]):
    """One ``acquire(key)``: a slot of ``key`` held, and renewed, while the block runs."""

    __slots__ = ("_holder", "_key", "_limiter", "_redis_key", "_renewer", "_state", "_token")

    def __init__(self, limiter: RedisConcurrencyLimiter, key: str) -> None:
        self._limiter = limiter
        self._key = key
        self._redis_key = limiter.redis_key(key)
        self._token = _tokens.next()
        self._state = 0  # 0 new, 1 held, 2 released
        self._renewer: asyncio.Task[None] | None = None
        self._holder: weakref.ref[asyncio.Task[Any]] | None = None

    async def __aenter__(self) -> None:
        if self._state != 0:
            raise RuntimeError(
                "a RedisConcurrencyLimiter.acquire() context can be entered only once"
            )
        self._state = 2
        limiter = self._limiter
        try:
            taken = await limiter._runner.run(
                CONCURRENCY_ACQUIRE,
                self._redis_key,
                (limiter.max_active, limiter._lease_us, self._token),
                limiter.timeout,
            )
        except BaseException:
            # The script may have run before the answer was lost: give the slot back now
            # rather than leave it taken until its lease ends.
            self._release()
            raise
        if not taken:
            raise Limited(self._key)
        self._state = 1
        holder = asyncio.current_task()
        self._holder = weakref.ref(holder) if holder is not None else None
        self._renewer = asyncio.get_running_loop().create_task(self._renew())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state != 1:
            return
        self._state = 2
        renewer = self._renewer
        self._renewer = None
        # Sent before any await, so that a second cancellation of this task (arriving while it
        # waits below) cannot keep the slot taken until its lease ends. A renewal still in
        # flight cannot bring the lease back: renewing checks that the lease is still held.
        release = self._release()
        if renewer is not None:
            renewer.cancel()
            # Wait for it to end without absorbing a cancellation of our own task.
            await asyncio.wait((renewer,))
        limiter = self._limiter
        try:
            await asyncio.shield(release)
        except LimiterError as error:
            # The send itself is over; failing it now would invite sending it again. The slot
            # frees itself when its lease ends.
            limiter.logger.warning(
                "could not release a concurrency slot of key %r (it frees itself within %gs): %s",
                self._key,
                limiter.lease,
                error,
            )

    def _release(self) -> asyncio.Future[Any]:
        """Give the slot back: the call goes out even if nobody waits for its answer."""
        limiter = self._limiter
        return limiter._runner.submit_detached(
            CONCURRENCY_RELEASE, self._redis_key, (self._token,), limiter.timeout
        )

    def _holder_gone(self) -> bool:
        holder = self._holder() if self._holder is not None else None
        return holder is None or holder.done()

    async def _renew(self) -> None:
        """Extend the lease every third of it while the block runs.

        It stops when the context exits, and also when the task that entered it has ended
        without exiting (a context entered by hand and dropped): that slot is abandoned, and
        its lease runs out as a crashed process's would.
        """
        limiter = self._limiter
        interval = limiter.lease / 3
        while True:
            await asyncio.sleep(interval)
            if self._holder_gone():
                return
            try:
                kept = await limiter._runner.run(
                    CONCURRENCY_RENEW,
                    self._redis_key,
                    (limiter._lease_us, self._token),
                    limiter.timeout,
                )
            except LimiterError as error:
                limiter.logger.warning(
                    "could not renew a concurrency lease of key %r (trying again in %gs): %s",
                    self._key,
                    interval,
                    error,
                )
                continue
            if not kept:
                limiter.logger.warning(
                    "the concurrency lease of key %r ran out before it was renewed (Redis "
                    "unreachable for longer than the %gs lease?); its slot may now be taken "
                    "by another sender",
                    self._key,
                    limiter.lease,
                )
                return


class RedisConcurrencyLimiter(_RedisLimiter):
    """At most ``max_active`` blocks in flight per key, across every process sharing Redis.

    ``async with limiter.acquire(key):`` takes a slot or raises :class:`Limited`
    (``retry_after`` None: a slot frees when a holder finishes). Each key is a sorted set of
    leases (a unique token scored with its expiry in Redis time). A task owned by the context
    renews the lease every ``lease / 3`` seconds while the block runs and is cancelled on exit,
    which gives the slot back; a holder that dies (a killed process) stops renewing, and its
    slot frees itself ``lease`` seconds after the last renewal. The key expires ``lease``
    seconds after its newest lease was taken or renewed.
    """

    kind = "concurrency"

    def __init__(
        self,
        redis: Redis,
        max_active: int,
        *,
        lease: float = 30.0,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = 1.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.max_active = positive_int("max_active", max_active)
        self.lease = positive_number("lease", lease, "of seconds")
        self._lease_us = _micros("lease", self.lease)
        self.logger = logger or logging.getLogger("gocomm.ratelimit.redis")
        super().__init__(redis, prefix, timeout)

    def __repr__(self) -> str:
        return (
            f"RedisConcurrencyLimiter(max_active={self.max_active!r}, lease={self.lease!r}, "
            f"prefix={self.prefix!r}, timeout={self.timeout!r})"
        )

    def acquire(self, key: str) -> AbstractAsyncContextManager[None]:
        """A context that holds one of ``key``'s slots while it runs."""
        return _Lease(self, key)
