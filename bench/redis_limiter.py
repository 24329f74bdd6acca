"""Decisions per second of the Redis limiters, 64 concurrent tasks, one local Redis.

    .venv/bin/python bench/redis_limiter.py [--tasks 64] [--rounds 5] [--seconds 1.0]

Starts its own ``redis-server`` (``gocomm.testing.redis``) and measures, in alternating rounds
so that every contender sees the same machine state, best round kept:

* ``PING``: bare round trips through the same redis-py client gocomm uses (its default pool);
* gocomm's ``RedisSlidingWindowLimiter`` and ``RedisTokenBucketLimiter`` (their decisions are
  pipelined: see ``gocomm.ratelimit.redis_scripts``);
* the ``limits`` library's async moving window on its redis-py backend, the nearest published
  equivalent of an exact sliding window (``pip install 'gocomm[bench]'``).

Every decision uses its own key among 1,000, with limits no run reaches, so every script takes
the same, admitting path. Targets: gocomm >= 1.0 x PING and >= 1.3 x limits.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from gocomm.ratelimit.redis import RedisSlidingWindowLimiter, RedisTokenBucketLimiter
from gocomm.testing.redis import RedisServer

Decide = Callable[[str], Awaitable[object]]

KEYS = [f"bench:{i}" for i in range(1000)]


#: Seconds of unmeasured decisions before each measurement: connections opened, scripts loaded.
WARM_UP = 0.2


async def measure(decide: Decide, tasks: int, seconds: float) -> float:
    """Decisions per second with ``tasks`` tasks calling ``decide`` in a loop for ``seconds``,
    after :data:`WARM_UP` seconds of the same load that are not counted."""
    done = 0

    async def worker(offset: int, stop_at: float) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < stop_at:
            await decide(KEYS[i % len(KEYS)])
            i += tasks
            done += 1

    async def run_for(duration: float) -> float:
        """Run every worker for ``duration`` seconds; the seconds they actually took."""
        started = time.perf_counter()
        await asyncio.gather(*(worker(i, started + duration) for i in range(tasks)))
        return time.perf_counter() - started

    await run_for(WARM_UP)
    warmed = done
    assert warmed > 0, "the warm-up made no decision"
    done = 0
    elapsed = await run_for(seconds)
    return done / elapsed


async def run(url: str, tasks: int, rounds: int, seconds: float) -> dict[str, float]:
    from limits import RateLimitItemPerHour
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    client = Redis.from_url(url)
    storage = RedisStorage(f"async+{url}", implementation="redispy")
    moving = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerHour(10**9)
    window = RedisSlidingWindowLimiter(client, 3600, 10**9)
    bucket = RedisTokenBucketLimiter(client, 10**6, 10**9)

    async def ping(_key: str) -> object:
        return await client.ping()

    async def limits_hit(key: str) -> object:
        return await moving.hit(item, key)

    contenders: dict[str, Decide] = {
        "PING (redis-py)": ping,
        "gocomm sliding window": window.check,
        "gocomm token bucket": bucket.check,
        "limits moving window": limits_hit,
    }
    best = dict.fromkeys(contenders, 0.0)
    try:
        for round_ in range(rounds):
            # Alternate the order so that no contender always runs first or last.
            order = list(contenders) if round_ % 2 == 0 else list(reversed(contenders))
            for name in order:
                await client.flushdb()
                rate = await measure(contenders[name], tasks, seconds)
                best[name] = max(best[name], rate)
    finally:
        await client.aclose()
        await storage.bridge.storage.aclose()  # type: ignore[attr-defined]  # no public close
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one measurement")
    options = parser.parse_args()
    with RedisServer() as server:
        best = asyncio.run(run(server.url, options.tasks, options.rounds, options.seconds))
    ping = best["PING (redis-py)"]
    limits = best["limits moving window"]
    print(
        f"{options.tasks} concurrent tasks, best of {options.rounds} rounds of "
        f"{options.seconds:g}s, one local redis-server"
    )
    print(f"{'contender':<24}{'decisions/s':>13}{'x PING':>9}{'x limits':>10}")
    for name, rate in best.items():
        print(f"{name:<24}{rate:>13,.0f}{rate / ping:>9.2f}{rate / limits:>10.2f}")
    for name in ("gocomm sliding window", "gocomm token bucket"):
        verdict = "meets" if best[name] >= ping and best[name] >= 1.3 * limits else "MISSES"
        print(f"{name}: {verdict} the targets (>= 1.0 x PING, >= 1.3 x limits)")


if __name__ == "__main__":
    main()
