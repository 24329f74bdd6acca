"""A pool of SMTP connections, after Nodemailer's pooled transport (aiosmtplib has none).

The pool has ``size`` slots; a send leases one slot for the whole SMTP transaction, so at most
``size`` sends run at once and at most ``size`` connections are ever open. A slot keeps its
connection between leases so that later sends reuse it. A connection is replaced:

- after ``max_messages`` messages (QUIT, then a new one on the next lease),
- after ``idle_timeout`` seconds unused (a reaper task closes it, politely, with QUIT),
- when the server dropped it or answered 421 (the vendor retires it; see :class:`Lease`),
- after ``max_refusals`` transactions in which the server refused something (a recipient, the
  sender, the data): servers slow such a client down (Postfix's ``smtpd_soft_error_limit``
  answers one command every few seconds from then on) and then hang up on it.

Free slots are handed straight to the oldest waiter, so a burst of sends is served in order and
nobody starves. Slots are reused most-recently-released first, so under light load the extra
connections go idle and are reaped instead of being kept warm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiosmtplib

from gocomm.errors import PermanentError
from gocomm.sender import AsyncCloseable

__all__ = ["Lease", "PooledConnection", "SmtpPool"]

#: How long a polite QUIT may take before the connection is simply closed.
QUIT_TIMEOUT = 5.0


@dataclass(eq=False, slots=True)
class PooledConnection:
    """An open aiosmtplib connection and its pool bookkeeping."""

    smtp: aiosmtplib.SMTP
    last_used: float
    messages: int = 0
    #: Transactions on this connection in which the server refused a command.
    refusals: int = 0
    #: Whether the current lease found this connection in the pool rather than opening it:
    #: then it may have died while idle without the client noticing yet.
    reused: bool = False


class _Slot:
    """One of the pool's ``size`` places for a connection."""

    __slots__ = ("conn",)

    def __init__(self) -> None:
        self.conn: PooledConnection | None = None


class Lease:
    """A slot held for one send; the vendor uses it to get, count or retire the connection."""

    __slots__ = ("_pool", "_slot")

    def __init__(self, pool: SmtpPool, slot: _Slot) -> None:
        self._pool = pool
        self._slot = slot

    async def connection(self) -> PooledConnection:
        """The slot's connection if it is still usable, else a new one."""
        return await self._pool._usable(self._slot)

    def done(self) -> bool:
        """Count a message sent; True when the connection reached ``max_messages``."""
        conn = self._slot.conn
        if conn is None:
            return False
        conn.messages += 1
        conn.last_used = self._pool._clock()
        return conn.messages >= self._pool.max_messages

    def refused(self) -> bool:
        """Count a transaction the server refused part of; True when it reached ``max_refusals``."""
        conn = self._slot.conn
        if conn is None:
            return False
        conn.refusals += 1
        return conn.refusals >= self._pool.max_refusals

    async def retire(self) -> None:
        """Close the connection politely (QUIT); the next lease of this slot opens a new one."""
        conn, self._slot.conn = self._slot.conn, None
        if conn is not None:
            await self._pool._quit(conn)

    def discard(self) -> None:
        """Drop the connection at once, for a session in an unknown state (no QUIT)."""
        conn, self._slot.conn = self._slot.conn, None
        if conn is not None:
            conn.smtp.close()


class SmtpPool(AsyncCloseable):
    """Bounded, reusing pool of connections made by ``connect``.

    ``connect`` opens a ready connection (greeted, TLS up, logged in); it is called inside a
    lease, so it never opens more than ``size`` connections.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[aiosmtplib.SMTP]],
        *,
        size: int,
        idle_timeout: float,
        max_messages: int,
        max_refusals: int = 5,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        if size < 1 or max_messages < 1 or max_refusals < 1 or idle_timeout <= 0:
            raise ValueError(
                "size, max_messages and max_refusals must be >= 1 and idle_timeout > 0"
            )
        self.size = size
        self.idle_timeout = idle_timeout
        self.max_messages = max_messages
        self.max_refusals = max_refusals
        self._connect = connect
        self._clock = clock
        self._log = logger or logging.getLogger("gocomm.smtp")
        self._slots = [_Slot() for _ in range(size)]
        self._free: list[_Slot] = list(self._slots)  # a stack: last released first
        self._waiters: deque[asyncio.Future[_Slot]] = deque()
        self._reaper: asyncio.Task[None] | None = None
        #: Connections opened so far (for statistics and tests).
        self.opened = 0

    @property
    def connections(self) -> tuple[PooledConnection, ...]:
        """The connections open now, idle or in use."""
        return tuple(s.conn for s in self._slots if s.conn is not None and s.conn.smtp.is_connected)

    @property
    def open_connections(self) -> int:
        """How many connections are open now (idle or in use)."""
        return len(self.connections)

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[Lease]:
        """Hold a slot for one SMTP transaction; waits while all ``size`` slots are busy."""
        slot = await self._acquire()
        try:
            yield Lease(self, slot)
        finally:
            if self.closed and slot.conn is not None:
                # aclose() ran while this send was in flight: leave nothing open.
                slot.conn.smtp.close()
                slot.conn = None
            self._release(slot)

    async def _acquire(self) -> _Slot:
        if self.closed:
            raise PermanentError("smtp: the sender is closed; build a new one", vendor="smtp")
        if self._free and not self._waiters:
            slot = self._free.pop()
        else:
            waiter: asyncio.Future[_Slot] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                slot = await waiter
            except BaseException:
                # Cancelled after the slot was handed over: pass it on, never lose it.
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    self._release(waiter.result())
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        return slot

    def _release(self, slot: _Slot) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(slot)
                return
        self._free.append(slot)
        if slot.conn is not None and not self.closed:
            self._start_reaper()

    async def _usable(self, slot: _Slot) -> PooledConnection:
        conn = slot.conn
        if conn is not None:
            if not conn.smtp.is_connected:
                slot.conn = None  # the server closed it while idle; aiosmtplib noticed
                conn.smtp.close()
            elif self._clock() - conn.last_used >= self.idle_timeout:
                slot.conn = None
                await self._quit(conn)
            else:
                conn.reused = True
                return conn
        smtp = await self._connect()
        self.opened += 1
        slot.conn = PooledConnection(smtp, last_used=self._clock())
        return slot.conn

    async def _quit(self, conn: PooledConnection) -> None:
        try:
            await conn.smtp.quit(timeout=min(QUIT_TIMEOUT, conn.smtp.timeout or QUIT_TIMEOUT))
        except Exception as exc:  # the connection is going away anyway
            self._log.debug("smtp: QUIT failed, closing the connection: %s", exc)
        finally:
            conn.smtp.close()

    # Idle connections --------------------------------------------------------------------

    def _start_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(
                self._reap(), name="gocomm-smtp-pool-reaper"
            )

    def _idle(self) -> list[_Slot]:
        return [s for s in self._free if s.conn is not None]

    async def _reap(self) -> None:
        """Close connections idle for ``idle_timeout``; ends when the pool holds none.

        It keeps running while connections are only in use: a busy pool whose slots are
        taken again as soon as they are released would otherwise start (and end) a reaper
        task for most sends.
        """
        while not self.closed and any(s.conn is not None for s in self._slots):
            idle = self._idle()
            # With nothing idle, a connection in use now is due idle_timeout after its
            # release at the earliest: look again then.
            first_due = min(
                (s.conn.last_used for s in idle if s.conn is not None), default=self._clock()
            )
            await asyncio.sleep(max(0.0, first_due + self.idle_timeout - self._clock()))
            now = self._clock()
            due = [
                s
                for s in self._idle()
                if s.conn is not None and now - s.conn.last_used >= self.idle_timeout
            ]
            # Take the due slots out of the free list while they close, so the bound holds.
            for slot in due:
                self._free.remove(slot)
            try:
                await asyncio.gather(*(self._quit_slot(s) for s in due))
            finally:
                for slot in due:
                    self._release(slot)

    async def _quit_slot(self, slot: _Slot) -> None:
        conn, slot.conn = slot.conn, None
        if conn is not None:
            await self._quit(conn)

    async def _aclose(self) -> None:
        reaper, self._reaper = self._reaper, None
        if reaper is not None:
            reaper.cancel()
            await asyncio.wait([reaper])  # returns once it ended; our own cancel still raises
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(
                    PermanentError("smtp: the sender was closed while waiting", vendor="smtp")
                )
        self._waiters.clear()
        idle = [s for s in self._free if s.conn is not None]
        await asyncio.gather(*(self._quit_slot(s) for s in idle))
        for slot in self._slots:
            if slot.conn is not None:  # in flight: close now, the send fails
                slot.conn.smtp.close()
                slot.conn = None
