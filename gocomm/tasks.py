"""Sends handed to workers through taskiq (extra ``gocomm[taskiq]``).

The application enqueues; workers (``gocomm worker``) send through each channel's full stack::

    tasks = GocommTasks(make_broker(settings), settings=settings)
    await tasks.startup()
    task_id = await tasks.enqueue("sms", "login", {"code": "1234"}, "+8613800000000")

Every message travels with an idempotency key (the caller's, else one made at enqueue), and the
worker sends under it through an :class:`~gocomm.idempotency.IdempotentSender`, so a message
delivered twice by the broker (a worker died before acknowledging it) is sent once. A retryable
failure is enqueued again after the error's ``retry_after`` or an exponential backoff, at most
``queue.max_retries`` times; a permanent failure, or retries spent, becomes a dead letter with
the error and the original task. The broker's message is acknowledged only after that outcome
is recorded; if recording fails, the message stays unacknowledged and is delivered again. A
success's record and its acknowledgement travel in one round trip to Redis, the record first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from taskiq import AsyncBroker, Context, InMemoryBroker, TaskiqDepends, TaskiqEvents, TaskiqState

from gocomm.config import QueueSettings, Settings, load_settings
from gocomm.dead_letters import DeadLetters, MemoryDeadLetters, RedisDeadLetters
from gocomm.errors import ConfigError, DuplicateInFlight, Limited, is_retryable
from gocomm.events import TaskDeadLettered, _listeners, emit
from gocomm.idempotency import (
    IdempotencyStore,
    IdempotentSender,
    MemoryIdempotencyStore,
    RedisIdempotencyStore,
    use_key,
)
from gocomm.payload import PayloadError, decode_args, encode_args
from gocomm.recipients import validate_email, validate_phone
from gocomm.retryable import exponential
from gocomm.stream_broker import GocommStreamBroker

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gocomm.batch import Journal, Row
    from gocomm.containers import Container
    from gocomm.plugins import VendorRegistry

__all__ = [
    "SEND_TASK",
    "GocommTasks",
    "enqueue_rows",
    "make_broker",
    "require_queue",
    "run_workers",
]

#: The name of gocomm's task on the broker.
SEND_TASK = "gocomm.send"

_log = logging.getLogger("gocomm.queue")

#: Wait before re-enqueueing attempt n (from 1) of a failure without ``retry_after``.
_backoff = exponential(1.0, 300.0)


def make_broker(settings: Settings) -> AsyncBroker:
    """The taskiq broker of ``settings.queue`` (``memory`` when there is no queue section)."""
    queue = settings.queue or QueueSettings(broker="memory")
    if queue.broker == "memory":
        return InMemoryBroker()
    url = queue.redis_url(settings.redis)
    if url is None:  # Settings validation refuses this; a hand-made Settings may not
        raise ConfigError("queue: broker redis_stream needs queue.url or the `redis` section")
    return GocommStreamBroker(
        url,
        queue_name=queue.queue_name,
        idle_timeout=queue.idle_timeout,
        prefetch=queue.concurrency,
        max_connections=2 * queue.concurrency + 8,
    )


# --------------------------------------------------------------------------------- tasks


@dataclass(frozen=True, slots=True)
class _Job:
    channel: str
    biz: str
    args: Any
    to: tuple[str, ...]
    key: str
    attempt: int

    @classmethod
    def parse(cls, payload: Any) -> _Job:
        if not isinstance(payload, dict):
            raise PayloadError(f"the task is not an object but a {type(payload).__name__}")
        try:
            channel, biz, to, key = (
                payload["channel"], payload["biz"], payload["to"], payload["key"]
            )  # fmt: skip
            attempt = int(payload.get("attempt", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise PayloadError(f"malformed task: {type(exc).__name__}: {exc}") from None
        if not isinstance(to, list) or not all(isinstance(r, str) for r in to):
            raise PayloadError("malformed task: `to` must be a list of strings")
        args = decode_args(str(channel), payload.get("args"))
        return cls(str(channel), str(biz), args, tuple(to), str(key), attempt)


_VALIDATORS = {"email": validate_email, "sms": validate_phone}

#: taskiq injects the message's context (to acknowledge it) into a parameter with this default.
_CONTEXT: Context = TaskiqDepends()


class GocommTasks:
    """gocomm's ``gocomm.send`` task on a taskiq ``broker``.

    On a worker (taskiq's worker start-up event), the container is built from ``settings``
    (a :class:`Settings`, a mapping, or None: :func:`~gocomm.config.load_settings`) and closed
    at shutdown. The application only calls :meth:`enqueue` (after :meth:`startup`, or inside
    ``async with``). ``idempotency_store``: where the worker keeps its idempotency keys (default:
    Redis on the broker's connections, in memory with the ``memory`` broker).
    """

    def __init__(
        self,
        broker: AsyncBroker,
        *,
        settings: Settings | Mapping[str, Any] | None = None,
        registry: VendorRegistry | None = None,
        idempotency_store: IdempotencyStore | None = None,
    ) -> None:
        self.broker = broker
        self._settings_given = settings
        self._registry = registry
        self._settings: Settings | None = None
        self._container: Container | None = None
        self._senders: dict[str, IdempotentSender[Any]] = {}
        self._store_given = idempotency_store
        self._store: IdempotencyStore | None = None
        self._own_redis: Redis | None = None
        self.dead_letters: DeadLetters | None = None
        self._timers: set[asyncio.Task[None]] = set()

        async def send(payload: dict[str, Any], context: Context = _CONTEXT) -> None:
            await self._run(payload, context)

        self.task = broker.register_task(send, task_name=SEND_TASK, ack_type="manual")
        broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, self._worker_startup)
        broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, self._worker_shutdown)

    # -- settings and lifetime

    @property
    def settings(self) -> Settings:
        """The settings, loaded on first use when none were given."""
        if self._settings is None:
            given = self._settings_given
            if given is None:
                self._settings = load_settings()
            elif isinstance(given, Settings):
                self._settings = given
            else:
                self._settings = Settings.from_mapping(given)
        return self._settings

    @property
    def queue(self) -> QueueSettings:
        return self.settings.queue or QueueSettings(broker="memory")

    async def startup(self) -> None:
        """Start the broker (with the ``memory`` broker, this process is the worker too)."""
        await self.broker.startup()

    async def shutdown(self) -> None:
        """Stop the broker. With the ``memory`` broker the sends in flight finish first;
        its delayed re-enqueues are dropped (nothing of it is durable)."""
        for timer in list(self._timers):
            timer.cancel()
        if self._timers:
            await asyncio.wait(set(self._timers))
        if isinstance(self.broker, InMemoryBroker):
            await self.broker.wait_all()
        await self.broker.shutdown()

    async def __aenter__(self) -> GocommTasks:
        await self.startup()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    def dead_letter_store(self, redis: Redis | None = None) -> DeadLetters:
        """The dead letters of this queue: the stream on ``redis`` (or the broker's Redis)."""
        if redis is None and isinstance(self.broker, GocommStreamBroker):
            from redis.asyncio import Redis

            redis = Redis(connection_pool=self.broker.connection_pool)
        if redis is None:
            return MemoryDeadLetters()
        return RedisDeadLetters(redis, self.queue.dead_letter)

    async def _worker_startup(self, state: TaskiqState) -> None:
        from gocomm.containers import build_container

        if self.broker.is_worker_process:
            _wake_loop_on_signals()
        settings = self.settings
        self._container = build_container(settings, registry=self._registry)
        redis: Redis | None = None
        if isinstance(self.broker, GocommStreamBroker):
            from redis.asyncio import Redis

            redis = Redis(connection_pool=self.broker.connection_pool)
        elif (url := self.queue.redis_url(settings.redis)) and self.queue.broker != "memory":
            from redis.asyncio import Redis

            redis = self._own_redis = Redis.from_url(url)
        if self._store_given is not None:
            self._store = self._store_given
        else:
            self._store = RedisIdempotencyStore(redis) if redis else MemoryIdempotencyStore()
        self.dead_letters = self.dead_letter_store(redis)

    async def _worker_shutdown(self, state: TaskiqState) -> None:
        senders, self._senders = self._senders, {}
        container, self._container = self._container, None
        try:
            for sender in senders.values():
                await sender.aclose()  # waits for pending releases; the stack is borrowed
            if container is not None:
                await container.shutdown_resources()
        finally:
            if self._own_redis is not None:
                await self._own_redis.aclose()
                self._own_redis = None

    # -- the application's side

    def payload(
        self, channel: str, biz: str, args: Any, to: Sequence[str], key: str | None = None
    ) -> dict[str, Any]:
        """The JSON task for one send; raises a :class:`~gocomm.errors.ConfigError` (unknown
        channel, args JSON cannot carry) or :class:`~gocomm.errors.InvalidRecipient`."""
        encoded = encode_args(channel, args)  # names an unknown channel first
        if not to:
            raise PayloadError(f"a {channel} send needs at least one recipient")
        validate = _VALIDATORS[channel]
        recipients = [validate(r) for r in to]
        return {
            "channel": channel,
            "biz": biz,
            "args": encoded,
            "to": recipients,
            "key": key if key is not None else f"gocomm:{uuid.uuid4().hex}",
            "attempt": 0,
        }

    async def enqueue(
        self,
        channel: str,
        biz: str,
        args: Any,
        *to: str,
        idempotency_key: str | None = None,
        delay: float | None = None,
    ) -> str:
        """Put one send on the queue; its task id. Nothing is enqueued when the arguments are
        bad (see :meth:`payload`). ``delay``: seconds before a worker may take it."""
        payload = self.payload(channel, biz, args, to, idempotency_key)
        return await self.kick(payload, delay=delay)

    async def kick(self, payload: Mapping[str, Any], *, delay: float | None = None) -> str:
        """Enqueue a task made by :meth:`payload` (or read back from a dead letter)."""
        kicker = self.task.kicker()
        if delay is not None and delay > 0:
            if not isinstance(self.broker, GocommStreamBroker):
                return self._kick_later(dict(payload), delay)
            kicker = kicker.with_labels(delay=delay)
        sent = await kicker.kiq(dict(payload))
        return sent.task_id

    def _kick_later(self, payload: dict[str, Any], delay: float) -> str:
        """A delay on a broker without one: a timer in this process (not durable)."""
        task_id = uuid.uuid4().hex

        async def later() -> None:
            await asyncio.sleep(delay)
            await self.task.kicker().with_task_id(task_id).kiq(payload)

        timer = asyncio.get_running_loop().create_task(later())
        self._timers.add(timer)
        timer.add_done_callback(self._timers.discard)
        return task_id

    # -- the worker's side

    async def _sender(self, channel: str) -> IdempotentSender[Any]:
        sender = self._senders.get(channel)
        if sender is None:
            if self._container is None or self._store is None:
                raise RuntimeError("the gocomm worker has not started")
            stack = await getattr(self._container, channel).sender()
            sender = IdempotentSender(stack, self._store, lease=self.queue.lease)
            self._senders[channel] = sender
        return sender

    async def _run(self, payload: Any, context: Context) -> None:
        acknowledge = functools.partial(_acknowledge, context)
        try:
            job = _Job.parse(payload)
            sender = await self._sender(job.channel)
            with use_key(job.key):
                # Acknowledged once the success is recorded, in the same round trip as the record.
                await sender.send(job.biz, job.args, *job.to, then=acknowledge)
            return
        except Exception as exc:
            await self._after_failure(payload, exc, context.message.task_id)
        await acknowledge()

    async def _after_failure(self, payload: Any, exc: Exception, task_id: str) -> None:
        """Enqueue again or record a dead letter; an error here leaves the message unacked."""
        try:
            attempt = int(payload.get("attempt", 0)) if isinstance(payload, dict) else 0
        except (TypeError, ValueError):
            attempt = self.queue.max_retries  # a malformed task: no retry, a dead letter
        in_flight = isinstance(exc, DuplicateInFlight)
        retryable = is_retryable(exc) or isinstance(exc, Limited)
        if retryable and (in_flight or attempt < self.queue.max_retries):
            retry_after = getattr(exc, "retry_after", None)
            delay = retry_after if retry_after is not None else _backoff(attempt + 1)
            # Waiting out another holder is not an attempt: nothing was sent.
            again = {**payload, "attempt": attempt if in_flight else attempt + 1}
            _log.warning(
                "queue: %s send failed (%s); enqueued again in %.3gs",
                payload.get("channel"), _describe(exc), delay,
            )  # fmt: skip
            await self.kick(again, delay=delay)
            return
        why = _describe(exc)
        if retryable:
            why = f"gave up after {attempt + 1} attempts: {why}"
        _log.error("queue: dead letter for task %s: %s", task_id, why)
        assert self.dead_letters is not None
        task = payload if isinstance(payload, dict) else {"payload": repr(payload)}
        await self.dead_letters.add(task_id, task, why)
        if _listeners:
            emit(_dead_lettered(task_id, task, attempt + 1, exc))


def _dead_lettered(
    task_id: str, task: Mapping[str, Any], attempts: int, exc: BaseException
) -> TaskDeadLettered:
    to = task.get("to")
    return TaskDeadLettered(
        task_id,
        str(task.get("channel", "")),
        str(task.get("biz", "")),
        len(to) if isinstance(to, list | tuple) else 0,
        attempts,
        type(exc).__name__,
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def _acknowledge(context: Context) -> None:
    if not context.is_ackable:
        return
    try:
        await context.ack()
    except Exception as exc:  # the message is delivered again and replayed: no double send
        _log.warning("queue: could not acknowledge task %s: %s", context.message.task_id, exc)


def _wake_loop_on_signals() -> None:
    """Make taskiq's SIGTERM/SIGINT handlers take effect at once.

    taskiq installs them with ``signal.signal``; the event loop, asleep in ``select`` while
    Redis blocks on a read, only notices the shutdown when it wakes. Poking the loop's
    self-pipe from the handler wakes it now.
    """
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(number: int, frame: Any, previous: Any = previous) -> None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(lambda: None)
            previous(number, frame)

        signal.signal(signum, handler)



# ------------------------------------------------------------------------ the command line


def require_queue(settings: Settings, command: str) -> QueueSettings:
    """The queue section a worker-side command needs: configured, and shared by processes."""
    queue = settings.queue
    if queue is None:
        raise ConfigError(
            f"{command} needs a queue: add a `queue:` section (e.g. `queue: {{broker: "
            "redis_stream}` with a `redis` section), or set GOCOMM_QUEUE__BROKER=redis_stream "
            "and GOCOMM_REDIS__URL"
        )
    if queue.broker == "memory":
        raise ConfigError(
            f"{command} needs a queue that processes share: queue.broker is memory (in one "
            "process only); use broker redis_stream"
        )
    return queue


def run_workers(
    settings: Settings,
    *,
    workers: int = 2,
    registry: VendorRegistry | None = None,
    log_level: int = logging.WARNING,
) -> int:
    """Run ``workers`` taskiq worker processes for ``settings.queue`` until SIGTERM/SIGINT;
    taskiq restarts a child that dies. Blocks; the exit status."""
    from taskiq.cli.common_args import LogLevel
    from taskiq.cli.worker.args import WorkerArgs
    from taskiq.cli.worker.run import run_worker

    queue = require_queue(settings, "gocomm worker")
    broker = make_broker(settings)
    GocommTasks(broker, settings=settings, registry=registry)
    args = WorkerArgs(
        broker=broker,  # type: ignore[arg-type]  # taskiq takes an instance as well as a path
        modules=[],
        tasks_pattern=(),
        workers=workers,
        max_async_tasks=queue.concurrency,
        log_level=LogLevel(log_level),
        configure_logging=False,
    )
    return run_worker(args) or 0


async def enqueue_rows(
    tasks: GocommTasks,
    channel: str,
    rows: Iterable[Row],
    journal: Journal,
    *,
    concurrency: int = 8,
) -> tuple[int, int]:
    """Enqueue every row of a batch not in ``journal``, each under its journal key as the
    idempotency key, and journal it once enqueued; (enqueued, skipped). A rerun enqueues
    nothing twice, and a row enqueued twice (the journal lost) is still sent once."""
    pending = iter(rows)
    counts = [0, 0]

    async def one_at_a_time() -> None:
        for row in pending:
            owed = journal.owed(row)
            if not owed:
                counts[1] += 1
                continue
            key = f"gocomm:batch:{channel}:{row.key}"
            await tasks.enqueue(channel, row.biz, row.args, *owed, idempotency_key=key)
            await journal.arecord(row, owed)
            counts[0] += 1

    committer = asyncio.create_task(journal.commit_loop())
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(one_at_a_time())
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None  # the first failure stops the run; say which
    finally:
        committer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await committer
    return counts[0], counts[1]
