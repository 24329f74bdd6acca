"""SyncClient.send(..., idempotency_key=...): one IdempotentSender on the container's Redis
store around the channel's stack (the Celery proof is in tests/test_celery.py)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gocomm.containers import build_container
from gocomm.errors import ConfigError, DuplicateInFlight, IdempotencyConflict, InvalidRecipient
from gocomm.plugins import VendorRegistry, VendorSettings, VendorSpec, hookimpl, load_registry
from gocomm.sender import AsyncCloseable, Receipt
from gocomm.sync import SyncClient

PAGE = Path(__file__).resolve().parent.parent / "docs" / "sync.md"
PHONE = "+8613800000000"
OTHER = "+8613800000001"


class GatedVendor(AsyncCloseable):
    """Records every delivery; while ``gate`` is clear, a send waits after saying it started."""

    name = "gated"

    def __init__(self) -> None:
        self.delivered: list[tuple[str, dict[str, str], tuple[str, ...]]] = []
        self.started = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    async def send(self, biz: str, args: dict[str, str], *to: str) -> Receipt:
        self.started.set()
        if not self.gate.is_set():
            await asyncio.to_thread(self.gate.wait, 30)
        self.delivered.append((biz, args, to))
        return Receipt(vendor=self.name, message_ids=(f"id-{len(self.delivered)}",))


class GatedPlugin:
    def __init__(self, vendor: GatedVendor) -> None:
        self.vendor = vendor

    @hookimpl
    def gocomm_register_vendors(self, registry: VendorRegistry) -> None:
        registry.add(
            VendorSpec("gated", frozenset({"sms"}), VendorSettings, lambda _: self.vendor, "test")
        )


def _client(vendor: GatedVendor, **sections: Any) -> SyncClient:
    registry = load_registry(entry_points=False, plugins=[GatedPlugin(vendor)])
    settings = {"sms": {"vendors": [{"plugin": "gated"}]}, **sections}
    return SyncClient(container=build_container(settings, registry=registry))


@pytest.fixture
def vendor() -> GatedVendor:
    return GatedVendor()


@pytest.fixture
def client(vendor: GatedVendor, redis_url: str) -> Iterator[SyncClient]:
    with _client(vendor, redis={"url": redis_url}) as client:
        yield client


#: A process that sends under a key through a vendor that accepts the message and then hangs,
#: so that the test can kill it after the vendor got the message, before it was recorded.
HOLDER = """
import asyncio, sys
from pathlib import Path

from gocomm.containers import build_container
from gocomm.plugins import VendorRegistry, VendorSettings, VendorSpec, hookimpl, load_registry
from gocomm.sender import AsyncCloseable
from gocomm.sync import SyncClient

redis_url, key, lease, accepted = sys.argv[1:]


class Hanging(AsyncCloseable):
    name = "hanging"

    async def send(self, biz, args, *to):
        Path(accepted).touch()
        await asyncio.Event().wait()


class Plugin:
    @hookimpl
    def gocomm_register_vendors(self, registry: VendorRegistry) -> None:
        registry.add(
            VendorSpec("hanging", frozenset({"sms"}), VendorSettings, lambda _: Hanging(), "t")
        )


settings = {
    "redis": {"url": redis_url},
    "queue": {"lease": float(lease)},
    "sms": {"vendors": [{"plugin": "hanging"}]},
}
registry = load_registry(entry_points=False, plugins=[Plugin()])
client = SyncClient(container=build_container(settings, registry=registry))
client.send("sms", "login", {"code": "1"}, "+8613800000000", idempotency_key=key)
"""


def _key() -> str:
    return f"test-sync:{uuid.uuid4().hex}"


def test_a_second_send_under_the_key_is_replayed_not_sent(
    client: SyncClient, vendor: GatedVendor
) -> None:
    key = _key()
    first = client.send("sms", "login", {"code": "1"}, PHONE, idempotency_key=key)
    again = client.send("sms", "login", {"code": "1"}, PHONE, idempotency_key=key)
    assert first is not None and not first.replayed
    assert again is not None and again.replayed
    assert again.message_ids == first.message_ids == ("id-1",)
    assert vendor.delivered == [("login", {"code": "1"}, (PHONE,))]


def test_only_the_recipients_not_yet_sent_under_the_key_are_sent(
    client: SyncClient, vendor: GatedVendor
) -> None:
    key = _key()
    client.send("sms", "login", {"code": "1"}, PHONE, idempotency_key=key)
    client.send("sms", "login", {"code": "1"}, PHONE, OTHER, idempotency_key=key)
    assert [to for _, _, to in vendor.delivered] == [(PHONE,), (OTHER,)]


def test_the_key_reused_for_other_args_is_a_conflict_and_sends_nothing(
    client: SyncClient, vendor: GatedVendor
) -> None:
    key = _key()
    client.send("sms", "login", {"code": "1"}, PHONE, idempotency_key=key)
    with pytest.raises(IdempotencyConflict, match="first used for another message"):
        client.send("sms", "login", {"code": "2"}, PHONE, idempotency_key=key)
    assert len(vendor.delivered) == 1


def test_a_send_in_flight_under_the_key_makes_a_second_one_wait(
    client: SyncClient, vendor: GatedVendor
) -> None:
    key = _key()
    vendor.gate.clear()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            client.send, "sms", "login", {"code": "1"}, PHONE, idempotency_key=key
        )
        assert vendor.started.wait(10)
        with pytest.raises(DuplicateInFlight) as raised:
            client.send("sms", "login", {"code": "1"}, PHONE, idempotency_key=key)
        assert raised.value.retry_after is not None and 0 < raised.value.retry_after <= 60
        vendor.gate.set()
        assert not first.result(10).replayed
    again = client.send("sms", "login", {"code": "1"}, PHONE, idempotency_key=key)
    assert again is not None and again.replayed
    assert len(vendor.delivered) == 1


def test_the_hold_on_a_key_is_the_queues_lease(vendor: GatedVendor, redis_url: str) -> None:
    with _client(vendor, redis={"url": redis_url}, queue={"lease": 7.0}) as client:
        vendor.gate.clear()
        with ThreadPoolExecutor(1) as pool:
            key = _key()
            first = pool.submit(
                client.send, "sms", "login", {"code": "1"}, PHONE, idempotency_key=key
            )
            assert vendor.started.wait(10)
            with pytest.raises(DuplicateInFlight) as raised:
                client.send("sms", "login", {"code": "1"}, PHONE, idempotency_key=key)
            vendor.gate.set()
            first.result(10)
    assert raised.value.retry_after is not None and 5 < raised.value.retry_after <= 7


def test_sends_without_a_key_are_not_recorded(client: SyncClient, vendor: GatedVendor) -> None:
    client.send("sms", "login", {"code": "1"}, PHONE)
    client.send("sms", "login", {"code": "1"}, PHONE)
    assert len(vendor.delivered) == 2


def test_a_key_without_a_redis_section_names_the_setting_and_sends_nothing(
    vendor: GatedVendor,
) -> None:
    with _client(vendor) as client:
        with pytest.raises(ConfigError, match=r"`redis` section.*GOCOMM_REDIS__URL"):
            client.send("sms", "login", {"code": "1"}, PHONE, idempotency_key=_key())
        assert vendor.delivered == []
        client.send("sms", "login", {"code": "1"}, PHONE)  # unkeyed sends still work
    assert len(vendor.delivered) == 1


@pytest.mark.parametrize("key", ["", 42, b"order-1"])
def test_a_key_that_is_not_a_non_empty_string_is_refused_before_sending(
    client: SyncClient, vendor: GatedVendor, key: Any
) -> None:
    with pytest.raises(ValueError, match="idempotency_key must be a non-empty string"):
        client.send("sms", "login", {"code": "1"}, PHONE, idempotency_key=key)
    assert vendor.delivered == []


def test_the_pages_example_sends_once_and_then_replays(
    vendor: GatedVendor, redis_url: str, redis_client: Any
) -> None:
    fences = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), re.DOTALL | re.MULTILINE)
    (block,) = [b for b in fences if 'idempotency_key="order-42-shipped"' in b]
    with _client(vendor, redis={"url": redis_url}) as client:
        for _ in range(2):
            namespace: dict[str, Any] = {"client": client}
            exec(compile(block, "docs/sync.md", "exec"), namespace)
    assert namespace["receipt"].replayed
    assert [to for _, _, to in vendor.delivered] == [("+8613800138000",)]


async def test_with_a_queue_url_the_keys_are_the_workers_keys(
    vendor: GatedVendor, redis_url: str, redis_client: Any
) -> None:
    """No `redis` section, a queue on its own Redis: the keys live there, under the prefix the
    queue's workers use, so a key means one message whichever way it is sent."""
    key = _key()

    def send_twice() -> list[bool]:
        with _client(vendor, queue={"url": redis_url}) as client:
            receipts = [
                client.send("sms", "login", {"code": "1"}, PHONE, idempotency_key=key)
                for _ in range(2)
            ]
        return [r is not None and r.replayed for r in receipts]

    assert await asyncio.to_thread(send_twice) == [False, True]
    assert await redis_client.exists(f"gocomm:idem:{key}") == 1
    assert len(vendor.delivered) == 1


def test_a_holder_killed_mid_send_keeps_the_key_until_its_lease_ends_then_it_is_sent_again(
    vendor: GatedVendor, redis_url: str, tmp_path: Path
) -> None:
    """At-least-once where it must be: the dead process's vendor got the message, nothing
    recorded it; its hold on the key makes others wait (DuplicateInFlight) until its lease
    ends, then the next send goes out."""
    key, lease = _key(), 3.0
    script, accepted = tmp_path / "holder.py", tmp_path / "accepted"
    script.write_text(HOLDER)
    command = [sys.executable, str(script), redis_url, key, str(lease), str(accepted)]
    holder = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 60
        while not accepted.exists() and holder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert accepted.exists(), "the holder process did not reach its vendor"
        with _client(vendor, redis={"url": redis_url}) as client:
            with pytest.raises(DuplicateInFlight):  # alive: it renews its hold
                client.send("sms", "login", {"code": "1"}, PHONE, idempotency_key=key)
            holder.kill()
            holder.wait(30)
            killed = time.monotonic()
            waits: list[float | None] = []
            receipt = None
            while receipt is None:
                try:
                    receipt = client.send(
                        "sms", "login", {"code": "1"}, PHONE, idempotency_key=key
                    )
                except DuplicateInFlight as exc:  # the dead holder's hold, until its lease ends
                    waits.append(exc.retry_after)
                    time.sleep(exc.retry_after or 0.1)
            waited = time.monotonic() - killed
    finally:
        holder.kill()
        holder.wait(30)
    # Renewed at most lease/3 before the kill, the hold outlived the holder by 2 s or more.
    assert waits and all(w is not None and 0 < w <= lease for w in waits)
    assert receipt is not None and not receipt.replayed
    assert vendor.delivered == [("login", {"code": "1"}, (PHONE,))]
    assert waited < lease + 5


def test_a_keyed_send_knows_a_number_however_it_is_written(
    client: SyncClient, vendor: GatedVendor
) -> None:
    key = _key()
    client.send("sms", "login", {"code": "1"}, "+86 138-0000-0000", idempotency_key=key)
    again = client.send("sms", "login", {"code": "1"}, PHONE, idempotency_key=key)
    assert again is not None and again.replayed
    assert vendor.delivered == [("login", {"code": "1"}, (PHONE,))]


def test_a_bad_recipient_of_a_keyed_send_is_refused_before_the_key_is_recorded(
    client: SyncClient, vendor: GatedVendor, redis_client: Any
) -> None:
    key = _key()
    with pytest.raises(InvalidRecipient, match="13800000000"):
        client.send("sms", "login", {"code": "1"}, "13800000000", idempotency_key=key)
    assert vendor.delivered == []
    # Nothing recorded: the key is still free for any message.
    client.send("sms", "login", {"code": "2"}, PHONE, idempotency_key=key)
    assert len(vendor.delivered) == 1


def test_many_threads_sending_under_one_key_send_once(
    client: SyncClient, vendor: GatedVendor
) -> None:
    key = _key()
    vendor.gate.clear()  # the first send to reach the vendor waits there
    with ThreadPoolExecutor(16) as pool:
        futures = [
            pool.submit(client.send, "sms", "login", {"code": "1"}, PHONE, idempotency_key=key)
            for _ in range(16)
        ]
        deadline = time.monotonic() + 30
        while sum(f.done() for f in futures) < 15 and time.monotonic() < deadline:
            time.sleep(0.01)
        vendor.gate.set()
        outcomes = [f.exception(30) or f.result() for f in futures]
    in_flight = [o for o in outcomes if isinstance(o, DuplicateInFlight)]
    receipts = [o for o in outcomes if isinstance(o, Receipt)]
    assert len(in_flight) == 15 and len(receipts) == 1 and not receipts[0].replayed
    assert vendor.delivered == [("login", {"code": "1"}, (PHONE,))]
