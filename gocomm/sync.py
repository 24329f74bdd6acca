"""A blocking facade over the async API, for Django, Flask and Celery code.

:class:`SyncClient` runs one event loop on one background thread for its whole lifetime: the
container's vendors (and their connection pools), limiters and timers live on that loop, so
they are reused across calls instead of being rebuilt by an ``asyncio.run`` per send. Any
number of threads may call :meth:`SyncClient.send` at once; each call is a coroutine scheduled on
the loop thread, and the calling thread blocks until it finishes.

After ``fork()`` (gunicorn, Celery prefork) the child has no loop thread: a client built from
settings builds a new loop and a new container in the child on first use, and never touches the
parent's connections. A client given a ``container`` cannot do that (the container's resources
belong to the parent) and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from gocomm.channels import CHANNELS
from gocomm.sender import Receipt, Sender

if TYPE_CHECKING:
    from gocomm.config import Settings
    from gocomm.containers import Container
    from gocomm.idempotency import IdempotencyStore, IdempotentSender

__all__ = ["SyncClient"]

#: How long close() waits for the container's resources to close.
_CLOSE_TIMEOUT = 30.0


class _Call:
    """One blocking send: what to send, and where the loop thread puts its outcome.

    ``done`` is a lock taken at creation and released when the outcome is set: the cheapest way
    to wake one waiting thread in CPython. ``next`` is the call finished after this one, whose
    caller this call's caller wakes in turn (see :meth:`_LoopThread.wake`).
    """

    __slots__ = (
        "abandoned", "args", "biz", "channel", "done", "error", "handed", "key", "limit", "next",
        "result", "task", "to",
    )  # fmt: skip

    def __init__(
        self,
        channel: str,
        biz: str,
        args: Any,
        to: tuple[str, ...],
        limit: float | None,
        key: str | None = None,
    ) -> None:
        self.channel = channel
        self.biz = biz
        self.args = args
        self.to = to
        self.limit = limit
        self.key = key
        self.result: Receipt | None = None
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None
        self.next: _Call | None = None
        self.handed = False  # its caller was woken (``done`` released)
        self.abandoned = False  # its caller stopped waiting (interrupted): skip it
        self.done = threading.Lock()
        self.done.acquire()


class _LoopThread:
    """One event loop running on one daemon thread, with the container it serves.

    Calls from other threads are queued and the loop is woken once per batch (not once per
    call): under many threads, one wake-up starts every queued send. The way back is batched
    too: the sends finished in one loop iteration are chained, the loop thread wakes the first
    caller only, and each woken caller wakes the next. Waking them all at once would have every
    one of them queue for the GIL the loop thread holds, each sleeping twice per send; in a
    chain each is woken while the one before is about to block again.
    """

    def __init__(self, container: Container) -> None:
        self.container = container
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.senders: dict[str, Sender[Any]] = {}
        self.idempotent: dict[str, IdempotentSender[Any]] = {}
        self._resolving: asyncio.Lock | None = None
        self._mutex = threading.Lock()
        self._queued: list[_Call] = []
        self._wake_pending = False
        self._stopping = False
        #: The calls whose Task has not finished, which close() waits for.
        self._running: set[_Call] = set()
        self._finished: list[_Call] = []
        #: Orders waking a caller against that caller giving up (see ``wake``/``collect``).
        self._relay = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="gocomm-sync-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    # -- any thread ------------------------------------------------------------------------------

    def submit(self, call: _Call) -> None:
        with self._mutex:
            if self._stopping:
                raise RuntimeError(
                    "this SyncClient is closed; build a new SyncClient to send again"
                )
            self._queued.append(call)
            if self._wake_pending:
                return
            self._wake_pending = True
        self.loop.call_soon_threadsafe(self._start_queued)

    def wake(self, call: _Call | None) -> None:
        """Wake the caller of ``call``, or of the first call after it whose caller still waits."""
        while call is not None:
            with self._relay:
                if not call.abandoned:
                    call.handed = True
                    call.done.release()
                    return
            call = call.next

    def collect(self, call: _Call) -> None:
        """In the caller, when its wait on ``call.done`` ended: pass the wake-up on to the next
        finished call; or, interrupted before its own wake-up, make later wake-ups skip it and
        cancel the send."""
        if not call.handed:
            with self._relay:
                call.abandoned = not call.handed
            if call.abandoned:
                self.cancel(call)
                return
        self.wake(call.next)

    def cancel(self, call: _Call) -> None:
        def cancel() -> None:
            if call.task is not None:
                call.task.cancel()
                # Cancelled before its first step, ``_send`` never runs its ``finally``.
                call.task.add_done_callback(lambda _: self._running.discard(call))

        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self.loop.call_soon_threadsafe(cancel)

    # -- the loop thread -------------------------------------------------------------------------

    def _start_queued(self) -> None:
        with self._mutex:
            calls, self._queued = self._queued, []
            self._wake_pending = False
        loop, running = self.loop, self._running
        for call in calls:
            # A Task per send (not one eager step without a Task): the stack relies on
            # current_task() (asyncio.timeout in failover, limiter leases) from the first step,
            # and a keyed send sets its idempotency key in its own Task's context.
            call.task = asyncio.Task(self._send(call), loop=loop)
            running.add(call)

    async def _send(self, call: _Call) -> None:
        try:
            sender = self.senders.get(call.channel)
            if sender is None:
                sender = await self._resolve(call.channel)
            if call.key is not None:
                from gocomm.idempotency import idempotency_key

                idempotency_key.set(call.key)  # this task's own context: for this send only
                keyed = self.idempotent.get(call.channel)
                sender = keyed or await self._resolve_idempotent(call.channel, sender)
            if call.limit is None:
                call.result = await sender.send(call.biz, call.args, *call.to)
            else:
                async with asyncio.timeout(call.limit):
                    call.result = await sender.send(call.biz, call.args, *call.to)
        except Exception as exc:
            call.error = exc
        except BaseException as exc:  # cancelled (close, or the caller interrupted): tell it
            call.error = exc
            raise
        finally:
            running = self._running
            running.discard(call)
            self._finished.append(call)
            if not running:  # nothing else in flight: no reason to wait for the iteration's end
                self._wake_finished()
            elif len(self._finished) == 1:
                self.loop.call_soon(self._wake_finished)

    def _wake_finished(self) -> None:
        calls, self._finished = self._finished, []
        if not calls:
            return
        for before, after in itertools.pairwise(calls):
            before.next = after
        self.wake(calls[0])

    async def _resolve_idempotent(self, channel: str, stack: Sender[Any]) -> Sender[Any]:
        # One IdempotentSender around the channel's stack, outside it as on the queue's
        # workers: each keyed send makes one claim on the container's shared store.
        from gocomm.idempotency import IdempotentSender

        assert self._resolving is not None  # made by the _resolve that gave ``stack``
        async with self._resolving:
            sender = self.idempotent.get(channel)
            if sender is None:
                # An async Resource: awaitable, whatever dependency-injector's stubs say.
                store: IdempotencyStore = await self.container.idempotency_store()  # type: ignore[misc]
                queue = self.container.settings().queue
                if queue is None:
                    sender = IdempotentSender(stack, store)
                else:  # the hold on a key that the queue's workers take
                    sender = IdempotentSender(stack, store, lease=queue.lease)
                self.idempotent[channel] = sender
            return sender

    async def _resolve(self, channel: str) -> Sender[Any]:
        # One resolve per channel even when many threads' first sends arrive together.
        if self._resolving is None:
            self._resolving = asyncio.Lock()
        async with self._resolving:
            sender = self.senders.get(channel)
            if sender is None:
                stack = getattr(self.container, channel)
                sender = await stack.sender()
                self.senders[channel] = sender
            return sender

    async def _shutdown(self) -> None:
        # Sends already started finish (each is bounded by its vendor's timeouts); then every
        # vendor, timer and connection of the container is closed.
        with self._mutex:
            self._stopping = True
        self._start_queued()
        tasks = [call.task for call in self._running if call.task is not None]
        if tasks:
            await asyncio.wait(tasks)
        for sender in self.idempotent.values():
            await sender.aclose()  # its pending releases; the stack it wraps owns nothing shared
        await self.container.shutdown_resources()

    def stop(self) -> None:
        """Finish the sends in flight, close the container's resources, stop the thread."""
        if threading.current_thread() is self.thread:
            # Garbage collected on the loop thread itself: it cannot wait for itself.
            self.loop.call_soon(self.loop.stop)
            return
        try:
            if self.thread.is_alive():
                future = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
                future.result(_CLOSE_TIMEOUT)
        finally:
            if self.thread.is_alive():
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join(_CLOSE_TIMEOUT)
            if not self.thread.is_alive():
                self.loop.close()


class SyncClient:
    """Send through the container's stacks from synchronous code.

    ``settings`` is what :func:`~gocomm.containers.build_container` takes (a ``Settings``, a
    mapping, or None for :func:`~gocomm.config.load_settings`); ``container`` an already built
    container instead (its resources are then opened on this client's loop and closed by
    :meth:`close`). A bad configuration raises :class:`~gocomm.errors.ConfigError` here, not at
    the first send.

    ``send`` raises the same gocomm errors as the async API, with their tracebacks;
    ``timeout`` (seconds) bounds a send as an ``asyncio.timeout`` would, raising ``TimeoutError``.
    Calling it from a thread that runs an event loop raises ``RuntimeError``: await the async
    API there instead, or the loop would block on itself.
    """

    def __init__(
        self,
        settings: Settings | Mapping[str, Any] | None = None,
        *,
        container: Container | None = None,
    ) -> None:
        from gocomm.containers import build_container

        if container is not None and settings is not None:
            raise TypeError("give SyncClient settings or a container, not both")
        self._settings = settings
        self._given_container = container is not None
        self._container = container if container is not None else build_container(settings)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._closed = False
        self._runner: _LoopThread | None = None
        # The finalizer holds the runners, not the client: a client dropped without close()
        # still closes its resources and stops its thread.
        self._runners: list[_LoopThread] = []
        weakref.finalize(self, _stop_runners, self._runners)
        _CLIENTS.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SyncClient {state}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def _loop_thread(self) -> _LoopThread:
        with self._lock:
            if self._closed:
                raise RuntimeError(
                    "this SyncClient is closed; build a new SyncClient to send again"
                )
            if self._pid != os.getpid():
                self._after_fork()
            if self._runner is None:
                self._runner = _LoopThread(self._container)
                self._runners.append(self._runner)
            return self._runner

    def _after_fork(self) -> None:
        # The parent's loop thread does not exist here and its connections are the parent's:
        # drop them unclosed and start afresh from the same settings.
        if self._given_container:
            raise RuntimeError(
                "this SyncClient was built from a container in another process (before a "
                "fork); build the client in each process, from settings, after the fork"
            )
        from gocomm.containers import build_container

        self._runners.clear()
        self._runner = None
        self._container = build_container(self._settings)
        self._pid = os.getpid()

    def send(
        self,
        channel: str,
        biz: str,
        args: Any,
        *to: str,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Receipt | None:
        """Send ``args`` for ``biz`` to ``to`` through ``channel``'s stack; block until done.

        With ``idempotency_key``, the send goes through an
        :class:`~gocomm.idempotency.IdempotentSender` on the container's Redis store
        (``container.idempotency_store``): a recipient already sent under the key is not sent
        again (the stored receipt comes back with ``replayed=True``), a send still in flight
        under it raises :class:`~gocomm.errors.DuplicateInFlight`, and the key reused for
        another ``biz``/``args`` raises :class:`~gocomm.errors.IdempotencyConflict`. Without a
        ``redis`` section that store does not exist: :class:`~gocomm.errors.ConfigError`.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "SyncClient.send() was called from a thread running an event loop, which it "
                "would block; await the async API (the container's sender) instead"
            )
        if channel not in CHANNELS:
            raise ValueError(
                f"unknown channel {channel!r}; use one of: {', '.join(sorted(CHANNELS))}"
            )
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str) or not idempotency_key
        ):
            raise ValueError(
                f"idempotency_key must be a non-empty string, not {idempotency_key!r}; give "
                "the key that identifies this message (an order id, a task id), or None"
            )
        if idempotency_key is not None:
            # The key's bookkeeping is per recipient: normalised first (one number, one entry,
            # however it is written), and a bad one refused before anything is recorded.
            from gocomm.recipients import validate_recipients

            to = validate_recipients(channel, args, to)
        runner = self._runner  # None before the first send, after close() and after a fork
        if runner is None:
            runner = self._loop_thread()
        call = _Call(channel, biz, args, to, timeout, idempotency_key)
        runner.submit(call)
        try:
            call.done.acquire()
        finally:
            # Also when interrupted (KeyboardInterrupt): the send is then cancelled, not left
            # running unowned, and the callers after this one are still woken.
            runner.collect(call)
        if call.error is None:
            return call.result
        if isinstance(call.error, asyncio.CancelledError):
            raise RuntimeError("the send was cancelled: its SyncClient was closed") from None
        raise call.error

    def close(self) -> None:
        """Close every vendor, timer and connection, and stop the loop thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            runner, self._runner = self._runner, None
            if self._pid != os.getpid():
                return  # the parent's resources are the parent's to close
        if runner is not None:
            self._runners.remove(runner)
            runner.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _stop_runners(runners: list[_LoopThread]) -> None:
    for runner in runners:
        if runner.pid == os.getpid():  # a forked child's copy belongs to the parent
            runner.stop()
    runners.clear()


#: Every live client, so that a forked child can give each a fresh lock (one held by another
#: thread at the fork would never be released in the child).
_CLIENTS: weakref.WeakSet[SyncClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_CLIENTS):
        client._lock = threading.Lock()
        # The parent's loop thread does not exist here: the next send takes the slow path,
        # which sees the new pid (so a send checks no pid, a system call, each time).
        client._runner = None


os.register_at_fork(after_in_child=_after_fork_in_child)
