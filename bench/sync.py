"""SyncClient from 1, 8 and 32 threads against the async API, in one run.

Both go through the same container stack (the embedded default's shape: an in-memory
per-recipient limit over one vendor) with a no-op vendor, so the figures show what the blocking
facade costs: the hop to the loop thread and back. N threads are compared with N tasks on one
loop; a no-op send never suspends, so the tasks run one after the other whatever N is (that is
what the async API costs, not a handicap). Threads are started before the clock. Rounds
alternate; medians are printed.

The "bare hand-off" column is the floor: SyncClient's hand-off (calls queued for a loop thread
woken once per batch, callers woken by locks in a chain) with nothing behind it, no Task, no
stack. Its ratio to the async API ("ceiling") is what SyncClient would reach if the send itself
cost nothing: a caller blocked until its outcome sleeps and is woken once per call at least,
and under the GIL a woken thread then waits for the interpreter too. On the 2-core VM gocomm is
developed on, that ceiling is itself about 0.2-0.5 at 8 threads, depending on the load (an
idle machine is the slowest: a wake-up then wakes a halted virtual CPU); see
docs/sync.md ("What a blocking call costs"). The last column is how much of the bare hand-off's
rate SyncClient keeps once a real send (the stack, its Task) sits behind each call.

    .venv/bin/python bench/sync.py [--sends 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import threading
import time
from collections.abc import Callable
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


def _threads_rate(sends: int, threads: int, call: Callable[[int], object]) -> float:
    """Calls per second of ``threads`` threads making ``sends`` blocking calls in all, started
    before the clock and released together by a barrier."""
    barrier = threading.Barrier(threads + 1)

    def worker(start: int) -> None:
        barrier.wait()
        for i in range(start, sends, threads):
            call(i)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for thread in pool:
        thread.start()
    barrier.wait()
    begin = time.perf_counter()
    for thread in pool:
        thread.join()
    return sends / (time.perf_counter() - begin)


def sync_rate(sends: int, threads: int) -> float:
    with SyncClient(container=_container()) as client:
        client.send("sms", "login", ARGS, _number(0))  # the stack is resolved once, not timed
        return _threads_rate(
            sends, threads, lambda i: client.send("sms", "login", ARGS, _number(i))
        )


class _BareCall:
    __slots__ = ("done", "next")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.next: _BareCall | None = None


def bare_rate(sends: int, threads: int) -> float:
    """Calls per second through SyncClient's hand-off with no work behind it (the floor)."""
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    mutex = threading.Lock()
    queued: list[_BareCall] = []

    def finish_batch() -> None:  # on the loop thread: wake the batch's first caller
        with mutex:
            calls = queued[:]
            queued.clear()
        for before, after in itertools.pairwise(calls):
            before.next = after
        calls[0].done.release()

    def call(_: int) -> None:
        bare = _BareCall()
        with mutex:
            queued.append(bare)
            wake = len(queued) == 1
        if wake:
            loop.call_soon_threadsafe(finish_batch)
        bare.done.acquire()
        if bare.next is not None:  # each woken caller wakes the next
            bare.next.done.release()

    try:
        return _threads_rate(sends, threads, call)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join()
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    print(f"{options.sends} sends per measurement, {options.rounds} alternating rounds, medians")
    print(
        f"{'threads / tasks':>16} {'async sends/s':>14} {'SyncClient sends/s':>19} {'ratio':>6}"
        f" {'bare hand-off calls/s':>22} {'ceiling':>8} {'SyncClient / bare':>18}"
    )
    for n in (1, 8, 32):
        a: list[float] = []
        s: list[float] = []
        f: list[float] = []
        for _ in range(options.rounds):
            a.append(async_rate(options.sends, n))
            s.append(sync_rate(options.sends, n))
            f.append(bare_rate(options.sends, n))
        am, sm, fm = statistics.median(a), statistics.median(s), statistics.median(f)
        target = "  (target >= 0.50)" if n == 8 else ""
        print(
            f"{n:>16} {am:>14,.0f} {sm:>19,.0f} {sm / am:>6.2f} {fm:>22,.0f} {fm / am:>8.2f}"
            f" {sm / fm:>18.2f}{target}"
        )


if __name__ == "__main__":
    main()
