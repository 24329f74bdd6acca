"""What a circuit breaker around each vendor costs, in memory and on Redis.

    .venv/bin/python bench/breaker.py [--sends N] [--tasks 64] [--seconds 1.0] [--rounds 5]

1. In memory, sequential sends. The stack is the one ``bench/overhead.py`` measures::

       RateLimitSender(RetrySender(FailoverSender([a, b]), 3), "k", SlidingWindowLimiter(...))

   against the same stack with each vendor in a ``BreakerSender`` sharing one
   ``MemoryCircuitBreaker``. Vendors do nothing and always succeed. Figures are the median over
   rounds (alternating) of the mean CPU time per send. Target: the breaker adds at most 1 µs.

2. On Redis, ``--tasks`` concurrent sends for ``--seconds``: the same stack with its rate limit
   on Redis (``RedisSlidingWindowLimiter``, a key per recipient among 1,000, never reached),
   against that stack with each vendor in a ``BreakerSender`` sharing one
   ``RedisCircuitBreaker``. The breaker's decisions share the limiter's pipelined round trips
   and outcomes are sent batched, a script call per vendor and event-loop turn, never awaited.
   Best round of each, alternating. Target: at least 0.8x the throughput without it.

Starts its own ``redis-server`` (``gocomm.testing.redis``). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from gocomm.failover import FailoverSender
from gocomm.health import BreakerSender, CircuitBreaker, MemoryCircuitBreaker, RedisCircuitBreaker
from gocomm.ratelimit import RateLimitSender, SlidingWindowLimiter
from gocomm.ratelimit.redis import RedisSlidingWindowLimiter
from gocomm.retryable import RetrySender
from gocomm.sender import Receipt, Sender
from gocomm.testing.redis import RedisServer

RATE = 10**9  # the limiters admit every send
NUMBERS = [f"+86138{i:08d}" for i in range(1000)]


class NoopVendor:
    """A vendor that sends nothing and succeeds at once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._receipt = Receipt(vendor=name)

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        return self._receipt


def stack(limiter: Any, breaker: CircuitBreaker | None) -> Sender[Any]:
    vendors: list[Sender[Any]] = [NoopVendor("a"), NoopVendor("b")]
    if breaker is not None:
        vendors = [BreakerSender(vendor, breaker) for vendor in vendors]
    return RateLimitSender(RetrySender(FailoverSender(vendors), 3), "sms:{to}", limiter)


Send = Callable[..., Awaitable[Any]]


async def per_send_us(send: Send, sends: int) -> float:
    gc.collect()
    started = time.process_time_ns()
    for i in range(sends):
        await send("login", {"code": "123456"}, NUMBERS[i % 1000])
    return (time.process_time_ns() - started) / sends / 1000


async def memory_rows(sends: int, rounds: int) -> list[tuple[str, float]]:
    without = stack(SlidingWindowLimiter(1, RATE), None)
    with_breaker = stack(SlidingWindowLimiter(1, RATE), MemoryCircuitBreaker())
    times: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(rounds):
        times["without"].append(await per_send_us(without.send, sends))
        times["with"].append(await per_send_us(with_breaker.send, sends))
        await asyncio.sleep(1)  # the limiter's window passes: each round starts afresh
    plain = statistics.median(times["without"])
    breaker = statistics.median(times["with"])
    return [
        ("stack, no breaker", plain),
        ("stack + MemoryCircuitBreaker", breaker),
        ("breaker's cost per send", breaker - plain),
    ]


async def throughput(send: Send, tasks: int, seconds: float) -> float:
    done = 0
    stop_at = 0.0

    async def worker(offset: int) -> None:
        nonlocal done
        i = offset
        while time.perf_counter() < stop_at:
            await send("login", {"code": "123456"}, NUMBERS[i % 1000])
            i += tasks
            done += 1

    stop_at = time.perf_counter() + 0.2  # warm up: connections, scripts
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    done = 0
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    return done / (time.perf_counter() - started)


async def redis_rows(url: str, tasks: int, seconds: float, rounds: int) -> list[float]:
    client = Redis.from_url(url, max_connections=50)
    try:
        limiter = RedisSlidingWindowLimiter(client, 60, RATE)
        without = stack(limiter, None)
        breaker = RedisCircuitBreaker(client)
        with_breaker = stack(limiter, breaker)
        best = [0.0, 0.0]
        for _ in range(rounds):
            best[0] = max(best[0], await throughput(without.send, tasks, seconds))
            best[1] = max(best[1], await throughput(with_breaker.send, tasks, seconds))
            await breaker.flush()
            await client.flushdb()
        await breaker.aclose()
        return best
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()

    rows = asyncio.run(memory_rows(options.sends, options.rounds))
    print(f"In memory, sequential sends ({options.sends:,} per round, median of rounds)")
    print(f"{'stack':<32} {'µs per send':>12}")
    for name, value in rows:
        print(f"{name:<32} {value:>12.2f}")
    cost = rows[2][1]
    print(f"target: breaker's cost <= 1.00 µs per send: {'met' if cost <= 1.0 else 'NOT met'}")
    print()

    with RedisServer() as server:
        plain, breaker = asyncio.run(
            redis_rows(server.url, options.tasks, options.seconds, options.rounds)
        )
    ratio = breaker / plain
    print(f"On Redis, {options.tasks} concurrent sends (best of {options.rounds} rounds)")
    print(f"{'stack':<32} {'sends/s':>12} {'ratio':>8}")
    print(f"{'Redis rate limit, no breaker':<32} {plain:>12,.0f} {1:>8.2f}")
    print(f"{'+ RedisCircuitBreaker':<32} {breaker:>12,.0f} {ratio:>8.2f}")
    print(f"target: >= 0.80x without the breaker: {'met' if ratio >= 0.8 else 'NOT met'}")


if __name__ == "__main__":
    main()
