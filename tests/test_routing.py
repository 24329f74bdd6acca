"""RoutingSender (longest E.164 prefix, split, combine) and WeightedFailoverSender (smooth
weighted round robin, then ring-order failover). Configuration and real vendor servers:
``tests/test_health_config.py``."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from gocomm.errors import (
    AllSendersFailed,
    ConfigError,
    InvalidRecipient,
    PermanentError,
    SendError,
    is_retryable,
)
from gocomm.routing import Route, RoutingSender, WeightedFailoverSender
from gocomm.sender import Receipt
from gocomm.testing import MemorySender, ScriptedSender


class RefusingSender(MemorySender):
    """Sends to everyone but the first recipient, whom it refuses for good."""

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        receipt = await super().send(biz, args, *to[1:])
        return Receipt(vendor=receipt.vendor, message_ids=receipt.message_ids, refused=to[:1])


def three_routes() -> tuple[MemorySender, MemorySender, MemorySender, RoutingSender[Any]]:
    china, north_america, rest = MemorySender("aliyun"), MemorySender("twilio-us"), MemorySender(
        "twilio"
    )
    sender: RoutingSender[Any] = RoutingSender(
        [Route(("+86",), china), Route(("+1",), north_america)], default=rest
    )
    return china, north_america, rest, sender


async def test_each_recipient_goes_through_its_route_once() -> None:
    china, north_america, rest, sender = three_routes()
    to = ("+8613800000001", "+15550000001", "+447700900001", "+8613800000002", "+15550000002")
    receipt = await sender.send("login", {"code": "1"}, *to)
    assert china.sent[0].to == ("+8613800000001", "+8613800000002")
    assert north_america.sent[0].to == ("+15550000001", "+15550000002")
    assert rest.sent[0].to == ("+447700900001",)
    delivered = [r for s in (china, north_america, rest) for m in s.sent for r in m.to]
    assert Counter(delivered) == Counter(to)  # none twice, none lost
    assert receipt is not None
    assert receipt.vendor == "aliyun+twilio-us+twilio"
    assert len(receipt.message_ids) == 3


async def test_the_longest_prefix_wins() -> None:
    caribbean, nanp = MemorySender("local"), MemorySender("nanp")
    sender: RoutingSender[Any] = RoutingSender(
        [Route(("+1",), nanp), Route(("+1868", "+1876"), caribbean)]
    )
    await sender.send("b", {}, "+18685550001", "+15550000001")
    assert caribbean.sent[0].to == ("+18685550001",)
    assert nanp.sent[0].to == ("+15550000001",)


async def test_a_single_route_is_called_directly_with_everything() -> None:
    china, _, _, sender = three_routes()
    await sender.send("b", {}, "+8613800000001", "+8613800000002")
    assert len(china.sent) == 1


async def test_no_route_and_no_default_is_invalid_recipient_before_sending() -> None:
    china = MemorySender("aliyun")
    sender: RoutingSender[Any] = RoutingSender([Route(("+86",), china)])
    with pytest.raises(InvalidRecipient, match=r"\+447700900001"):
        await sender.send("b", {}, "+8613800000001", "+447700900001")
    assert china.sent == []


async def test_one_failed_route_owes_only_its_recipients_and_keeps_others_refused() -> None:
    ok = RefusingSender("aliyun")
    failing = ScriptedSender([SendError("HTTP 503", vendor="twilio")], name="twilio")
    sender: RoutingSender[Any] = RoutingSender(
        [Route(("+86",), ok), Route(("+1",), failing)]
    )
    to = ("+8613800000001", "+8613800000002", "+15550000001")
    with pytest.raises(SendError) as caught:
        await sender.send("b", {}, *to)
    assert caught.value.unsent == ("+15550000001",)
    assert caught.value.refused == ("+8613800000001",)  # refused by the route that succeeded
    assert ok.sent[0].to == ("+8613800000002",)


async def test_several_failed_routes_raise_one_group_with_the_unions() -> None:
    one = ScriptedSender([SendError("HTTP 503")], name="aliyun")
    two = ScriptedSender(
        [PermanentError("bad template", unsent=("+15550000002",), refused=("+15550000001",))],
        name="twilio",
    )
    fine = MemorySender("rest")
    sender: RoutingSender[Any] = RoutingSender(
        [Route(("+86",), one), Route(("+1",), two)], default=fine
    )
    to = ("+8613800000001", "+15550000001", "+15550000002", "+447700900001")
    with pytest.raises(AllSendersFailed) as caught:
        await sender.send("b", {}, *to)
    assert caught.value.unsent == ("+8613800000001", "+15550000002")
    assert caught.value.refused == ("+15550000001",)
    assert is_retryable(caught.value)  # one route may succeed on a retry
    assert "2 of 3 routes failed" in str(caught.value)


async def test_all_succeeded_receipt_names_every_refused() -> None:
    sender: RoutingSender[Any] = RoutingSender(
        [Route(("+86",), RefusingSender("a")), Route(("+1",), RefusingSender("b"))]
    )
    receipt = await sender.send("b", {}, "+8613800000001", "+15550000001", "+15550000002")
    assert receipt is not None
    assert receipt.refused == ("+8613800000001", "+15550000001")


async def test_routes_run_concurrently_and_cancellation_propagates() -> None:
    slow_a, slow_b = ScriptedSender([30.0], name="a"), ScriptedSender([30.0], name="b")
    sender: RoutingSender[Any] = RoutingSender(
        [Route(("+86",), slow_a), Route(("+1",), slow_b)]
    )
    task = asyncio.create_task(sender.send("b", {}, "+8613800000001", "+15550000001"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(slow_a.calls) == len(slow_b.calls) == 1  # both called before either finished
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_closing_closes_every_route_and_the_default() -> None:
    china, north_america, rest, sender = three_routes()
    await sender.aclose()
    assert china.closed and north_america.closed and rest.closed


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda s: Route((), s), "at least one prefix"),
        (lambda s: Route(("86",), s), r"prefixes\[0\]"),
        (lambda s: Route(("+8 6",), s), r"prefixes\[0\]"),
        (lambda s: RoutingSender([Route(("+86",), s), Route(("+1", "+86"), s)]), r"routes\[1\]"),
        (lambda s: RoutingSender([]), "at least one route or a default"),
    ],
)
def test_bad_routes_are_config_errors(build: Any, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        build(MemorySender())


# ------------------------------------------------------------------------------------ weights


async def test_weighted_spread_over_10000_sends_is_within_one_percent() -> None:
    a, b = MemorySender("a"), MemorySender("b")
    sender: WeightedFailoverSender[Any] = WeightedFailoverSender([a, b], [3, 1])
    for _ in range(10_000):
        await sender.send("b", {}, "+15550000001")
    assert abs(len(a.sent) / 10_000 - 0.75) <= 0.01
    assert abs(len(b.sent) / 10_000 - 0.25) <= 0.01


def test_smooth_round_robin_interleaves() -> None:
    sender: WeightedFailoverSender[Any] = WeightedFailoverSender(
        [MemorySender("a"), MemorySender("b"), MemorySender("c")], [5, 1, 1]
    )
    assert [sender.pick() for _ in range(7)] == [0, 0, 1, 0, 2, 0, 0]


async def test_weighted_fails_over_in_ring_order_from_the_pick() -> None:
    a = MemorySender("a")
    b = ScriptedSender([SendError("down")], name="b")
    c = MemorySender("c")
    sender: WeightedFailoverSender[Any] = WeightedFailoverSender([a, b, c], [1, 100, 1])
    receipt = await sender.send("b", {}, "+15550000001")  # picks b, which fails: then c
    assert receipt is not None and receipt.vendor == "c"
    assert a.sent == []


@pytest.mark.parametrize(
    ("weights", "field"),
    [([3, 0], r"weights\[1\]"), ([3, -1], r"weights\[1\]"), ([3], "one weight per vendor")],
)
def test_bad_weights_are_config_errors(weights: list[float], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        WeightedFailoverSender([MemorySender(), MemorySender()], weights)
