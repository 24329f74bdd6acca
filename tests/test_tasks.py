"""gocomm.tasks on real brokers: the in-process memory broker, and the Redis Streams broker on
the suite's real Redis with a taskiq Receiver running in this process (the multi-process
proofs with ``gocomm worker`` are in test_queue_proof.py)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from redis.asyncio import Connection, Redis
from taskiq.receiver import Receiver

from gocomm import ConfigError, Email, InvalidRecipient, events
from gocomm.config import Settings
from gocomm.containers import build_container
from gocomm.dead_letters import RedisDeadLetters
from gocomm.messages import Attachment
from gocomm.payload import PayloadError
from gocomm.plugins import VendorRegistry, load_registry
from gocomm.stream_broker import GocommStreamBroker
from gocomm.tasks import GocommTasks, make_broker

PLUGIN_DIR = Path(__file__).parent / "queue_plugin"


def _load_recorder() -> ModuleType:
    path = PLUGIN_DIR / "gocomm_recorder.py"
    spec = importlib.util.spec_from_file_location("gocomm_recorder", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recorder = _load_recorder()


@pytest.fixture
def registry() -> VendorRegistry:
    return load_registry(entry_points=False, plugins=[recorder])


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "deliveries.jsonl"


def deliveries(path: Path) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = recorder.read_deliveries(str(path))
    return result


async def wait_for(condition: Callable[[], Any], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the workers"
        await asyncio.sleep(0.02)


def stream_settings(redis_url: str, log: Path, **queue: Any) -> Settings:
    vendor: dict[str, Any] = {"plugin": "recorder", "path": str(log)}
    vendor.update(queue.pop("vendor", {}))
    return Settings.from_mapping(
        {
            "redis": {"url": redis_url},
            "queue": {"broker": "redis_stream", "idle_timeout": 30, "lease": 5, **queue},
            "sms": {"vendors": [vendor]},
            "email": {"vendors": [vendor]},
        }
    )


@asynccontextmanager
async def worker(
    settings: Settings, registry: VendorRegistry, broker: GocommStreamBroker | None = None
) -> AsyncIterator[GocommTasks]:
    """A taskiq Receiver in this process, on its own broker (``make_broker``'s when none is
    given), as `gocomm worker` runs one."""
    tasks = GocommTasks(broker or make_broker(settings), settings=settings, registry=registry)
    tasks.broker.is_worker_process = True
    receiver = Receiver(tasks.broker, max_async_tasks=10)
    finish = asyncio.Event()
    listening = asyncio.create_task(receiver.listen(finish))
    try:
        yield tasks
    finally:
        finish.set()
        await listening
        await tasks.broker.shutdown()


@asynccontextmanager
async def app(settings: Settings) -> AsyncIterator[GocommTasks]:
    async with GocommTasks(make_broker(settings), settings=settings) as tasks:
        yield tasks


# ------------------------------------------------------------------------- memory broker


async def test_the_default_queue_is_the_memory_broker(tmp_path: Path) -> None:
    container = build_container(
        {"sms": {"vendors": [{"plugin": "file", "directory": str(tmp_path)}]}}
    )
    try:
        tasks = await container.queue()
        task_id = await tasks.enqueue("sms", "login", {"code": "1"}, "+8613800000000")
        await tasks.broker.wait_all()  # type: ignore[attr-defined]
    finally:
        await container.shutdown_resources()
    written = [json.loads(p.read_bytes()) for p in await asyncio.to_thread(tmp_path.glob, "*.json")]
    assert task_id and [(w["biz"], w["to"]) for w in written] == [("login", ["+8613800000000"])]


async def test_the_memory_broker_keeps_its_dead_letters(
    log: Path, registry: VendorRegistry
) -> None:
    from taskiq import InMemoryBroker

    settings = {"sms": {"vendors": [{"plugin": "recorder", "path": str(log),
                                     "refuse_biz": ["broken"]}]}}  # fmt: skip
    async with GocommTasks(InMemoryBroker(), settings=settings, registry=registry) as tasks:
        await tasks.enqueue("sms", "broken", {"code": "1"}, "+8613800000000")
        await tasks.enqueue("sms", "login", {"code": "2"}, "+8613800000001")
        await tasks.broker.wait_all()  # type: ignore[attr-defined]
        assert tasks.dead_letters is not None
        (letter,) = await tasks.dead_letters.list()
    assert letter.biz == "broken" and "not configured" in letter.error
    assert [d["biz"] for d in deliveries(log)] == ["login"]


async def test_the_worker_keeps_its_keys_in_the_idempotency_store_given(
    log: Path, registry: VendorRegistry
) -> None:
    from taskiq import InMemoryBroker

    from gocomm.idempotency import MemoryIdempotencyStore

    store = MemoryIdempotencyStore()
    settings = {"sms": {"vendors": [{"plugin": "recorder", "path": str(log)}]}}
    tasks = GocommTasks(InMemoryBroker(), settings=settings, registry=registry,
                        idempotency_store=store)  # fmt: skip
    async with tasks:
        for _ in range(2):
            await tasks.enqueue("sms", "login", {"code": "1"}, "+8613800000000",
                                idempotency_key="order-42")  # fmt: skip
            await tasks.broker.wait_all()  # type: ignore[attr-defined]
    assert len(store) == 1 and len(deliveries(log)) == 1


# ------------------------------------------------------------------------- stream broker


async def test_messages_enqueued_before_any_worker_are_sent_once(
    redis_client: Redis, redis_url: str, log: Path, registry: VendorRegistry
) -> None:
    settings = stream_settings(redis_url, log)
    async with app(settings) as tasks:
        ids = [
            await tasks.enqueue("sms", "login", {"code": str(i)}, f"+861380000{i:04d}")
            for i in range(20)
        ]
        assert len(set(ids)) == 20
        async with worker(settings, registry):
            await wait_for(lambda: len(deliveries(log)) == 20)
        sent = sorted(d["params"]["code"] for d in deliveries(log))
    assert sent == sorted(str(i) for i in range(20))
    # Acknowledged and deleted: nothing left to do, nothing pending.
    await wait_for_empty(redis_client)


async def wait_for_empty(redis: Redis, within: float = 10.0) -> None:
    # A generous deadline: the worker acknowledges on its own schedule, slower on a loaded box.
    deadline = time.monotonic() + within
    while True:
        pending = await redis.xpending("gocomm", "gocomm")
        if await redis.xlen("gocomm") == 0 and pending["pending"] == 0:
            return
        assert time.monotonic() < deadline, "the stream still holds messages"
        await asyncio.sleep(0.02)


async def test_one_idempotency_key_enqueued_twice_is_sent_once(
    redis_client: Redis, redis_url: str, log: Path, registry: VendorRegistry
) -> None:
    settings = stream_settings(redis_url, log)
    async with app(settings) as tasks, worker(settings, registry):
        for _ in range(2):
            await tasks.enqueue("sms", "login", {"code": "1"}, "+8613800000000",
                                idempotency_key="order-42")  # fmt: skip
        await wait_for_empty(redis_client)
    assert len(deliveries(log)) == 1


async def test_an_email_with_an_attachment_travels(
    redis_client: Redis, redis_url: str, log: Path, registry: VendorRegistry
) -> None:
    settings = stream_settings(redis_url, log)
    mail = Email(subject="Invoice", text="attached", attachments=(Attachment("a.pdf", b"\x00"),))
    async with app(settings) as tasks, worker(settings, registry):
        await tasks.enqueue("email", "", mail, "ada@example.com")
        await wait_for(lambda: len(deliveries(log)) == 1)
    assert deliveries(log)[0]["params"] == {"subject": "Invoice"}


async def test_a_retryable_failure_is_enqueued_again(
    redis_client: Redis, redis_url: str, log: Path, registry: VendorRegistry
) -> None:
    settings = stream_settings(redis_url, log, vendor={"transient_failures": 2})
    async with app(settings) as tasks, worker(settings, registry) as running:
        await tasks.enqueue("sms", "login", {"code": "1"}, "+8613800000000")
        await wait_for(lambda: len(deliveries(log)) == 1)
        await wait_for_empty(redis_client)
        assert running.dead_letters is not None and await running.dead_letters.list() == []
    assert await redis_client.zcard("gocomm:delayed") == 0


async def test_a_permanent_failure_is_a_dead_letter_once(
    redis_client: Redis, redis_url: str, log: Path, registry: VendorRegistry
) -> None:
    settings = stream_settings(redis_url, log, vendor={"refuse_biz": ["broken"]})
    seen: list[events.Event] = []
    events.add_listener(seen.append)
    try:
        async with app(settings) as tasks, worker(settings, registry):
            await tasks.enqueue("sms", "broken", {"code": "1"}, "+8613800000000")
            await tasks.enqueue("sms", "login", {"code": "2"}, "+8613800000001")
            await wait_for(lambda: len(deliveries(log)) == 1)
            await wait_for_empty(redis_client)
    finally:
        events.remove_listener(seen.append)
    letters = await RedisDeadLetters(redis_client).list()
    assert len(letters) == 1
    (letter,) = letters
    (dead,) = [e for e in seen if isinstance(e, events.TaskDeadLettered)]
    assert dead.task_id  # taskiq's id of the task, not the dead letter's entry
    assert dead == events.TaskDeadLettered(dead.task_id, "sms", "broken", 1, 1, "PermanentError")
    assert (letter.channel, letter.biz, letter.to) == ("sms", "broken", ("+8613800000000",))
    assert "PermanentError" in letter.error and "'broken' is not configured" in letter.error
    assert letter.task["args"] == {"code": "1"}

    # The configuration fixed, the dead letter enqueued again is sent.
    fixed = stream_settings(redis_url, log)
    async with app(fixed) as tasks, worker(fixed, registry):
        await tasks.kick(letter.task)
        await RedisDeadLetters(redis_client).delete([letter.id])
        await wait_for(lambda: len(deliveries(log)) == 2)
    assert await RedisDeadLetters(redis_client).list() == []


async def test_spent_retries_are_a_dead_letter(
    redis_client: Redis, redis_url: str, log: Path, registry: VendorRegistry
) -> None:
    settings = stream_settings(
        redis_url, log, max_retries=1, vendor={"transient_failures": 100}
    )
    async with app(settings) as tasks, worker(settings, registry):
        await tasks.enqueue("sms", "login", {"code": "1"}, "+8613800000000")
        dead = RedisDeadLetters(redis_client)

        async def letters() -> int:
            return len(await dead.list())

        for _ in range(500):
            if await letters():
                break
            await asyncio.sleep(0.02)
    (letter,) = await dead.list()
    assert letter.error.startswith("gave up after 2 attempts: SendError: vendor busy")
    assert deliveries(log) == []


async def test_a_dead_workers_messages_are_reclaimed_on_a_quiet_stream(
    redis_client: Redis, redis_url: str, log: Path, registry: VendorRegistry
) -> None:
    settings = stream_settings(redis_url, log, idle_timeout=0.2)
    async with app(settings) as tasks:
        for i in range(3):
            await tasks.enqueue("sms", "login", {"code": str(i)}, f"+86138000000{i:02d}")
    # A worker read them and died without acknowledging: they are pending, nobody reads.
    read = await redis_client.xreadgroup("gocomm", "dead-worker", {"gocomm": ">"}, count=10)
    assert len(read[0][1]) == 3
    async with worker(settings, registry):
        await wait_for(lambda: len(deliveries(log)) == 3)
        await wait_for_empty(redis_client)


async def test_a_success_is_recorded_and_acknowledged_in_one_round_trip(
    redis_client: Redis, redis_url: str, log: Path, registry: VendorRegistry
) -> None:
    pipelines: list[list[str]] = []  # per round trip of the worker's script calls: their keys

    class Recording(Connection):
        def pack_commands(self, commands: Any) -> Any:
            pipelines.append([str(c[3]) for c in commands if c[0] == "EVALSHA"])
            return super().pack_commands(commands)

    settings = stream_settings(redis_url, log)
    broker = GocommStreamBroker(redis_url, idle_timeout=30, connection_class=Recording)
    async with app(settings) as tasks, worker(settings, registry, broker):
        for n in (1, 2):  # the first loads the scripts (SCRIPT LOAD, then the calls again)
            pipelines.clear()
            await tasks.enqueue("sms", "login", {"code": "1"}, "+8613800000000",
                                idempotency_key=f"order-{n}")  # fmt: skip
            await wait_for_empty(redis_client)
    # The claim, then the record of the success with the stream's acknowledgement behind it.
    assert pipelines == [["gocomm:idem:order-2"], ["gocomm:idem:order-2", "gocomm"]]
    assert len(deliveries(log)) == 2


async def test_a_delayed_message_waits_in_the_delayed_set(
    redis_client: Redis, redis_url: str, log: Path, registry: VendorRegistry
) -> None:
    settings = stream_settings(redis_url, log)
    async with app(settings) as tasks:
        await tasks.enqueue("sms", "login", {"code": "1"}, "+8613800000000", delay=0.3)
        assert await redis_client.xlen("gocomm") == 0
        assert await redis_client.zcard("gocomm:delayed") == 1
        async with worker(settings, registry):
            await wait_for(lambda: len(deliveries(log)) == 1)
    assert await redis_client.zcard("gocomm:delayed") == 0


@pytest.mark.parametrize(
    ("channel", "args", "to", "error", "message"),
    [
        ("fax", {"code": "1"}, "+8613800000000", PayloadError, "unknown channel 'fax'"),
        ("sms", {"code": 1}, "+8613800000000", PayloadError, "'code'"),
        ("email", {"subject": "x"}, "a@example.com", PayloadError, "Email"),
        ("sms", {"code": "1"}, "12345", InvalidRecipient, "12345"),
    ],
)
async def test_bad_input_enqueues_nothing(
    redis_client: Redis,
    redis_url: str,
    log: Path,
    channel: str,
    args: Any,
    to: str,
    error: type[Exception],
    message: str,
) -> None:
    async with app(stream_settings(redis_url, log)) as tasks:
        with pytest.raises(error, match=message):
            await tasks.enqueue(channel, "login", args, to)
    assert await redis_client.xlen("gocomm") == 0


def test_a_redis_stream_queue_needs_a_redis() -> None:
    with pytest.raises(ConfigError, match=r"queue\.broker.*needs a Redis"):
        Settings.from_mapping({"queue": {"broker": "redis_stream"}})
    broker = make_broker(
        Settings.from_mapping({"queue": {"url": "redis://127.0.0.1:1/0", "idle_timeout": 2.5}})
    )
    assert isinstance(broker, GocommStreamBroker)
    assert broker.idle_timeout == 2500  # taskiq-redis counts in milliseconds
