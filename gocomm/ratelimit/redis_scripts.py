"""Running the limiters' Lua scripts on Redis: one atomic script call per decision, with the
calls that wait at the same moment coalesced into one pipelined round trip.

Why not ``redis.evalsha``: redis-py runs every command under the connection's ``Retry``, which
by default sends a timed-out command again; a replayed rate-limit script counts the request
twice. :class:`ScriptRunner` therefore talks to pooled connections directly (``pack_commands``,
``send_packed_command``, ``read_response``), where nothing is ever retried. Connecting may still
be retried by redis-py: no command has been sent then.

Auto-pipelining (ioredis is the model): a call made while no round trip is in flight is sent at
once, so a lone caller waits for exactly one round trip. Calls made while round trips are in
flight queue up, and the next free flight sends the whole queue as one pipeline (``EVALSHA``
each, no ``MULTI``: every script is atomic on its own and the replies come back in order, one
per call). Under load a round trip carries dozens of decisions, which is what makes the Redis
limiters faster than one ``PING`` per decision.

Bounds and faults:

* At most :data:`MAX_FLIGHTS` round trips are in flight per connection pool (a runner's
  ``max_flights``; the queue worker's pool uses 1), never more than the pool holds
  connections, so any number of waiting callers uses at most that many connections and a
  burst of hundreds of tasks queues instead of exhausting the pool.
* Each call has a deadline (the limiter's ``timeout`` from the moment it was made: queueing,
  waiting for a connection, connecting and the round trip all count). Past it the caller gets
  :class:`~gocomm.errors.LimiterError` raised from a ``TimeoutError``. A round trip stops when
  every caller in it has given up; its connection is then dropped, since replies may still be
  on their way.
* ``NOSCRIPT`` (after ``SCRIPT FLUSH``, a restart or a failover): the scripts are loaded with
  ``SCRIPT LOAD`` and only the calls that got ``NOSCRIPT`` are sent again, on the same
  connection, since they did not run. An error reply fails only its own call. A connection
  error fails every call of the round trip that is still open: whether those scripts ran is
  unknown, so none is sent again.
* A caller cancelled before its call is sent is left out of the pipeline; one cancelled later
  simply does not get the reply. Neither disturbs the other calls of the round trip.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from gocomm.errors import LimiterError

__all__ = ["MAX_FLIGHTS", "Script", "ScriptRunner", "runner_for"]

#: Round trips in flight at once per connection pool. Two lets Python read one pipeline's
#: replies while Redis runs the next; more only splits the batches.
MAX_FLIGHTS = 2

#: How many times one round trip loads scripts again after ``NOSCRIPT`` before it gives up
#: (only a ``SCRIPT FLUSH`` between each load and its use can exhaust it).
_MAX_RELOADS = 3

ScriptArg = str | int | float


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script shipped with gocomm, addressed by its SHA-1 for ``EVALSHA``."""

    name: str
    source: str
    sha: str = field(repr=False)

    @classmethod
    def load(cls, filename: str) -> Script:
        """Read ``filename`` from the ``gocomm.ratelimit`` package data."""
        source = resources.files("gocomm.ratelimit").joinpath(filename).read_text("utf-8")
        return cls(filename, source, hashlib.sha1(source.encode()).hexdigest())


class _Call:
    """One script call: what to send, who waits for the reply and until when."""

    __slots__ = ("command", "deadline", "future", "required", "script", "timeout")

    def __init__(
        self,
        script: Script,
        command: tuple[ScriptArg, ...],
        future: asyncio.Future[Any],
        deadline: float,
        timeout: float,
        required: bool,
    ) -> None:
        self.script = script
        self.command = command
        self.future = future
        self.deadline = deadline
        self.timeout = timeout
        # A required call is sent even when nobody waits for it any more (a release).
        self.required = required

    @property
    def wanted(self) -> bool:
        return self.required or not self.future.done()

    def resolve(self, reply: Any) -> None:
        if not self.future.done():
            self.future.set_result(reply)

    def fail(self, cause: BaseException, message: str) -> None:
        if not self.future.done():
            error = LimiterError(f"{message}: {type(cause).__name__}: {cause}")
            error.__cause__ = cause
            self.future.set_exception(error)

    def expire(self) -> None:
        """The deadline passed before a reply came."""
        self.fail(
            TimeoutError(f"no reply within {self.timeout:g}s"),
            f"the Redis limiter got no answer within its timeout of {self.timeout:g}s "
            "(is Redis down or overloaded?)",
        )


def _consume(future: asyncio.Future[Any]) -> None:
    """Done callback of a call nobody awaits: retrieve its outcome so asyncio does not log it."""
    if not future.cancelled():
        future.exception()


class ScriptRunner:
    """Runs script calls on one connection pool, pipelining the calls that wait together.

    Shared by every Redis limiter on the pool (see :func:`runner_for`). It binds to the running
    event loop on first use (building one needs no loop) and rebinds if a new loop appears, as in
    tests that run each case on its own loop.
    """

    def __init__(self, pool: ConnectionPool, *, max_flights: int = MAX_FLIGHTS) -> None:
        # Weak: ``_runners`` maps the pool to this runner, and a runner holding its pool would
        # keep every client that ever had a limiter (and its runner) alive for good.
        self._pool = weakref.ref(pool)
        self._pool_size = getattr(pool, "max_connections", None) or MAX_FLIGHTS
        self.max_flights = max_flights
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: list[_Call] = []
        self._flights = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._generation = 0  # bumped on each rebind, so drains of an old loop count nothing

    def __repr__(self) -> str:
        return f"ScriptRunner(flights={self._flights}, queued={len(self._queue)})"

    @property
    def max_flights(self) -> int:
        """Round trips in flight at once (at least 1, at most the pool's connections)."""
        return self._max_flights

    @max_flights.setter
    def max_flights(self, value: int) -> None:
        self._max_flights = max(1, min(value, self._pool_size))

    async def run(
        self, script: Script, key: str, args: Sequence[ScriptArg], max_wait: float
    ) -> Any:
        """Run ``script`` on ``key`` with ``args``: its reply, or :class:`LimiterError` when
        none comes within ``max_wait`` seconds or Redis fails."""
        call = self._submit(script, key, args, max_wait, required=False)
        loop = self._loop
        assert loop is not None  # bound by _submit
        timer = loop.call_at(call.deadline, call.expire)
        try:
            return await call.future
        finally:
            timer.cancel()

    def submit_detached(
        self, script: Script, key: str, args: Sequence[ScriptArg], max_wait: float
    ) -> asyncio.Future[Any]:
        """Send a call that must go out even if nobody waits for it (giving a slot back).

        Its future fails with :class:`LimiterError` past ``max_wait``; an outcome nobody awaits
        is consumed quietly.
        """
        call = self._submit(script, key, args, max_wait, required=True)
        assert self._loop is not None
        timer = self._loop.call_at(call.deadline, call.expire)
        call.future.add_done_callback(lambda _: timer.cancel())
        call.future.add_done_callback(_consume)
        return call.future

    def _submit(
        self,
        script: Script,
        key: str,
        args: Sequence[ScriptArg],
        timeout: float,
        *,
        required: bool,
    ) -> _Call:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        call = _Call(
            script,
            ("EVALSHA", script.sha, 1, key, *args),
            loop.create_future(),
            loop.time() + timeout,
            timeout,
            required,
        )
        self._queue.append(call)
        if self._flights < self._max_flights:
            # Idle (or a flight free): send now rather than wait for the flight in the air.
            self._flights += 1
            task = loop.create_task(self._drain(self._generation))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return call

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        # Whatever belonged to an earlier loop cannot run any more: start afresh.
        self._loop = loop
        self._queue = []
        self._flights = 0
        self._tasks = set()
        self._generation += 1

    async def _drain(self, generation: int) -> None:
        """Send what is queued, one pipeline per round trip, until the queue is empty."""
        try:
            while self._queue and generation == self._generation:
                batch, self._queue = self._queue, []
                wanted = [call for call in batch if call.wanted]
                if wanted:
                    await self._fly(wanted)
        finally:
            if generation == self._generation:
                self._flights -= 1

    async def _fly(self, batch: list[_Call]) -> None:
        """One round trip (two after ``NOSCRIPT``) for ``batch``, bounded by its deadlines."""
        pool = self._pool()
        try:
            if pool is None:  # only a release nobody awaits can outlive its client
                raise RuntimeError("the Redis client of this limiter was garbage-collected")
            async with asyncio.timeout_at(max(call.deadline for call in batch)):
                connection = await pool.get_connection()  # type: ignore[no-untyped-call]
                try:
                    await _reconnect_if_closed(connection)
                    await self._exchange(connection, batch)
                except BaseException:
                    # Replies may still be on their way: the connection is out of step.
                    await connection.disconnect(nowait=True)
                    raise
                finally:
                    await pool.release(connection)
        except TimeoutError:
            for call in batch:
                call.expire()
        except Exception as exc:
            for call in batch:
                call.fail(exc, "the Redis limiter could not reach Redis")
        except BaseException as exc:  # cancelled: the loop is shutting down
            for call in batch:
                call.fail(exc, "the Redis limiter was stopped")
            raise

    async def _exchange(self, connection: AbstractConnection, batch: list[_Call]) -> None:
        pending = batch
        loads: list[Script] = []
        for _ in range(_MAX_RELOADS + 1):
            commands: list[tuple[ScriptArg, ...]] = [("SCRIPT", "LOAD", s.source) for s in loads]
            commands.extend(call.command for call in pending)
            await connection.send_packed_command(
                connection.pack_commands(commands), check_health=False
            )
            # The round trip's deadline bounds each read: no socket timeout per reply.
            for _script in loads:
                await connection.read_response(timeout=math.inf)
            missing: list[_Call] = []
            for call in pending:
                try:
                    reply = await connection.read_response(timeout=math.inf)
                except NoScriptError:
                    missing.append(call)  # the script did not run: safe to send again
                except ResponseError as exc:
                    call.fail(exc, f"Redis refused the limiter script {call.script.name}")
                else:
                    call.resolve(reply)
            pending = [call for call in missing if call.wanted]
            if not pending:
                return
            loads = list({call.script.sha: call.script for call in pending}.values())
        for call in pending:
            call.fail(
                RuntimeError("the script cache was flushed again after every load"),
                "the Redis limiter could not keep its scripts loaded",
            )


async def _reconnect_if_closed(connection: AbstractConnection) -> None:
    """Open ``connection`` afresh if the server closed it while it sat in the pool.

    redis-py 8 skips this check of its own when maintenance notifications are on (the default
    with RESP3), so a connection that Redis (its ``timeout``), a proxy or ``CLIENT KILL`` closed
    while idle would fail every decision sent on it, and those cannot be sent again. Nothing
    has been sent yet here, so reconnecting is safe.
    """
    # can_read() is redis-py 8's name for what older versions call can_read_destructive().
    has_data = getattr(connection, "can_read", None) or connection.can_read_destructive
    try:
        closed = bool(await has_data())
    except (RedisConnectionError, OSError):
        closed = True
    if closed:
        await connection.disconnect(nowait=True)
        await connection.connect()  # type: ignore[no-untyped-call]


_runners: weakref.WeakKeyDictionary[ConnectionPool, ScriptRunner] = weakref.WeakKeyDictionary()


def runner_for(redis: Redis, *, max_flights: int | None = None) -> ScriptRunner:
    """The :class:`ScriptRunner` of ``redis``'s connection pool (one per pool); ``max_flights``,
    when given, becomes its :attr:`~ScriptRunner.max_flights`."""
    pool = redis.connection_pool
    runner = _runners.get(pool)
    if runner is None:
        runner = _runners[pool] = ScriptRunner(pool)
    if max_flights is not None:
        runner.max_flights = max_flights
    return runner
