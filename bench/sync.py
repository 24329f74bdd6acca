"""SyncClient from 1, 8 and 32 threads against the async API, in one run.

Both go through the same container stack (the embedded default's shape: an in-memory
per-recipient limit over one vendor) with a no-op vendor, so the figures show what the blocking
facade costs: the hop to the loop thread and back. Rounds alternate; medians are printed.

    .venv/bin/python bench/sync.py [--sends 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gocomm.containers import Container, build_container
from gocomm.plugins import VendorRegistry, VendorSettings, VendorSpec, hookimpl, load_registry
from gocomm.sender import Receipt
from gocomm.sync import SyncClient

RECEIPT = Receipt(vendor="noop")


class NoopVendor:
    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        return RECEIPT


class NoopSettings(VendorSettings):
    pass


class NoopPlugin:
    @hookimpl
    def gocomm_register_vendors(self, registry: VendorRegistry) -> None:
        registry.add(
            VendorSpec("noop", frozenset({"sms"}), NoopSettings, lambda _: NoopVendor(), "bench")
        )


SETTINGS = {
    "sms": {
        "vendors": [{"plugin": "noop"}],
        "ratelimit": {
            "algorithm": "sliding_window",
            "key": "sms:{to}",
            "rate": 10**9,
            "window": 60,
        },
    }
}
ARGS = {"code": "123456"}


def _container() -> Container:
    registry = load_registry(entry_points=False, plugins=[NoopPlugin()])
    return build_container(SETTINGS, registry=registry)


def _number(i: int) -> str:
    return f"+86138{i % 100_000:08d}"


def async_rate(sends: int, concurrency: int) -> float:
    async def main() -> float:
        container = _container()
        sender = await container.sms.sender()

        async def worker(start: int) -> None:
            for i in range(start, sends, concurrency):
                await sender.send("login", ARGS, _number(i))

        begin = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - begin
        await container.shutdown_resources()
        return sends / elapsed

    return asyncio.run(main())


def sync_rate(sends: int, threads: int) -> float:
    with SyncClient(container=_container()) as client:
        client.send("sms", "login", ARGS, _number(0))  # the stack is resolved once, not timed

        def worker(start: int) -> None:
            for i in range(start, sends, threads):
                client.send("sms", "login", ARGS, _number(i))

        with ThreadPoolExecutor(threads) as pool:
            begin = time.perf_counter()
            list(pool.map(worker, range(threads)))
            return sends / (time.perf_counter() - begin)


def handoff_floor(rounds: int = 20_000) -> float:
    """Seconds for one round trip between two threads (lock ping-pong): what any blocking
    facade over a loop thread pays at least once per call, whatever it does."""
    ping, pong = threading.Lock(), threading.Lock()
    ping.acquire()
    pong.acquire()

    def echo() -> None:
        for _ in range(rounds):
            ping.acquire()
            pong.release()

    thread = threading.Thread(target=echo)
    thread.start()
    begin = time.perf_counter()
    for _ in range(rounds):
        ping.release()
        pong.acquire()
    elapsed = time.perf_counter() - begin
    thread.join()
    return elapsed / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    print(f"{options.sends} sends per measurement, {options.rounds} alternating rounds, medians")
    print(f"{'threads / tasks':>16} {'async sends/s':>14} {'SyncClient sends/s':>19} {'ratio':>6}")
    for n in (1, 8, 32):
        a: list[float] = []
        s: list[float] = []
        for _ in range(options.rounds):
            a.append(async_rate(options.sends, n))
            s.append(sync_rate(options.sends, n))
        am, sm = statistics.median(a), statistics.median(s)
        target = "  (target >= 0.50)" if n == 8 else ""
        print(f"{n:>16} {am:>14,.0f} {sm:>19,.0f} {sm / am:>6.2f}{target}")
    floor = handoff_floor()
    print(
        f"floor: one thread hand-off round trip takes {floor * 1e6:.1f} µs here, so one "
        f"calling thread can make at most {1 / floor:,.0f} blocking calls/s"
    )


if __name__ == "__main__":
    main()
