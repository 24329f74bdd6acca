"""Per-send cost of telemetry on the container's stack, side by side in one run.

The stack is what ``build_container`` makes for an ``sms`` channel with two vendors, an
in-memory rate limit that never says no, and a retry stage (validation -> rate limit -> retry
-> failover -> vendors, each vendor observed), over vendors that do nothing. It is measured:

* with no listener (the one ``if _listeners:`` check per event);
* with ``gocomm.telemetry.opentelemetry.instrument()`` and the OpenTelemetry API alone (no
  SDK: the application did not configure one, so tracers and meters are no-ops);
* with the SDK: a ``TracerProvider`` exporting to an in-memory exporter through a
  ``SimpleSpanProcessor`` and a ``MeterProvider`` with an in-memory reader;
* with ``gocomm.telemetry.prometheus.instrument()`` on its own registry.

Rounds alternate between the set-ups in one process; each row shows the median over the
rounds of the CPU time per send, and its cost over "no listener".

    .venv/bin/python bench/telemetry.py [--sends N] [--rounds R]

Needs the test extra (opentelemetry-sdk, prometheus-client). A benchmark prints figures; it
asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from gocomm.containers import build_container
from gocomm.sender import Receipt
from gocomm.telemetry import opentelemetry as otel
from gocomm.telemetry import prometheus

PHONE = "+8613800138000"
ARGS = {"code": "1234"}
STACK = {
    "sms": {
        "vendors": [{"plugin": "memory"}, {"plugin": "memory"}],
        "ratelimit": {"algorithm": "sliding_window", "rate": 10**9, "window": 1, "key": "sms"},
        "retry": {"max_attempts": 3},
    }
}


class NoopVendor:
    """A vendor that sends nothing and succeeds at once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._receipt = Receipt(vendor=name)

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        return self._receipt


class Setup:
    """One way of listening: ``start()`` installs it, ``stop()`` removes it (and drops what
    it kept, so that rounds stay alike)."""

    def __init__(self, name: str, start: Callable[[], Callable[[], None]]) -> None:
        self.name = name
        self._start = start
        self._stop: Callable[[], None] | None = None

    def start(self) -> None:
        self._stop = self._start()

    def stop(self) -> None:
        assert self._stop is not None
        self._stop()


def no_listener() -> Callable[[], None]:
    return lambda: None


def otel_api_only() -> Callable[[], None]:
    return otel.instrument().uninstrument


def otel_sdk() -> Callable[[], None]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    instrumentation = otel.instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )

    def stop() -> None:
        instrumentation.uninstrument()
        spans.clear()
        meter_provider.shutdown()
        tracer_provider.shutdown()

    return stop


def prometheus_client() -> Callable[[], None]:
    return prometheus.instrument(CollectorRegistry()).uninstrument


async def one_round(sender: Any, sends: int) -> float:
    """CPU seconds per send over ``sends`` sequential sends."""
    gc.collect()
    start = time.process_time()
    for _ in range(sends):
        await sender.send("login", ARGS, PHONE)
    return (time.process_time() - start) / sends


async def main(sends: int, rounds: int) -> None:
    container = build_container(STACK)
    setups = [
        Setup("no listener", no_listener),
        Setup("OpenTelemetry API, no SDK", otel_api_only),
        Setup("OpenTelemetry SDK, in-memory", otel_sdk),
        Setup("Prometheus", prometheus_client),
    ]
    with container.sms.vendors.override([NoopVendor("a"), NoopVendor("b")]):
        sender = await container.sms.sender()
        for setup in setups:  # warm up every path once
            setup.start()
            await one_round(sender, 200)
            setup.stop()
        figures: dict[str, list[float]] = {setup.name: [] for setup in setups}
        for _ in range(rounds):
            for setup in setups:
                setup.start()
                figures[setup.name].append(await one_round(sender, sends))
                setup.stop()
    await container.shutdown_resources()

    base = statistics.median(figures["no listener"])
    print(f"{rounds} alternating rounds of {sends} sequential sends each, median CPU per send")
    print("stack: validation -> rate limit -> retry -> failover -> 2 observed no-op vendors")
    print(f"{'set-up':32} {'µs/send':>9} {'+µs':>8} {'x':>6}   each round (µs/send)")
    for name, values in figures.items():
        median = statistics.median(values)
        rounds_text = " ".join(f"{v * 1e6:6.2f}" for v in values)
        print(
            f"{name:32} {median * 1e6:9.2f} {(median - base) * 1e6:8.2f} "
            f"{median / base:6.2f}   {rounds_text}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    asyncio.run(main(options.sends, options.rounds))
