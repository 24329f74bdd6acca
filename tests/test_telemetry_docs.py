"""The Telemetry page and the Grafana dashboard cannot drift from the code: the page's reference
is what gocomm.telemetry generates, and every query of the dashboard names only metrics and
labels the code exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gocomm.telemetry import METRICS, reference_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_page_reference_is_what_the_code_exports() -> None:
    page = (DOCS / "telemetry.md").read_text(encoding="utf-8")
    section = page.split("<!-- reference:start -->\n", 1)[1].split("<!-- reference:end -->")[0]
    assert section == reference_markdown(), (
        "docs/telemetry.md's reference is stale: paste gocomm.telemetry.reference_markdown() "
        "between its reference markers"
    )


def _series() -> dict[str, set[str]]:
    """Every series name Prometheus scrapes from gocomm, with the labels it may carry."""
    series: dict[str, set[str]] = {}
    for metric in METRICS:
        labels = set(metric.prometheus_labels)
        series[metric.prometheus_name] = labels
        if metric.kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                series[metric.prometheus_name + suffix] = labels | {"le"}
    return series


def _queries() -> list[str]:
    dashboard = json.loads((DOCS / "grafana" / "gocomm.json").read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_dashboard_queries_only_exported_metrics_and_labels() -> None:
    series = _series()
    queries = _queries()
    assert len(queries) >= 10
    used: set[str] = set()
    for query in queries:
        names = re.findall(r"\bgocomm_[a-z_]+", query)
        assert names, query
        for name in names:
            assert name in series, f"{name} is not exported (query: {query})"
            used.add(name.removesuffix("_bucket"))
        labels = set(series[names[0]])
        grouped = re.findall(r"by \(([^)]*)\)", query)
        selected = re.findall(r"\{([^}]*)\}", query)
        named = [part.strip() for group in grouped for part in group.split(",")]
        named += [re.split(r"[!=~]", m)[0].strip() for sel in selected for m in sel.split(",")]
        for label in named:
            assert label in labels, f"label {label!r} is not on {names[0]} (query: {query})"
    # The panels the issue asks for are there: sends, latency, retries, failovers, limits,
    # breakers.
    for wanted in (
        "gocomm_sends_total",
        "gocomm_send_duration_seconds",
        "gocomm_retries_total",
        "gocomm_failovers_total",
        "gocomm_limiter_decisions_total",
        "gocomm_breaker_state",
    ):
        assert wanted in used, wanted
