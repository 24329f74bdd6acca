"""gocomm.telemetry: OpenTelemetry spans and metrics read back with the SDK's in-memory exporter
and reader, Prometheus metrics scraped from a registry; nothing from a message or an address
in any attribute or label."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry, generate_latest

from gocomm.containers import build_container
from gocomm.errors import Limited, SendError
from gocomm.events import remove_listener
from gocomm.telemetry import METRICS, prometheus
from gocomm.telemetry import opentelemetry as otel
from gocomm.testing import ScriptedSender

PHONE = "+8613800000000"
SMS = {"code": "secret-code-4242"}
STACK = {
    "sms": {
        "vendors": [{"plugin": "memory"}, {"plugin": "memory"}],
        "ratelimit": {"algorithm": "sliding_window", "rate": 1, "window": 60, "key": "sms:{to}"},
        "retry": {"max_attempts": 2},
    }
}


@pytest.fixture
async def stack() -> AsyncIterator[Any]:
    """The container's sms stack over two vendors that each fail once: a send fails over from
    a to b, b fails too, the retry sends through a."""
    container = build_container(STACK)
    a = ScriptedSender([SendError("a is down", vendor="a")], name="a")
    b = ScriptedSender([SendError("b is down", vendor="b")], name="b")
    with container.sms.vendors.override([a, b]):
        yield await container.sms.sender()
    await container.shutdown_resources()


class Otel:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Every data point by metric name: (attributes, value or histogram count)."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        assert data is not None
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:
                            value = point.count  # type: ignore[union-attr]
                        found.setdefault(metric.name, []).append((dict(point.attributes), value))
        return found


@pytest.fixture
def telemetry() -> Iterator[Otel]:
    setup = Otel()
    instrumentation = otel.instrument(
        tracer_provider=setup.tracer_provider, meter_provider=setup.meter_provider
    )
    yield setup
    instrumentation.uninstrument()


async def test_a_retried_failed_over_send_is_one_span_with_a_child_per_vendor_call(
    stack: Any, telemetry: Otel
) -> None:
    tracer = telemetry.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request") as request:
        await stack.send("login", SMS, PHONE)

    spans = {s.name: s for s in telemetry.spans.get_finished_spans() if s.name != "attempt a"}
    attempts = [s for s in telemetry.spans.get_finished_spans() if s.name.startswith("attempt")]
    send = spans["send sms"]
    assert send.parent is not None
    assert send.parent.span_id == request.get_span_context().span_id  # the caller's span
    assert dict(send.attributes or {}) == {
        "gocomm.channel": "sms",
        "gocomm.biz": "login",
        "gocomm.vendor": "a",
        "gocomm.recipients": 1,
    }
    assert send.status.status_code is StatusCode.UNSET
    assert [(s.name, (s.attributes or {}).get("error.type")) for s in attempts] == [
        ("attempt a", "SendError"),
        ("attempt b", "SendError"),
        ("attempt a", None),
    ]
    for attempt in attempts:
        assert attempt.parent is not None and attempt.parent.span_id == _span_id(send)
        assert send.start_time is not None and attempt.start_time is not None
        assert send.end_time is not None and attempt.end_time is not None
        assert send.start_time <= attempt.start_time <= attempt.end_time <= send.end_time
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR] * 2 + [StatusCode.UNSET]
    assert [e.name for e in send.events] == ["gocomm.failover", "gocomm.retry"]
    assert dict(send.events[1].attributes or {}) == {
        "gocomm.attempt": 1,
        "gocomm.wait": 0.0,
        "error.type": "AllSendersFailed",
    }

    points = telemetry.points()
    assert points["gocomm.sends"] == [
        ({"gocomm.channel": "sms", "gocomm.vendor": "a", "gocomm.outcome": "sent"}, 1)
    ]
    assert points["gocomm.send.duration"] == [
        ({"gocomm.channel": "sms", "gocomm.outcome": "sent"}, 1)
    ]
    assert points["gocomm.retries"] == [
        ({"gocomm.channel": "sms", "error.type": "AllSendersFailed"}, 1)
    ]
    assert points["gocomm.failovers"] == [
        (
            {
                "gocomm.channel": "sms",
                "gocomm.from_vendor": "a",
                "gocomm.to_vendor": "b",
                "gocomm.reason": "error",
            },
            1,
        )
    ]
    assert points["gocomm.limiter.decisions"] == [
        ({"gocomm.channel": "sms", "gocomm.decision": "admitted"}, 1)
    ]
    assert sum(value for _, value in points["gocomm.vendor.attempts"]) == 3


async def test_a_failed_send_has_an_error_span_and_no_address_anywhere(
    stack: Any, telemetry: Otel
) -> None:
    await stack.send("login", SMS, PHONE)
    with pytest.raises(Limited):
        await stack.send("login", SMS, PHONE)

    failed = [s for s in telemetry.spans.get_finished_spans() if s.name == "send sms"][-1]
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "Limited"
    points = telemetry.points()
    assert ({"gocomm.channel": "sms", "gocomm.decision": "limited"}, 1) in points[
        "gocomm.limiter.decisions"
    ]
    everything = json.dumps(
        [json.loads(s.to_json()) for s in telemetry.spans.get_finished_spans()]
    ) + json.dumps(points, default=str)
    assert "13800000000" not in everything
    assert "secret-code" not in everything


async def test_without_an_sdk_the_api_alone_reports_nothing_and_breaks_nothing(
    stack: Any,
) -> None:
    instrumentation = otel.instrument()  # the global providers: the API's no-op ones here
    try:
        receipt = await stack.send("login", SMS, PHONE)
    finally:
        instrumentation.uninstrument()
    assert receipt is not None and receipt.attempts == 2


async def test_prometheus_counts_the_same_sends(stack: Any) -> None:
    registry = CollectorRegistry()
    instrumentation = prometheus.instrument(registry)
    try:
        await stack.send("login", SMS, PHONE)
        with pytest.raises(Limited):
            await stack.send("login", SMS, PHONE)
    finally:
        remove_listener(instrumentation)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    sent = {"channel": "sms", "vendor": "a", "outcome": "sent", "error_type": ""}
    assert value("gocomm_sends_total", **sent) == 1
    limited = {"channel": "sms", "vendor": "", "outcome": "limited", "error_type": "Limited"}
    assert value("gocomm_sends_total", **limited) == 1
    assert value("gocomm_send_duration_seconds_count", channel="sms", outcome="sent") == 1
    assert value("gocomm_retries_total", channel="sms", error_type="AllSendersFailed") == 1
    failover = {"channel": "sms", "from_vendor": "a", "to_vendor": "b", "reason": "error"}
    assert value("gocomm_failovers_total", **failover) == 1
    assert value("gocomm_limiter_decisions_total", channel="sms", decision="limited") == 1
    assert value("gocomm_limiter_decisions_total", channel="sms", decision="admitted") == 1
    scraped = generate_latest(registry).decode()
    assert "13800000000" not in scraped and "secret-code" not in scraped
    # Unregistered with the instrumentation: instrumenting the registry again works.
    instrumentation.uninstrument()
    assert value("gocomm_sends_total", **sent) is None
    prometheus.instrument(registry).uninstrument()


def test_every_metric_is_exported_under_its_documented_prometheus_name() -> None:
    registry = CollectorRegistry()
    instrumentation = prometheus.instrument(registry)
    try:
        names = {sample_name for family in registry.collect() for sample_name in [family.name]}
    finally:
        instrumentation.uninstrument()
    # prometheus_client names a counter family without its _total suffix
    assert {m.prometheus_name.removesuffix("_total") for m in METRICS} == names


def _span_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.span_id


# -- the telemetry section -------------------------------------------------------------------


async def test_the_container_installs_what_telemetry_names_and_removes_it_at_shutdown() -> None:
    from prometheus_client import REGISTRY

    from gocomm import events

    settings = {
        "sms": {"vendors": [{"plugin": "memory"}]},
        "telemetry": {"opentelemetry": True, "prometheus": {"port": 9464}},
    }
    first, second = build_container(settings), build_container(settings)
    assert not events._listeners  # nothing until a sender is resolved
    sender = await first.sms.sender()
    await second.sms.sender()
    assert len(events._listeners) == 2  # one per exporter, shared by both containers
    await sender.send("login", SMS, PHONE)
    labels = {"channel": "sms", "vendor": "memory", "outcome": "sent", "error_type": ""}
    assert REGISTRY.get_sample_value("gocomm_sends_total", labels) == 1
    await first.shutdown_resources()
    assert len(events._listeners) == 2  # the second container still reports
    await second.shutdown_resources()
    assert not events._listeners
    assert REGISTRY.get_sample_value("gocomm_sends_total", labels) is None  # unregistered


@pytest.mark.parametrize(
    ("section", "library", "extra"),
    [
        ({"opentelemetry": True}, "opentelemetry", "gocomm[otel]"),
        ({"prometheus": {}}, "prometheus_client", "gocomm[prometheus]"),
    ],
)
def test_telemetry_without_its_library_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, section: dict[str, Any], library: str, extra: str
) -> None:
    import sys

    from gocomm.errors import ConfigError

    # As if the library were not installed: importing it raises ImportError.
    monkeypatch.setitem(sys.modules, library, None)
    for name in ("gocomm.telemetry.opentelemetry", "gocomm.telemetry.prometheus"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ConfigError, match=re.escape(extra)):
        build_container({"sms": {"vendors": [{"plugin": "memory"}]}, "telemetry": section})


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _scrape(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text: str = answer.read().decode()
        return text


async def test_batch_serves_the_metrics_on_the_configured_port() -> None:
    from gocomm.config import Settings
    from gocomm.telemetry.install import metrics_endpoint

    port = _free_port()
    settings = Settings.from_mapping(
        {
            "sms": {"vendors": [{"plugin": "memory"}]},
            "telemetry": {"prometheus": {"port": port, "addr": "127.0.0.1"}},
        }
    )
    container = build_container(settings)
    with metrics_endpoint(settings):
        sender = await container.sms.sender()
        await sender.send("login", SMS, PHONE)
        scraped = await asyncio.to_thread(_scrape, port)
        await container.shutdown_resources()
    line = 'gocomm_sends_total{channel="sms",error_type="",outcome="sent",vendor="memory"} 1.0'
    assert line in scraped
    with pytest.raises(OSError):  # the endpoint goes with the block
        _scrape(port)


def test_worker_processes_metrics_are_added_up_on_one_endpoint() -> None:
    """`gocomm worker` runs several processes: each counts in multiprocess files and the
    endpoint adds them up. Two real processes each report one send."""
    import os
    import subprocess
    import sys

    from gocomm.config import Settings
    from gocomm.telemetry.install import metrics_endpoint

    port = _free_port()
    settings = Settings.from_mapping(
        {"telemetry": {"prometheus": {"port": port, "addr": "127.0.0.1"}}}
    )
    child = (
        "from prometheus_client import CollectorRegistry\n"
        "from gocomm.events import SendFinished, emit\n"
        "from gocomm.telemetry import prometheus\n"
        "prometheus.instrument(CollectorRegistry())\n"
        "emit(SendFinished('sms', 'login', 'aliyun', 1, 'sent', None, 0.2))\n"
    )
    with metrics_endpoint(settings, processes=True):
        assert os.environ["PROMETHEUS_MULTIPROC_DIR"]
        for _ in range(2):
            subprocess.run([sys.executable, "-c", child], check=True, timeout=60)
        scraped = _scrape(port)
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    line = 'gocomm_sends_total{channel="sms",error_type="",outcome="sent",vendor="aliyun"} 2.0'
    assert line in scraped
    assert 'gocomm_send_duration_seconds_count{channel="sms",outcome="sent"} 2.0' in scraped
    # This process counts in memory again, as before the block.
    registry = CollectorRegistry()
    instrumentation = prometheus.instrument(registry)
    try:
        from gocomm.events import SendFinished, emit

        emit(SendFinished("sms", "login", "aliyun", 1, "sent", None, 0.2))
    finally:
        remove_listener(instrumentation)
    labels = {"channel": "sms", "vendor": "aliyun", "outcome": "sent", "error_type": ""}
    assert registry.get_sample_value("gocomm_sends_total", labels) == 1
    instrumentation.uninstrument()
