"""The chaos proof (issue 17.7): 1,000 messages through the container's stack (retry, failover)
over the three public SMS fakes, 30% of requests faulted in every way a vendor fails.

Counted from the fakes' own records: every message reached its recipient (0 lost), exactly once
unless one of its requests hit an ambiguous fault (the vendor accepted it and the answer came
too late: at-least-once, DESIGN §3).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gocomm_aliyun.testing import FakeAliyun
from gocomm_tencentcloud.testing import FakeTencentCloud
from gocomm_twilio.testing import THROTTLED as TWILIO_THROTTLED
from gocomm_twilio.testing import FakeTwilio
from pydantic import SecretStr

from gocomm.containers import build_container
from gocomm.testing.httpserver import HttpRequest, HttpResponse

MESSAGES = 1_000
WORKERS = 50  # sends in flight at once
FAULT_RATE = 0.30
# Seconds. Generous, so that on a loaded machine only the faults meant to be late are: an
# unplanned client timeout would be an ambiguous duplicate this test does not know about.
READ_TIMEOUT = 1.0
#: Every way a request fails, equally likely: the vendor's own retryable error code and its
#: throttling code (through the fake's fail_next), a bare gateway 503, a connection dropped
#: before the request was read through, and (ambiguous) an answer after the client gave up.
KINDS = ("code", "throttle", "gateway", "drop", "late")


@dataclass
class Chaos:
    """Decides each request's fate (seeded) and remembers what it did."""

    rng: random.Random = field(default_factory=lambda: random.Random(17))
    faults: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    #: Recipients of requests that were accepted but answered too late.
    ambiguous: set[str] = field(default_factory=set)

    def pick(self) -> str | None:
        self.requests += 1
        if self.rng.random() >= FAULT_RATE:
            return None
        kind = self.rng.choice(KINDS)
        self.faults[kind] += 1
        return kind


def chaotic(fake_type: type[Any], chaos: Chaos, code: Any, throttled: Any) -> Any:
    """An instance of ``fake_type`` whose requests ``chaos`` faults."""

    @dataclass
    class ChaoticFake(fake_type):  # type: ignore[misc, valid-type]
        async def handle(self, request: HttpRequest) -> HttpResponse:
            kind = chaos.pick()
            if kind == "drop":
                raise ConnectionResetError("chaos: dropped")  # the server hangs up, no answer
            if kind == "gateway":
                return HttpResponse(503, b"<html>503 Service Unavailable</html>")
            if kind in ("code", "throttle"):
                self.fail_next = code if kind == "code" else throttled  # the fake's own API
            before = len(self.deliveries)
            response: HttpResponse = await super().handle(request)
            if kind == "late":
                chaos.ambiguous.update(d.recipient for d in self.deliveries[before:])
                await asyncio.sleep(READ_TIMEOUT + 0.5)
            return response

    return ChaoticFake()


def plain(settings: Any) -> dict[str, Any]:
    """A vendor entry for the configuration, from the settings the fake offers."""
    values = settings.model_dump(exclude_none=True)
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in values.items()}


async def test_1000_messages_through_30_percent_faults_none_lost_none_duplicated() -> None:
    chaos = Chaos()
    aliyun = chaotic(FakeAliyun, chaos, "isp.SYSTEM_ERROR", "Throttling.User")
    tencent = chaotic(FakeTencentCloud, chaos, "InternalError", "RequestLimitExceeded")
    twilio = chaotic(FakeTwilio, chaos, 20500, TWILIO_THROTTLED)
    async with aliyun.serving(), tencent.serving(), twilio.serving():
        timeouts = {"connect_timeout": 2.0, "read_timeout": READ_TIMEOUT}
        vendors = [
            {"plugin": "aliyun", **plain(aliyun.settings(templates={"login": "SMS_1"}))},
            {"plugin": "tencentcloud", **plain(tencent.settings(templates={"login": "1234"}))},
            {"plugin": "twilio", **plain(twilio.settings(templates={"login": "code {code}"}))},
        ]
        container = build_container(
            {
                "sms": {
                    "vendors": [{**vendor, **timeouts} for vendor in vendors],
                    "failover": {"mode": "error"},
                    "retry": {"max_attempts": 8, "interval": {"kind": "fixed", "seconds": 0}},
                }
            }
        )
        try:
            sender = await container.sms.sender()
            numbers = [f"+86139{n:08d}" for n in range(MESSAGES)]
            pending = iter(numbers)

            async def worker() -> None:
                for number in pending:
                    await sender.send("login", {"code": number[-6:]}, number)

            async with asyncio.TaskGroup() as group:
                for _ in range(WORKERS):
                    group.create_task(worker())
        finally:
            await container.shutdown_resources()

    fakes = (aliyun, tencent, twilio)
    delivered = Counter(d.recipient for fake in fakes for d in fake.deliveries)
    lost = [n for n in numbers if delivered[n] == 0]
    duplicated = [n for n in numbers if delivered[n] > 1 and n not in chaos.ambiguous]
    assert lost == []
    assert duplicated == []
    assert set(delivered) == set(numbers)
    # The faults really happened, of every kind, at about the rate asked for.
    assert set(chaos.faults) == set(KINDS)
    assert 0.2 < sum(chaos.faults.values()) / chaos.requests < 0.4
    assert all(len(fake.deliveries) > 0 for fake in fakes)
