"""A drawing of the stacks the container wires (:mod:`gocomm.containers`), for ``gocomm config``.

:func:`describe_stack` reads a channel's settings the way the container builds from them, and
returns a tree of :class:`StackNode`\\ s, outermost stage first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gocomm.channels import CHANNELS
from gocomm.config import (
    BreakerSettings,
    ChannelSettings,
    ErrorFailover,
    ExponentialInterval,
    FixedInterval,
    Settings,
    TimeoutFailover,
    UniformInterval,
    VendorEntry,
    WeightedFailover,
)

__all__ = ["StackNode", "describe_stack", "describe_stacks"]


@dataclass(frozen=True)
class StackNode:
    """One stage of a channel's stack, for drawing (``gocomm config`` draws it as a tree)."""

    label: str
    detail: str = ""
    children: tuple[StackNode, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``{label, detail, children: [...]}``."""
        return {
            "label": self.label,
            "detail": self.detail,
            "children": [child.to_dict() for child in self.children],
        }


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _interval_detail(interval: FixedInterval | UniformInterval | ExponentialInterval) -> str:
    if isinstance(interval, FixedInterval):
        return f"wait {_seconds(interval.seconds)}"
    if isinstance(interval, UniformInterval):
        return f"wait {_seconds(interval.low)}–{_seconds(interval.high)} at random"
    jitter = ", jitter" if interval.jitter else ""
    return (
        f"wait {_seconds(interval.initial)} ×{interval.multiplier:g} up to "
        f"{_seconds(interval.maximum)}{jitter}"
    )


def _breaker_detail(breaker: BreakerSettings) -> str:
    probes = "probe" if breaker.half_open_calls == 1 else "probes"
    return (
        f"{breaker.backend}; opens at {breaker.failure_ratio:.0%} failed of at least "
        f"{breaker.minimum_calls} calls in {_seconds(breaker.window)}, for "
        f"{_seconds(breaker.open_for)}, then {breaker.half_open_calls} {probes}"
    )


def _vendors_stage(
    entries: Sequence[VendorEntry],
    failover: ErrorFailover | TimeoutFailover | WeightedFailover,
    breaker: BreakerSettings | None,
) -> StackNode:
    """The failover stage over ``entries``, each in its breaker when there is one."""
    vendors = tuple(StackNode(entry.plugin, "vendor") for entry in entries)
    if breaker is not None:
        detail = _breaker_detail(breaker)
        vendors = tuple(StackNode("BreakerSender", detail, (vendor,)) for vendor in vendors)
    if isinstance(failover, TimeoutFailover):
        parts = [f"switch after {failover.threshold} consecutive timeouts"]
        if failover.attempt_timeout is not None:
            parts.append(f"each call {_seconds(failover.attempt_timeout)} at most")
        if failover.restore_after is not None:
            parts.append(f"back to the first after {_seconds(failover.restore_after)}")
        return StackNode("TimeoutFailoverSender", "; ".join(parts), vendors)
    if isinstance(failover, WeightedFailover):
        weights = ":".join(f"{weight:g}" for weight in failover.weights)
        detail = f"start by weight {weights}, then next vendor on error"
        return StackNode("WeightedFailoverSender", detail, vendors)
    if len(vendors) > 1:
        return StackNode("FailoverSender", "next vendor on error", vendors)
    return vendors[0]


def describe_stack(channel: ChannelSettings | None) -> StackNode | None:
    """The stack ``channel`` builds, outermost stage first; None when it is not configured."""
    if channel is None:
        return None
    node = _vendors_stage(channel.vendors, channel.failover, channel.breaker)
    if channel.routes:
        routes = [
            StackNode(
                f"route {' '.join(route.prefixes)}",
                "",
                (_vendors_stage(route.vendors, route.failover, route.breaker),),
            )
            for route in channel.routes
        ]
        routes.append(StackNode("default route", "numbers no prefix matches", (node,)))
        node = StackNode("RoutingSender", "by longest number prefix", tuple(routes))
    retry = channel.retry
    if retry is not None:
        if retry.interval is None:
            node = StackNode("RetrySender", f"{retry.max_attempts} attempts, no wait", (node,))
        else:
            detail = f"{retry.max_attempts} attempts, {_interval_detail(retry.interval)}"
            if retry.max_delay is not None:
                detail += f", each wait {_seconds(retry.max_delay)} at most"
            node = StackNode("IntervalRetrySender", detail, (node,))
    limit = channel.ratelimit
    if limit is not None:
        failing = "fail open" if limit.fail_open else "fail closed"
        label, what = limit.summary()
        detail = f"{limit.backend} {what}, key {limit.key!r}, {failing}{limit.notes()}"
        node = StackNode(label, detail, (node,))
    return node


def describe_stacks(settings: Settings) -> dict[str, StackNode | None]:
    """:func:`describe_stack` for every channel, by channel name, under the validation stage
    that starts every stack the container builds."""
    stacks: dict[str, StackNode | None] = {}
    for name in CHANNELS:
        stack = describe_stack(settings.channel(name))
        if stack is not None:
            check = "E.164 numbers" if name == "sms" else "addresses"
            stack = StackNode("ValidatingSender", f"{check} checked first", (stack,))
        stacks[name] = stack
    return stacks
