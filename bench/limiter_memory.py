"""Memory per key of the in-memory rate limiters, with 1,000,000 idle but unexpired keys.

    .venv/bin/python bench/limiter_memory.py [--keys 1000000]

Each limiter admits one request for each of ``--keys`` distinct keys (``sms:+86138...``, as a
per-recipient configuration makes them) with a window far longer than the run, so every key is
idle but still remembered. ``tracemalloc`` measures what the limiter holds afterwards, key
strings included (the limiter is what keeps them alive), divided by the number of keys.
Targets: sliding window <= 300 bytes per key, token bucket <= 290. A benchmark prints figures.
"""

from __future__ import annotations

import argparse
import gc
import tracemalloc

from gocomm.ratelimit import SlidingWindowLimiter, TokenBucketLimiter

TARGETS = {"SlidingWindowLimiter": 300, "TokenBucketLimiter": 290}


def bytes_per_key(limiter: SlidingWindowLimiter | TokenBucketLimiter, keys: int) -> float:
    """Bytes the limiter holds per key after one admission for each of ``keys`` keys."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(keys):
        limiter.acquire_nowait(f"sms:+86138{i:08d}")
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(limiter) == keys, "a key was forgotten: the window must outlast the run"
    return held / keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    options = parser.parse_args()
    limiters = [
        SlidingWindowLimiter(window=3600, rate=5),
        TokenBucketLimiter(rate=1 / 3600, burst=5),
    ]
    print(f"{options.keys:,} idle, unexpired keys, one admission each (tracemalloc)")
    for limiter in limiters:
        name = type(limiter).__name__
        per_key = bytes_per_key(limiter, options.keys)
        verdict = "meets" if per_key <= TARGETS[name] else "MISSES"
        print(f"{name:<22}{per_key:8.0f} bytes/key   target <= {TARGETS[name]}: {verdict}")
        del limiter


if __name__ == "__main__":
    main()
