"""OpenTelemetry traces and metrics from :mod:`gocomm.events` (extra ``gocomm[otel]``).

Depends on ``opentelemetry-api`` only: an application without an SDK gets no-op tracers and
meters and pays for little more than the events. With an SDK configured, :func:`instrument`
reports:

* a span ``send {channel}`` per send, a child of the span current when the send was called,
  with a child span ``attempt {vendor}`` per vendor call and a span event per retry
  (``gocomm.retry``) and failover (``gocomm.failover``); spans are made when the send ends,
  with the times the events measured;
* the metrics of :data:`gocomm.telemetry.METRICS`.

No attribute holds a message, a secret or an address (a recipient count only).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from gocomm.events import (
    Event,
    FailoverSwitched,
    RetryScheduled,
    SendFinished,
    VendorAttempted,
    add_listener,
    current_send,
    remove_listener,
)
from gocomm.telemetry import DURATION_BUCKETS, METRICS, Metric, measurements

__all__ = ["OpenTelemetryInstrumentation", "instrument"]

_SCOPE = "gocomm"
_NO_OP_PROVIDERS = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


@dataclass
class _Pending:
    """What a send in flight has reported so far: its vendor calls and span events."""

    attempts: list[VendorAttempted] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any], int]] = field(default_factory=list)


class OpenTelemetryInstrumentation:
    """The listener :func:`instrument` adds; :meth:`uninstrument` removes it."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        from gocomm import __version__

        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider)
        # With the global provider, spans are skipped while it is the API's no-op one (no SDK
        # configured yet); they start once the application sets one.
        self._global_tracing = tracer_provider is None
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider)
        self._instruments: dict[str, Any] = {m.name: _instrument(meter, m) for m in METRICS}
        self._attributes = {m.name: {k: m.attribute(k) for k in m.labels} for m in METRICS}
        self._pending: dict[int, _Pending] = {}

    def uninstrument(self) -> None:
        """Stop reporting (idempotent); sends in flight report no span."""
        remove_listener(self)
        self._pending.clear()

    def __call__(self, event: Event) -> None:
        scope = current_send()
        for metric, value, labels in measurements(event, scope):
            names = self._attributes[metric.name]
            attributes = {names[k]: v for k, v in labels.items() if v}
            instrument = self._instruments[metric.name]
            if metric.kind == "counter":
                instrument.add(value, attributes)
            elif metric.kind == "histogram":
                instrument.record(value, attributes)
            else:
                instrument.set(value, attributes)
        if self._global_tracing and isinstance(trace.get_tracer_provider(), _NO_OP_PROVIDERS):
            if scope is not None and isinstance(event, SendFinished):
                self._pending.pop(scope.id, None)
            return
        if isinstance(event, SendFinished):
            pending = self._pending.pop(scope.id, None) if scope is not None else None
            self._send_span(event, pending or _Pending())
        elif isinstance(event, VendorAttempted):
            if scope is None:  # a stack built without ValidatingSender: a span on its own
                self._attempt_span(event, None)
            else:
                self._pending.setdefault(scope.id, _Pending()).attempts.append(event)
        elif isinstance(event, RetryScheduled | FailoverSwitched):
            name, attributes = _span_event(event)
            if scope is None:
                trace.get_current_span().add_event(name, attributes)
            else:
                pending = self._pending.setdefault(scope.id, _Pending())
                pending.events.append((name, attributes, time.time_ns()))

    def _send_span(self, event: SendFinished, pending: _Pending) -> None:
        end = time.time_ns()
        start = end - int(event.duration * 1e9)
        # The wall clock and the duration's clock differ by a hair: keep children inside.
        for attempt in pending.attempts:
            begun = int(attempt.started * 1e9)
            start = min(start, begun)
            end = max(end, begun + int(attempt.duration * 1e9))
        attributes: dict[str, Any] = {
            "gocomm.channel": event.channel,
            "gocomm.biz": event.biz,
            "gocomm.recipients": event.recipients,
        }
        if event.vendor is not None:
            attributes["gocomm.vendor"] = event.vendor
        if event.error_type is not None:
            attributes["error.type"] = event.error_type
        span = self._tracer.start_span(
            f"send {event.channel}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=start,
        )
        for name, event_attributes, at in pending.events:
            span.add_event(name, event_attributes, timestamp=at)
        parent = trace.set_span_in_context(span)
        for attempt in pending.attempts:
            self._attempt_span(attempt, parent)
        if event.outcome != "sent":
            span.set_status(Status(StatusCode.ERROR, event.error_type))
        span.end(end_time=end)

    def _attempt_span(self, event: VendorAttempted, parent: Any) -> None:
        start = int(event.started * 1e9)
        attributes: dict[str, Any] = {
            "gocomm.vendor": event.vendor,
            "gocomm.biz": event.biz,
            "gocomm.recipients": event.recipients,
            "gocomm.outcome": event.outcome,
        }
        if event.error_type is not None:
            attributes["error.type"] = event.error_type
        span = self._tracer.start_span(
            f"attempt {event.vendor}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=start,
        )
        if event.outcome != "sent":
            span.set_status(Status(StatusCode.ERROR, event.error_type))
        span.end(end_time=start + int(event.duration * 1e9))


def _instrument(meter: metrics.Meter, metric: Metric) -> Any:
    if metric.kind == "counter":
        return meter.create_counter(metric.name, metric.unit, metric.description)
    if metric.kind == "histogram":
        return meter.create_histogram(
            metric.name,
            metric.unit,
            metric.description,
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
    return meter.create_gauge(metric.name, metric.unit, metric.description)


def _span_event(event: RetryScheduled | FailoverSwitched) -> tuple[str, dict[str, Any]]:
    if isinstance(event, RetryScheduled):
        return "gocomm.retry", {
            "gocomm.attempt": event.attempt,
            "gocomm.wait": event.wait,
            "error.type": event.error_type,
        }
    return "gocomm.failover", {
        "gocomm.from_vendor": event.from_vendor,
        "gocomm.to_vendor": event.to_vendor,
        "gocomm.reason": event.reason,
    }


def instrument(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> OpenTelemetryInstrumentation:
    """Report every gocomm send as OpenTelemetry spans and metrics from now on.

    The providers default to the global ones (``opentelemetry.trace.set_tracer_provider``...).
    Returns the instrumentation; ``uninstrument()`` stops it.
    """
    instrumentation = OpenTelemetryInstrumentation(tracer_provider, meter_provider)
    add_listener(instrumentation)
    return instrumentation
