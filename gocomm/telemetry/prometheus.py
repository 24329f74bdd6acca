"""Prometheus metrics from :mod:`gocomm.events` (extra ``gocomm[prometheus]``).

:func:`instrument` registers the metrics of :data:`gocomm.telemetry.METRICS` under their
Prometheus names (``gocomm_sends_total``, ``gocomm_send_duration_seconds``...) in a registry
(default: ``prometheus_client``'s global one) and updates them on every event;
:func:`serve` exposes a registry over HTTP for scraping (``gocomm worker`` and ``gocomm batch``
do it on ``telemetry.prometheus.port``). No label holds a message, a secret or an address.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from gocomm.events import Event, add_listener, current_send, remove_listener
from gocomm.telemetry import DURATION_BUCKETS, METRICS, Metric, measurements

__all__ = ["PrometheusInstrumentation", "instrument", "serve"]


class PrometheusInstrumentation:
    """The listener :func:`instrument` adds; :meth:`uninstrument` removes it and unregisters
    its metrics, so that ``instrument`` can be called again on the same registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._metrics: dict[str, Any] = {}
        self._children: dict[tuple[str, tuple[str, ...]], Any] = {}
        try:
            for metric in METRICS:
                self._metrics[metric.name] = _collector(metric, registry)
        except BaseException:
            self._unregister()
            raise

    def __call__(self, event: Event) -> None:
        for metric, value, labels in measurements(event, current_send()):
            values = tuple(labels.get(label, "") for label in metric.labels)
            child = self._children.get((metric.name, values))
            if child is None:  # prometheus_client's labels() is slow: one lookup per series
                child = self._metrics[metric.name].labels(*values)
                self._children[metric.name, values] = child
            if metric.kind == "counter":
                child.inc(value)
            elif metric.kind == "histogram":
                child.observe(value)
            else:
                child.set(value)

    def uninstrument(self) -> None:
        """Stop counting and unregister the metrics (idempotent)."""
        remove_listener(self)
        self._unregister()

    def _unregister(self) -> None:
        for collector in self._metrics.values():
            self.registry.unregister(collector)
        self._metrics.clear()
        self._children.clear()


def _collector(metric: Metric, registry: CollectorRegistry) -> Any:
    name = metric.prometheus_name
    labels = metric.prometheus_labels
    if metric.kind == "counter":
        return Counter(name, metric.description, labels, registry=registry)
    if metric.kind == "histogram":
        return Histogram(
            name, metric.description, labels, registry=registry, buckets=DURATION_BUCKETS
        )
    # Under `gocomm worker` (multiprocess mode) the worst state any process saw.
    return Gauge(name, metric.description, labels, registry=registry, multiprocess_mode="max")


def instrument(registry: CollectorRegistry | None = None) -> PrometheusInstrumentation:
    """Count every gocomm send in ``registry`` (default: the global ``REGISTRY``) from now on.

    Raises ``ValueError`` (from prometheus_client) when the registry already holds gocomm's
    metrics: uninstrument the first instrumentation before instrumenting again.
    """
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    instrumentation = PrometheusInstrumentation(registry)
    add_listener(instrumentation)
    return instrumentation


def serve(port: int, registry: CollectorRegistry, *, addr: str = "0.0.0.0") -> Any:
    """Expose ``registry`` at ``http://<addr>:<port>/metrics`` from a daemon thread; returns
    the server (call ``shutdown()`` on it to stop)."""
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server
