"""`breaker:`, `routes:` and weighted failover from configuration, against real local vendor
servers (the public fakes of the SMS packages) where a vendor's behaviour is the point."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gocomm_aliyun.testing import FakeAliyun
from gocomm_twilio.testing import FakeTwilio
from redis.asyncio import Redis
from typer.testing import CliRunner

from gocomm.cli import app
from gocomm.config import Settings
from gocomm.containers import build_container
from gocomm.errors import CommError, ConfigError, SendError
from gocomm.health import BreakerSender
from gocomm.routing import RoutingSender, WeightedFailoverSender
from gocomm.testing import MemorySender, ScriptedSender

TEMPLATES = {"login": "Your code is {code}"}
ARGS = {"code": "1234"}


def twilio_entry(fake: FakeTwilio, **overrides: Any) -> dict[str, Any]:
    return {"plugin": "twilio", **fake.settings(templates=TEMPLATES, **overrides).model_dump()}


def aliyun_entry(fake: FakeAliyun) -> dict[str, Any]:
    return {"plugin": "aliyun", **fake.settings(templates={"login": "SMS_1"}).model_dump()}


def weighted(*weights: float) -> dict[str, Any]:
    return {"mode": "weighted", "weights": list(weights)}


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio().serving() as fake:
        yield fake


@pytest.fixture
async def other_twilio() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio().serving() as fake:
        yield fake


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("sms", "named"),
    [
        (
            {"vendors": ["console", "console"], "failover": weighted(3, 0)},
            r"sms\.failover\.weights\[1\].*greater than 0",
        ),
        (
            {"vendors": ["console", "console"], "failover": weighted(3)},
            "failover.weights has 1 weights for 2 vendors",
        ),
        (
            {"vendors": ["console"], "routes": [{"prefixes": ["+86"], "vendors": []}]},
            r"sms\.routes\[0\]\.vendors",
        ),
        (
            {"vendors": ["console"], "routes": [{"prefixes": [], "vendors": ["console"]}]},
            r"sms\.routes\[0\]\.prefixes",
        ),
        (
            {
                "vendors": ["console"],
                "routes": [
                    {"prefixes": ["+86"], "vendors": ["console"]},
                    {"prefixes": ["+1", "+86"], "vendors": ["console"]},
                ],
            },
            r"routes\[1\]\.prefixes repeats a prefix of routes\[0\]",
        ),
        (
            {"vendors": ["console"], "routes": [{"prefixes": ["86"], "vendors": ["console"]}]},
            r"sms\.routes\[0\]\.prefixes\[0\].*'\+' followed by digits",
        ),
        (
            {"vendors": ["console"], "breaker": {"backend": "redis"}},
            r"sms\.breaker\.backend.*needs a `redis` section",
        ),
        (
            {"vendors": ["console"], "breaker": {"failure_ratio": 1.5}},
            r"sms\.breaker\.failure_ratio",
        ),
        (
            {
                "vendors": ["console"],
                "routes": [{"prefixes": ["+1"], "vendors": ["nonesuch"]}],
            },
            r"sms\.routes\[0\]\.vendors\[0\]\.plugin",
        ),
    ],
)
def test_bad_configuration_names_the_field(sms: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        build_container({"sms": sms})


# ---------------------------------------------------------------------------------- breaker


async def test_a_breaker_wraps_each_vendor_inside_failover() -> None:
    container = build_container(
        {"sms": {"vendors": ["memory", "memory"], "breaker": {"minimum_calls": 2}}}
    )
    down = ScriptedSender([SendError("HTTP 503")] * 100, name="down")
    up = MemorySender("up")
    with container.sms.vendors.override([down, up]):
        sender = await container.sms.sender()
        stage = await container.sms.failover()
        for _ in range(5):
            stage.current_index = 0  # start at the failing vendor every time
            receipt = await sender.send("login", ARGS, "+15550000001")
            assert receipt is not None and receipt.vendor == "up"
    assert len(down.calls) == 2  # open after two failures: failover skips it at no cost
    breakers = [s.sender for s in stage.senders]  # each in an ObservedVendor (gocomm.events)
    assert all(isinstance(s, BreakerSender) for s in breakers)
    assert [s.name for s in breakers] == ["sms.vendors[0].memory", "sms.vendors[1].memory"]
    await container.shutdown_resources()


async def test_once_open_a_hanging_vendor_costs_nothing(
    twilio: FakeTwilio, other_twilio: FakeTwilio
) -> None:
    twilio.gate = asyncio.Event()  # never set while the test runs: every request hangs
    read_timeout = 0.5
    container = build_container(
        {
            "sms": {
                "vendors": [
                    twilio_entry(twilio, read_timeout=read_timeout),
                    twilio_entry(other_twilio),
                ],
                "breaker": {"minimum_calls": 2, "open_for": 60},
            }
        }
    )
    try:
        sender = await container.sms.sender()
        started = time.perf_counter()
        await asyncio.gather(*(sender.send("login", ARGS, "+15550000001") for _ in range(2)))
        assert time.perf_counter() - started >= read_timeout  # both paid the read timeout
        started = time.perf_counter()
        receipt = await sender.send("login", ARGS, "+15550000002")
        latency = time.perf_counter() - started
        assert receipt is not None
        assert latency < read_timeout / 2  # the healthy vendor's latency, no timeout paid
        assert not twilio.when_in_flight(3).is_set()  # the hanging vendor was not called
        assert [d.recipient for d in other_twilio.deliveries][-1] == "+15550000002"
    finally:
        twilio.gate.set()
        await container.shutdown_resources()


async def test_permanent_errors_never_open_a_breaker(
    twilio: FakeTwilio, other_twilio: FakeTwilio
) -> None:
    twilio.number_codes = {"+15550000009": 21211}  # an invalid number, refused each time
    container = build_container(
        {
            "sms": {
                "vendors": [twilio_entry(twilio), twilio_entry(other_twilio)],
                "breaker": {"minimum_calls": 2, "open_for": 60},
            }
        }
    )
    try:
        sender = await container.sms.sender()
        for _ in range(6):
            with pytest.raises(CommError):
                await sender.send("login", ARGS, "+15550000009")
        await sender.send("login", ARGS, "+15550000001")
        assert len(twilio.forms) == 7  # the first vendor was called every time: never open
    finally:
        await container.shutdown_resources()


# ---------------------------------------------------------------------------------- routing


async def test_a_mixed_send_is_split_by_route_none_twice_none_lost(twilio: FakeTwilio) -> None:
    async with FakeAliyun().serving() as aliyun, FakeTwilio().serving() as us:
        container = build_container(
            {
                "sms": {
                    "vendors": [twilio_entry(twilio)],
                    "routes": [
                        {"prefixes": ["+86"], "vendors": [aliyun_entry(aliyun)]},
                        {"prefixes": ["+1"], "vendors": [twilio_entry(us)]},
                    ],
                }
            }
        )
        try:
            sender = await container.sms.sender()
            to = (
                "+8613800000001",
                "+15550000001",
                "+447700900001",
                "+8613800000002",
                "+15550000002",
                "+447700900002",
            )
            receipt = await sender.send("login", ARGS, *to)
            assert receipt is not None
            assert isinstance(await container.sms.routing(), RoutingSender)
        finally:
            await container.shutdown_resources()
        by_vendor = {
            "aliyun": sorted(d.recipient for d in aliyun.deliveries),
            "us": sorted(d.recipient for d in us.deliveries),
            "rest": sorted(d.recipient for d in twilio.deliveries),
        }
    assert by_vendor == {
        "aliyun": ["+8613800000001", "+8613800000002"],
        "us": ["+15550000001", "+15550000002"],
        "rest": ["+447700900001", "+447700900002"],
    }
    assert Counter(r for numbers in by_vendor.values() for r in numbers) == Counter(to)


async def test_weighted_failover_from_configuration() -> None:
    container = build_container(
        {"sms": {"vendors": ["memory", "memory"], "failover": weighted(3, 1)}}
    )
    first, second = MemorySender("first"), MemorySender("second")
    with container.sms.vendors.override([first, second]):
        sender = await container.sms.sender()
        for _ in range(1000):
            await sender.send("login", ARGS, "+15550000001")
        assert isinstance(await container.sms.failover(), WeightedFailoverSender)
    assert (len(first.sent), len(second.sent)) == (750, 250)
    await container.shutdown_resources()


# ------------------------------------------------------------------------------ gocomm config


def test_gocomm_config_draws_breakers_routes_and_weights(tmp_path: Path) -> None:
    config = tmp_path / "gocomm.yaml"
    config.write_text(
        """
sms:
  vendors: [console, memory]
  failover: {mode: weighted, weights: [3, 1]}
  breaker: {failure_ratio: 0.25, minimum_calls: 10, window: 60, open_for: 15}
  routes:
    - prefixes: ["+86", "+852"]
      vendors: [memory]
      breaker: {backend: memory, half_open_calls: 2}
""",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        app, ["--config", str(config), "config"], env={"COLUMNS": "200", "NO_COLOR": "1"}
    )
    assert result.exit_code == 0, result.output
    for text in (
        "RoutingSender",
        "route +86 +852",
        "default route",
        "WeightedFailoverSender",
        "start by weight 3:1",
        "BreakerSender",
        "opens at 25% failed of at least 10 calls in 60s, for 15s, then 1 probe",
        "then 2 probes",
    ):
        assert text in result.output
    settings = Settings.from_mapping({"sms": {"vendors": ["console"], "routes": []}})
    assert settings.sms is not None and settings.sms.routes == []


async def test_shutdown_sends_the_outcomes_a_redis_breaker_still_holds(
    redis_client: Redis, redis_url: str
) -> None:
    container = build_container(
        {
            "redis": {"url": redis_url},
            "sms": {"vendors": ["memory"], "breaker": {"backend": "redis"}},
        }
    )
    sender = await container.sms.sender()
    await sender.send("login", ARGS, "+15550000001")  # its outcome is not awaited
    await container.shutdown_resources()
    fields = await redis_client.hgetall("gocomm:breaker:{sms.vendors[0].memory}")
    assert sum(int(v) for k, v in fields.items() if k.startswith(b"c")) == 1
