"""Fixtures shared by the core's tests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from gocomm.ratelimit.base import ActiveLimiter, DecisionLimiter
from gocomm.ratelimit.redis import (
    RedisConcurrencyLimiter,
    RedisSlidingWindowLimiter,
    RedisTokenBucketLimiter,
)
from gocomm.testing.redis import RedisServer, RedisServerUnavailable

# -- time ----------------------------------------------------------------------------------


class LoopClock:
    """A fake clock for the running event loop: ``advance()`` moves the loop's time forward, so
    timers (``call_later``, ``asyncio.sleep``) fire without real waiting."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._real_time = loop.time
        self.offset = 0.0

    def time(self) -> float:
        return self._real_time() + self.offset

    async def advance(self, seconds: float) -> None:
        await self.settle()  # tasks just created start (and set their timers) at the old time
        self.offset += seconds
        await self.settle()  # one loop turn runs the timers now due; more for their effects

    @staticmethod
    async def settle() -> None:
        for _ in range(5):
            await asyncio.sleep(0)


@pytest.fixture
async def loop_clock(monkeypatch: pytest.MonkeyPatch) -> LoopClock:
    """The running loop's time, moved by hand (see :class:`LoopClock`)."""
    loop = asyncio.get_running_loop()
    fake = LoopClock(loop)
    monkeypatch.setattr(loop, "time", fake.time)
    return fake


# -- Redis -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis for the whole session: ``GOCOMM_TEST_REDIS_URL`` if set (its database is flushed
    before each test that uses :func:`redis_client`), else a ``redis-server`` started here.
    Without one the tests that need it fail, saying why: Redis tests never skip."""
    url = os.environ.get("GOCOMM_TEST_REDIS_URL")
    if url:
        yield url
        return
    try:
        server = RedisServer()
        server.start()
    except RedisServerUnavailable as exc:
        pytest.fail(f"these tests need a real Redis and none could be started: {exc}")
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    """A ``redis.asyncio`` client (default pool) on an empty database, closed after the test."""
    client = Redis.from_url(redis_url)
    try:
        await client.flushdb()
        yield client
    finally:
        await client.aclose()


class RedisLimiterBackend:
    """The Redis limiters for the limiter contract (``tests/test_limiters.py``): each test
    starts on a flushed database, so every limiter starts with fresh state."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def sliding_window(self, window: float, rate: int) -> DecisionLimiter:
        return RedisSlidingWindowLimiter(self.redis, window, rate)

    async def token_bucket(self, rate: float, burst: int) -> DecisionLimiter:
        return RedisTokenBucketLimiter(self.redis, rate, burst)

    async def concurrency(self, max_active: int, lease: float) -> ActiveLimiter:
        return RedisConcurrencyLimiter(self.redis, max_active, lease=lease)

    async def abandon(self, limiter: ActiveLimiter, key: str) -> None:
        # The task that took the slot ends without releasing it: nobody renews the lease any
        # more, as after a crash (test_redis_limiters.py kills a real process for that).
        async def take_and_vanish() -> None:
            await limiter.acquire(key).__aenter__()

        await asyncio.create_task(take_and_vanish())


@pytest.fixture
def redis_limiter_backend(redis_client: Redis) -> RedisLimiterBackend:
    return RedisLimiterBackend(redis_client)


@pytest.fixture(scope="session", autouse=True)
def _batch_state_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`gocomm batch` remembers each file's journal under $XDG_STATE_HOME: in the tests, a
    temporary one (inherited by the subprocesses), never the user's own."""
    previous = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("XDG_STATE_HOME", None)
        else:
            os.environ["XDG_STATE_HOME"] = previous
