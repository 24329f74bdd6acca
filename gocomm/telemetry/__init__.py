"""Telemetry exporters fed by :mod:`gocomm.events`: OpenTelemetry (``gocomm[otel]``) and
Prometheus (``gocomm[prometheus]``).

The metrics both export are declared once, in :data:`METRICS`; :func:`measurements` turns an
event into the measurements it makes, so both exporters count the same things under the same
names. What no label or attribute ever holds: a message, a secret, an address, or
:attr:`gocomm.events.LimiterDecided.key` (it may be made of an address).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from gocomm.events import (
    BreakerChanged,
    Event,
    FailoverSwitched,
    LimiterDecided,
    RetryScheduled,
    SendFinished,
    SendScope,
    TaskDeadLettered,
    VendorAttempted,
)

__all__ = [
    "BREAKER_STATES",
    "DURATION_BUCKETS",
    "METRICS",
    "SPANS",
    "Metric",
    "measurements",
    "reference_markdown",
]


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric: its OpenTelemetry ``name``, ``kind``, ``unit``, ``description`` and the
    ``labels`` it is broken down by (``error.type`` as OpenTelemetry names it; other labels are
    ``gocomm.<label>`` attributes in OpenTelemetry, ``<label>`` labels in Prometheus)."""

    name: str
    kind: Literal["counter", "histogram", "gauge"]
    unit: str
    description: str
    labels: tuple[str, ...]

    @property
    def prometheus_name(self) -> str:
        """The name Prometheus scrapes (``gocomm_sends_total``...)."""
        base = self.name.replace(".", "_")
        if self.unit == "s":
            base += "_seconds"
        return base + "_total" if self.kind == "counter" else base

    @property
    def prometheus_labels(self) -> tuple[str, ...]:
        return tuple(label.replace(".", "_") for label in self.labels)

    def attribute(self, label: str) -> str:
        """The OpenTelemetry attribute of ``label``."""
        return label if label == "error.type" else f"gocomm.{label}"


SENDS = Metric(
    "gocomm.sends",
    "counter",
    "{send}",
    "Sends finished, by channel, the vendor that sent (or failed), outcome and error type.",
    ("channel", "vendor", "outcome", "error.type"),
)
SEND_DURATION = Metric(
    "gocomm.send.duration",
    "histogram",
    "s",
    "Duration of whole sends (waits between retries included).",
    ("channel", "outcome"),
)
VENDOR_ATTEMPTS = Metric(
    "gocomm.vendor.attempts",
    "counter",
    "{call}",
    "Calls to vendors (several per send when retried or failed over).",
    ("vendor", "outcome", "error.type"),
)
RETRIES = Metric(
    "gocomm.retries",
    "counter",
    "{retry}",
    "Retries scheduled, by the error that caused them.",
    ("channel", "error.type"),
)
FAILOVERS = Metric(
    "gocomm.failovers",
    "counter",
    "{switch}",
    "Moves from one vendor to another (reason: error, timeouts, restore).",
    ("channel", "from_vendor", "to_vendor", "reason"),
)
LIMITER_DECISIONS = Metric(
    "gocomm.limiter.decisions",
    "counter",
    "{decision}",
    "Rate and concurrency limiter decisions (decision: admitted or limited).",
    ("channel", "decision"),
)
BREAKER_TRANSITIONS = Metric(
    "gocomm.breaker.transitions",
    "counter",
    "{transition}",
    "Circuit breaker state changes seen by this process.",
    ("breaker", "old_state", "new_state"),
)
BREAKER_STATE = Metric(
    "gocomm.breaker.state",
    "gauge",
    "1",
    "Circuit breaker state as last seen: 0 closed, 1 half_open, 2 open.",
    ("breaker",),
)
DEAD_LETTERS = Metric(
    "gocomm.dead_letters",
    "counter",
    "{task}",
    "Queued sends given up and kept as dead letters.",
    ("channel", "error.type"),
)

#: Every metric gocomm exports, in the order of the reference.
METRICS: tuple[Metric, ...] = (
    SENDS,
    SEND_DURATION,
    VENDOR_ATTEMPTS,
    RETRIES,
    FAILOVERS,
    LIMITER_DECISIONS,
    BREAKER_TRANSITIONS,
    BREAKER_STATE,
    DEAD_LETTERS,
)

#: Bucket bounds of :data:`SEND_DURATION` (seconds): from a fast API call to a slow send
#: retried with backoff.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: The value of :data:`BREAKER_STATE` for each state.
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}

#: The spans the OpenTelemetry exporter makes: (name, attributes, what it covers).
SPANS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "send {channel}",
        ("gocomm.channel", "gocomm.biz", "gocomm.vendor", "gocomm.recipients", "error.type"),
        "One whole send through a channel's stack; its events are the retries "
        "(`gocomm.retry`) and failovers (`gocomm.failover`) within it.",
    ),
    (
        "attempt {vendor}",
        ("gocomm.vendor", "gocomm.biz", "gocomm.recipients", "gocomm.outcome", "error.type"),
        "One call to one vendor, a child of its send's span.",
    ),
)


def measurements(
    event: Event, scope: SendScope | None
) -> Iterator[tuple[Metric, float, dict[str, str]]]:
    """The measurements ``event`` makes: (metric, value, labels by label name); the channel is
    the send's (``scope``), empty outside a send."""
    channel = scope.channel if scope is not None else ""
    if isinstance(event, SendFinished):
        error = event.error_type or ""
        yield (
            SENDS,
            1,
            {
                "channel": event.channel,
                "vendor": event.vendor or "",
                "outcome": event.outcome,
                "error.type": error,
            },
        )
        yield SEND_DURATION, event.duration, {"channel": event.channel, "outcome": event.outcome}
    elif isinstance(event, VendorAttempted):
        labels = {"vendor": event.vendor, "outcome": event.outcome}
        yield VENDOR_ATTEMPTS, 1, {**labels, "error.type": event.error_type or ""}
    elif isinstance(event, RetryScheduled):
        yield RETRIES, 1, {"channel": channel, "error.type": event.error_type}
    elif isinstance(event, FailoverSwitched):
        labels = {"from_vendor": event.from_vendor, "to_vendor": event.to_vendor}
        yield FAILOVERS, 1, {"channel": channel, **labels, "reason": event.reason}
    elif isinstance(event, LimiterDecided):  # never the key: it may hold an address
        decision = "limited" if event.limited else "admitted"
        yield LIMITER_DECISIONS, 1, {"channel": channel, "decision": decision}
    elif isinstance(event, BreakerChanged):
        states = {"old_state": event.old, "new_state": event.new}
        yield BREAKER_TRANSITIONS, 1, {"breaker": event.name, **states}
        yield BREAKER_STATE, BREAKER_STATES.get(event.new, -1), {"breaker": event.name}
    elif isinstance(event, TaskDeadLettered):
        yield DEAD_LETTERS, 1, {"channel": event.channel, "error.type": event.error_type}


def reference_markdown() -> str:
    """The metric and span reference of ``docs/telemetry.md`` (a test keeps them equal)."""
    lines = [
        "| OpenTelemetry | Prometheus | kind | unit | labels | what |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for metric in METRICS:
        otel = ", ".join(f"`{metric.attribute(label)}`" for label in metric.labels)
        prom = ", ".join(f"`{label}`" for label in metric.prometheus_labels)
        lines.append(
            f"| `{metric.name}` | `{metric.prometheus_name}` | {metric.kind} | {metric.unit} "
            f"| {otel} (Prometheus: {prom}) | {metric.description} |"
        )
    lines += ["", "| span | attributes | what |", "| --- | --- | --- |"]
    for name, attributes, what in SPANS:
        listed = ", ".join(f"`{a}`" for a in attributes)
        lines.append(f"| `{name}` | {listed} | {what} |")
    return "\n".join(lines) + "\n"
