"""Proof that a Redis circuit breaker is shared by every process: four worker processes send
through the same configuration (a vendor that goes down and a healthy one, weighted 1:1 so that
half the sends start at each, a Redis breaker around each) against real local Twilio fakes.

The workers are real processes built from the configuration file (``build_container``); the
test drives them phase by phase over their stdin, and counts what each fake vendor received.
Every timing assertion allows for a slow machine: probes are bounded per open period elapsed.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gocomm_twilio.testing import FakeTwilio
from redis.asyncio import Redis

OPEN_FOR = 0.5
MINIMUM_CALLS = 4
HALF_OPEN_CALLS = 1
WORKERS = 4
SENDS = 8  # per worker and phase; weights 1:1 start exactly half of them at each vendor

WORKER = """
import asyncio, json, sys
from gocomm.config import load_settings
from gocomm.containers import build_container

async def main() -> None:
    container = build_container(load_settings(sys.argv[1]))
    sender = await container.sms.sender()
    print("ready", flush=True)
    while line := await asyncio.to_thread(sys.stdin.readline):
        vendors = []
        for i in range(int(line)):
            receipt = await sender.send("login", {"code": "1234"}, f"+1555{i:07d}")
            vendors.append(receipt.vendor)
        print(json.dumps(vendors), flush=True)
    await container.shutdown_resources()

asyncio.run(main())
"""


class Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self) -> str:
        assert self.process.stdout is not None
        raw = await self.process.stdout.readline()
        if not raw:
            assert self.process.stderr is not None
            error = await self.process.stderr.read()
            raise AssertionError(f"worker exited: {error.decode()[-2000:]}")
        return raw.decode().strip()

    async def send(self, count: int) -> list[str]:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{count}\n".encode())
        await self.process.stdin.drain()
        vendors: list[str] = json.loads(await self.line())
        return vendors


def config_text(redis_url: str, down: FakeTwilio, healthy: FakeTwilio) -> str:
    def vendor(fake: FakeTwilio) -> str:
        return json.dumps(
            {
                "plugin": "twilio",
                "account_sid": fake.account_sid,
                "auth_token": fake.auth_token,
                "from_number": fake.sender["From"],
                "endpoint": fake.url,
                "templates": {"login": "Your code is {code}"},
            }
        )

    return f"""
redis: {{url: "{redis_url}"}}
sms:
  vendors: [{vendor(down)}, {vendor(healthy)}]
  failover: {{mode: weighted, weights: [1, 1]}}
  breaker:
    backend: redis
    failure_ratio: 0.5
    minimum_calls: {MINIMUM_CALLS}
    window: 30
    open_for: {OPEN_FOR}
    half_open_calls: {HALF_OPEN_CALLS}
"""


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTwilio, FakeTwilio]]:
    async with FakeTwilio().serving() as down, FakeTwilio().serving() as healthy:
        yield down, healthy


@pytest.fixture
async def workers(
    tmp_path: Path,
    redis_client: Redis,
    redis_url: str,
    fakes: tuple[FakeTwilio, FakeTwilio],
) -> AsyncIterator[list[Worker]]:
    config = tmp_path / "gocomm.yaml"
    config.write_text(config_text(redis_url, *fakes), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOCOMM_")}
    env["GOCOMM_DISABLE_PLUGINS"] = "aliyun,smtp,tencentcloud"  # only twilio: faster start
    started = [
        Worker(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                WORKER,
                str(config),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        )
        for _ in range(WORKERS)
    ]
    try:
        for worker in started:
            assert await worker.line() == "ready"
        yield started
    finally:
        for worker in started:
            if worker.process.returncode is None:
                assert worker.process.stdin is not None
                worker.process.stdin.close()
        for worker in started:
            try:
                await asyncio.wait_for(worker.process.wait(), 10)
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()


KEY = "gocomm:breaker:{sms.vendors[0].twilio}"


async def in_redis(redis: Redis, *, is_open: bool) -> None:
    """Wait until Redis holds the first vendor's breaker open (or closed): a send's outcome
    is recorded without being awaited, so it lands a moment after the send returns."""
    for _ in range(500):
        if bool(await redis.hexists(KEY, "until")) is is_open:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the breaker never became {'open' if is_open else 'closed'}")


async def test_one_breaker_for_every_process(
    workers: list[Worker], fakes: tuple[FakeTwilio, FakeTwilio], redis_client: Redis
) -> None:
    down, healthy = fakes
    # 0. Warm up while both are healthy: connections made, scripts loaded, one success each.
    await asyncio.gather(*(worker.send(2) for worker in workers))
    warm_up = len(down.deliveries)
    assert warm_up == WORKERS
    down.mode = "http503"  # the vendor goes down: every request answered 503 (retryable)

    # 1. One process alone meets the outage: its breaker opens after minimum_calls failures
    # (4 failures of 8 calls in the window: the ratio 0.5 is reached at the 4th).
    vendors = await workers[0].send(2 * MINIMUM_CALLS)
    assert vendors == ["twilio"] * (2 * MINIMUM_CALLS)  # every send delivered (by failover)
    assert len(down.forms) == warm_up + MINIMUM_CALLS
    await in_redis(redis_client, is_open=True)
    opened = time.monotonic()

    # 2. The other processes stop calling it at once: while it is open, their very first
    # decision is refused (a probe is allowed per open period, should this take longer).
    await asyncio.gather(*(worker.send(SENDS) for worker in workers[1:]))
    periods_elapsed = math.floor((time.monotonic() - opened) / OPEN_FOR)
    calls = len(down.forms) - warm_up - MINIMUM_CALLS
    assert calls <= HALF_OPEN_CALLS * periods_elapsed

    # 3. Once open_for has passed, all four processes together probe it at most
    # half_open_calls times per open period (each probe fails: open again).
    await asyncio.sleep(OPEN_FOR + 0.2)
    before = len(down.forms)
    started = time.monotonic()
    await asyncio.gather(*(worker.send(SENDS) for worker in workers))
    periods = 1 + math.floor((time.monotonic() - started) / OPEN_FOR)
    probes = len(down.forms) - before
    assert 1 <= probes <= HALF_OPEN_CALLS * periods

    # 4. It recovers: one successful probe closes the breaker and traffic returns.
    down.mode = "ok"
    await asyncio.sleep(OPEN_FOR + 0.2)
    before = len(down.deliveries)
    await workers[0].send(2)  # one of the two starts at the recovered vendor: the probe
    assert len(down.deliveries) == before + 1
    await in_redis(redis_client, is_open=False)
    await asyncio.gather(*(worker.send(SENDS) for worker in workers))
    assert len(down.deliveries) == before + 1 + WORKERS * SENDS // 2
    total = WORKERS * 2 + 2 * MINIMUM_CALLS + 3 * SENDS + WORKERS * SENDS + 2 + WORKERS * SENDS
    assert len(down.deliveries) + len(healthy.deliveries) == total  # none lost, none twice
