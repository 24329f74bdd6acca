"""Idempotency keys: a send repeated under the same key reaches each recipient once.

::

    sender = IdempotentSender(stack, RedisIdempotencyStore(redis))
    with use_key("order-42"):
        await sender.send("shipped", {"order": "42"}, "+8613800000000")   # sends
        await sender.send("shipped", {"order": "42"}, "+8613800000000")   # replayed=True

The key is ``key(biz, args, to)`` when the sender has a key function, else the current value of
:data:`idempotency_key` (set with :func:`use_key`); without a key a send passes through.

Bookkeeping is per recipient. A send first claims the recipients not yet sent under the key,
each with a lease, then sends to those only; on success they are marked sent with the receipt,
on failure those the error's ``unsent`` still names are released (the others were reached and
are marked sent). So a retry after a partial send goes only to those still owed, and a second
send while the first is in flight raises :class:`~gocomm.errors.DuplicateInFlight`. The lease is
renewed while the send runs; a holder that dies stops renewing and the recipients it held are
free again when the lease ends (then at-least-once: its vendor call may have gone out).

Round trips: the Redis store's decisions go through the Redis limiters' script runner, so the
decisions of concurrent sends made at the same moment share one pipelined round trip, and a
``then`` given to :meth:`IdempotentSender.send` (a queue worker's acknowledgement) that makes
its own script call rides in the same round trip as the success it follows, after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from gocomm.errors import (
    CommError,
    DuplicateInFlight,
    IdempotencyConflict,
    LimiterError,
    unsent_of,
)
from gocomm.payload import fingerprint
from gocomm.ratelimit.redis_scripts import Script, runner_for
from gocomm.sender import AsyncCloseable, Receipt, Sender, aclose_all, vendor_name

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "Claim",
    "IdempotencyStore",
    "IdempotentSender",
    "MemoryIdempotencyStore",
    "RedisIdempotencyStore",
    "idempotency_key",
    "use_key",
]

T = TypeVar("T")

#: What :meth:`IdempotentSender.send` awaits once a success is recorded (an acknowledgement).
Then = Callable[[], Awaitable[object]]

#: The idempotency key of the sends made in the current context (None: no key).
idempotency_key: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "gocomm_idempotency_key", default=None
)


@contextlib.contextmanager
def use_key(key: str | None) -> Iterator[None]:
    """Send under idempotency key ``key`` inside the block (None: no key)."""
    token = idempotency_key.set(key)
    try:
        yield
    finally:
        idempotency_key.reset(token)


# --------------------------------------------------------------------------------- stores


@dataclass(frozen=True, slots=True)
class Claim:
    """A store's decision on a send under a key.

    ``ok``: ``claimed`` are now held by this send, ``done`` maps each recipient already sent to
    its stored receipt (JSON). ``busy``: another send holds some of the recipients; nothing was
    claimed; ``retry_after`` is when the first of its holds ends. ``conflict``: the key was
    first used for another message; nothing was claimed.
    """

    status: Literal["ok", "busy", "conflict"]
    claimed: tuple[str, ...] = ()
    done: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None


class IdempotencyStore(Protocol):
    """Where the state of each key lives; every decision is atomic."""

    async def claim(
        self, key: str, fingerprint: str, to: Sequence[str], token: str, lease: float, ttl: float
    ) -> Claim:
        """Claim the recipients of ``to`` not sent yet under ``key`` for ``token``."""
        ...

    async def settle(
        self, key: str, token: str, sent: Sequence[str], receipt: str, release: Sequence[str],
        ttl: float, then: Then | None = None,
    ) -> None:  # fmt: skip
        """Mark ``sent`` as sent with ``receipt``; release ``token``'s hold on ``release``;
        then await ``then()`` (its errors propagate), never before the record is sent."""
        ...

    async def renew(
        self, key: str, token: str, to: Sequence[str], lease: float, ttl: float
    ) -> None:
        """Extend ``token``'s hold on ``to`` by ``lease`` seconds from now."""
        ...


class _KeyState:
    __slots__ = ("done", "expires", "fingerprint", "holds")

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.done: dict[str, str] = {}
        self.holds: dict[str, tuple[str, float]] = {}  # recipient -> (token, lease end)
        self.expires = 0.0


class MemoryIdempotencyStore:
    """Keys in this process's memory: for one process, tests and the ``memory`` broker.

    Each key is forgotten ``ttl`` seconds after its last change; expired keys are swept in
    amortised time, so memory stays bounded. ``clock`` (seconds) is injectable for tests.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._keys: dict[str, _KeyState] = {}
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._keys)

    def _state(self, key: str, now: float) -> _KeyState | None:
        if now >= self._next_sweep:
            self._keys = {k: s for k, s in self._keys.items() if s.expires > now}
            self._next_sweep = now + 1.0
        state = self._keys.get(key)
        if state is not None and state.expires <= now:
            del self._keys[key]
            return None
        return state

    async def claim(
        self, key: str, fingerprint: str, to: Sequence[str], token: str, lease: float, ttl: float
    ) -> Claim:
        now = self._clock()
        state = self._state(key, now)
        if state is None:
            state = self._keys[key] = _KeyState(fingerprint)
        elif state.fingerprint != fingerprint:
            return Claim("conflict")
        state.expires = now + ttl
        done = {r: state.done[r] for r in to if r in state.done}
        busy = [
            hold[1] - now
            for r in to
            if r not in done
            and (hold := state.holds.get(r)) is not None
            and hold[0] != token
            and hold[1] > now
        ]
        if busy:
            return Claim("busy", retry_after=min(busy))
        claimed = tuple(r for r in dict.fromkeys(to) if r not in done)
        for r in claimed:
            state.holds[r] = (token, now + lease)
        return Claim("ok", claimed, done)

    async def settle(
        self, key: str, token: str, sent: Sequence[str], receipt: str, release: Sequence[str],
        ttl: float, then: Then | None = None,
    ) -> None:  # fmt: skip
        now = self._clock()
        state = self._state(key, now)
        if state is not None:  # else expired meanwhile: nothing left to record against
            for r in sent:
                state.done[r] = receipt
                state.holds.pop(r, None)
            for r in release:
                if (hold := state.holds.get(r)) and hold[0] == token:
                    del state.holds[r]
            state.expires = now + ttl
        if then is not None:
            await then()

    async def renew(
        self, key: str, token: str, to: Sequence[str], lease: float, ttl: float
    ) -> None:
        now = self._clock()
        state = self._state(key, now)
        if state is None:
            return
        for r in to:
            if (hold := state.holds.get(r)) and hold[0] == token:
                state.holds[r] = (token, now + lease)
        state.expires = max(state.expires, now + ttl)


# Each key is one hash: "fp" the message's fingerprint, "d:<to>" the receipt (JSON) of a
# recipient sent, "h:<to>" "<token> <lease end, ms of Redis time>" of a recipient held.
# Every script is idempotent for its token, so sending one again (a settle retried through a
# brief outage) decides the same thing.
_CLAIM = """
local key = KEYS[1]
local fp, token = ARGV[1], ARGV[2]
local lease, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stored = redis.call('HGET', key, 'fp')
if stored and stored ~= fp then return {'conflict'} end
local done, owed, wait = {}, {}, nil
for i = 5, #ARGV do
  local r = ARGV[i]
  local receipt = redis.call('HGET', key, 'd:' .. r)
  if receipt then
    done[#done + 1] = r
    done[#done + 1] = receipt
  else
    local hold = redis.call('HGET', key, 'h:' .. r)
    if hold then
      local holder, ends = string.match(hold, '^(%S+) (%d+)$')
      ends = tonumber(ends)
      if holder ~= token and ends > now then
        if wait == nil or ends - now < wait then wait = ends - now end
      end
    end
    owed[#owed + 1] = r
  end
end
if wait ~= nil then
  if not stored then redis.call('HSET', key, 'fp', fp) end
  redis.call('PEXPIRE', key, ttl)
  return {'busy', wait}
end
redis.call('HSET', key, 'fp', fp)
for _, r in ipairs(owed) do
  redis.call('HSET', key, 'h:' .. r, token .. ' ' .. (now + lease))
end
redis.call('PEXPIRE', key, ttl)
return {'ok', done}
"""

_SETTLE = """
local key = KEYS[1]
local token, receipt, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local nsent = tonumber(ARGV[4])
for i = 5, 4 + nsent do
  redis.call('HSET', key, 'd:' .. ARGV[i], receipt)
  redis.call('HDEL', key, 'h:' .. ARGV[i])
end
for i = 5 + nsent, #ARGV do
  local hold = redis.call('HGET', key, 'h:' .. ARGV[i])
  if hold and string.match(hold, '^(%S+) ') == token then
    redis.call('HDEL', key, 'h:' .. ARGV[i])
  end
end
if redis.call('EXISTS', key) == 1 then redis.call('PEXPIRE', key, ttl) end
return 1
"""

_RENEW = """
local key = KEYS[1]
local token, lease, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local renewed = 0
for i = 4, #ARGV do
  local hold = redis.call('HGET', key, 'h:' .. ARGV[i])
  if hold and string.match(hold, '^(%S+) ') == token then
    redis.call('HSET', key, 'h:' .. ARGV[i], token .. ' ' .. (now + lease))
    renewed = renewed + 1
  end
end
if renewed > 0 and redis.call('PTTL', key) < lease then redis.call('PEXPIRE', key, ttl) end
return renewed
"""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _script(name: str, source: str) -> Script:
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


_CLAIM_SCRIPT = _script("idempotency_claim", _CLAIM)
_SETTLE_SCRIPT = _script("idempotency_settle", _SETTLE)
_RENEW_SCRIPT = _script("idempotency_renew", _RENEW)


class RedisIdempotencyStore:
    """Keys in Redis, shared by every process: one Lua script per decision, Redis server time,
    a TTL on every key. ``redis`` is a ``redis.asyncio.Redis`` the caller owns (never closed
    here). Decisions made at the same moment share one pipelined round trip (the Redis
    limiters' script runner); ``timeout`` bounds each. A failed decision raises
    :class:`~gocomm.errors.CommError` (retryable)."""

    def __init__(self, redis: Redis, *, prefix: str = "gocomm:idem:", timeout: float = 5.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.timeout = timeout
        self._runner = runner_for(redis)

    async def _run(self, script: Script, key: str, args: Sequence[str | int]) -> Any:
        return await _reached(self._runner.run(script, self.prefix + key, args, self.timeout))

    async def claim(
        self, key: str, fingerprint: str, to: Sequence[str], token: str, lease: float, ttl: float
    ) -> Claim:
        reply = await self._run(
            _CLAIM_SCRIPT, key, [fingerprint, token, _ms(lease), _ms(ttl), *to]
        )
        status = _text(reply[0])
        if status == "conflict":
            return Claim("conflict")
        if status == "busy":
            return Claim("busy", retry_after=int(reply[1]) / 1000)
        flat = [_text(item) for item in reply[1]]
        done = dict(zip(flat[::2], flat[1::2], strict=True))
        claimed = tuple(r for r in dict.fromkeys(to) if r not in done)
        return Claim("ok", claimed, done)

    async def settle(
        self, key: str, token: str, sent: Sequence[str], receipt: str, release: Sequence[str],
        ttl: float, then: Then | None = None,
    ) -> None:  # fmt: skip
        args: list[str | int] = [token, receipt, _ms(ttl), len(sent), *sent, *release]
        if then is None:
            await self._run(_SETTLE_SCRIPT, key, args)
            return
        # The record is queued now, and sent even if this caller is cancelled. A script call
        # that ``then`` makes before it first waits joins the same pipeline right behind it:
        # one round trip, and Redis runs the record first.
        recorded = self._runner.submit_detached(
            _SETTLE_SCRIPT, self.prefix + key, args, self.timeout
        )
        try:
            await then()
        finally:  # the record's own failure first: it is what a retry of the settle must fix
            await _reached(recorded)

    async def renew(
        self, key: str, token: str, to: Sequence[str], lease: float, ttl: float
    ) -> None:
        await self._run(_RENEW_SCRIPT, key, [token, _ms(lease), _ms(ttl), *to])


async def _reached(reply: Awaitable[Any]) -> Any:
    """``reply``'s value; a failure to reach Redis as a retryable :class:`CommError`."""
    try:
        return await reply
    except LimiterError as exc:
        cause = exc.__cause__ or exc
        raise CommError(
            f"the idempotency store could not reach Redis: {type(cause).__name__}: {cause}"
        ) from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------------- sender


def _receipt_json(receipt: Receipt) -> str:
    return json.dumps(
        {
            "vendor": receipt.vendor,
            "message_ids": list(receipt.message_ids),
            "attempts": receipt.attempts,
            "refused": list(receipt.refused),
        }
    )


def _replayed(stored: Sequence[str]) -> Receipt:
    """One receipt for recipients sent earlier (perhaps by several sends): the first one's
    vendor and attempts, every message id and refused address once."""
    receipts = [json.loads(text) for text in stored]
    return Receipt(
        vendor=receipts[0]["vendor"],
        message_ids=tuple(dict.fromkeys(i for r in receipts for i in r["message_ids"])),
        attempts=receipts[0]["attempts"],
        refused=tuple(dict.fromkeys(a for r in receipts for a in r["refused"])),
        replayed=True,
    )


class IdempotentSender(AsyncCloseable, Generic[T]):
    """Sends through ``sender`` at most once per recipient and idempotency key.

    ``key(biz, args, to)`` gives the key (default: :data:`idempotency_key`); None passes the
    send through. ``ttl`` is how long a key is remembered after its last use, ``lease`` how
    long a send holds its recipients without renewing (it renews every ``lease / 3`` while it
    runs). Raises :class:`~gocomm.errors.DuplicateInFlight` while another send holds the key's
    recipients and :class:`~gocomm.errors.IdempotencyConflict` when the key was first used for
    another ``biz`` or ``args``. Closing it closes ``sender``.

    :meth:`send` takes ``then`` (keyword), awaited once the send has succeeded and its outcome
    is recorded (or could not be within half the lease: the send went out all the same), never
    after a failure: a queue worker's acknowledgement, which the Redis store sends in the same
    round trip as the record, right behind it.
    """

    def __init__(
        self,
        sender: Sender[T],
        store: IdempotencyStore,
        *,
        key: Callable[[str, T, tuple[str, ...]], str | None] | None = None,
        ttl: float = 86400.0,
        lease: float = 60.0,
        logger: logging.Logger | None = None,
    ) -> None:
        if lease <= 0 or ttl < lease:
            raise ValueError(f"need 0 < lease <= ttl, got lease={lease!r}, ttl={ttl!r}")
        self.sender = sender
        self.store = store
        self.key = key
        self.ttl = ttl
        self.lease = lease
        self._log = logger or logging.getLogger("gocomm.idempotency")
        self._releases: set[asyncio.Task[None]] = set()
        self._renewals = _Renewals(self)

    @property
    def name(self) -> str:
        return vendor_name(self.sender)

    async def send(self, biz: str, args: T, *to: str, then: Then | None = None) -> Receipt | None:
        key = self.key(biz, args, to) if self.key is not None else idempotency_key.get()
        if key is None:
            receipt = await self.sender.send(biz, args, *to)
            if then is not None:
                await then()
            return receipt
        token = os.urandom(16).hex()  # unique per send; cheaper than a uuid4
        claim = await self.store.claim(key, fingerprint(biz, args), to, token, self.lease, self.ttl)
        if claim.status == "conflict":
            raise IdempotencyConflict(
                f"idempotency key {key!r} was first used for another message (a different biz "
                "or args): give each message its own key"
            )
        if claim.status == "busy":
            wait = claim.retry_after or 0.0
            raise DuplicateInFlight(
                f"a send under idempotency key {key!r} is still in flight; retry in {wait:.3g}s "
                "(its receipt comes back then, or its lease has ended)",
                retry_after=claim.retry_after,
            )
        owed = claim.claimed
        if not owed:
            replayed = _replayed([claim.done[r] for r in to])
            if then is not None:
                await then()
            return replayed
        self._renewals.hold(key, token, owed)
        try:
            receipt = await self.sender.send(biz, args, *owed)
        except asyncio.CancelledError:
            # Whether the vendor got it is unknown; a retry may send (at-least-once).
            self._release_later(key, token, owed)
            raise
        except Exception as exc:
            unsent = unsent_of(exc, owed)
            reached = [r for r in owed if r not in set(unsent)]
            stub = Receipt(vendor=str(getattr(exc, "vendor", None) or self.name))
            await self._settle(key, token, reached, _receipt_json(stub), unsent)
            if claim.done and getattr(exc, "unsent", None) is None:
                exc.unsent = unsent  # type: ignore[attr-defined]  # None would mean all of `to`
            raise
        finally:
            self._renewals.drop(token)
        stored = receipt if receipt is not None else Receipt(vendor=self.name)
        await self._settle(key, token, owed, _receipt_json(stored), (), then)
        return receipt

    async def _settle(
        self, key: str, token: str, sent: Sequence[str], receipt: str, release: Sequence[str],
        then: Then | None = None,
    ) -> None:  # fmt: skip
        # A store that is briefly away (a Redis restart) gets until half the lease: the holds
        # still stand meanwhile, so nobody else sends.
        deadline = time.monotonic() + self.lease / 2
        pause = 0.05
        while True:
            try:
                await self.store.settle(key, token, sent, receipt, release, self.ttl, then=then)
                return
            except CommError as exc:
                if time.monotonic() + pause < deadline:
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 1.0)
                    continue
                # The send's outcome stands; raising now would make the caller send again.
                # The holds end with their lease; a duplicate after that is possible.
                self._log.error(
                    "idempotency key %r: could not record the outcome for %d recipient(s): %s",
                    key, len(sent) + len(release), exc,
                )  # fmt: skip
                break
        if then is not None:  # the send went out: a redelivery would only send it again
            await then()

    def _release_later(self, key: str, token: str, owed: Sequence[str]) -> None:
        task = asyncio.get_running_loop().create_task(
            self._settle(key, token, (), "", owed)
        )
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _aclose(self) -> None:
        await self._renewals.aclose()
        if self._releases:
            await asyncio.wait(set(self._releases))
        await aclose_all(self.sender)


class _Renewals:
    """The holds of an :class:`IdempotentSender`'s sends in flight, renewed together.

    One task per sender (not a timer per send: most sends end long before a renewal is due)
    wakes every ``lease / 3`` seconds and renews each hold still in flight, so no hold goes
    longer than ``lease / 3`` without renewal; it ends when no send is in flight.
    """

    __slots__ = ("_held", "_owner", "_task")

    def __init__(self, owner: IdempotentSender[Any]) -> None:
        self._owner = owner
        self._held: dict[str, tuple[str, tuple[str, ...]]] = {}  # token -> (key, recipients)
        self._task: asyncio.Task[None] | None = None

    def hold(self, key: str, token: str, owed: tuple[str, ...]) -> None:
        """Keep ``token``'s hold on ``owed`` under ``key`` renewed until :meth:`drop`."""
        self._held[token] = (key, owed)
        task = self._task
        loop = asyncio.get_running_loop()
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._renew_while_held())

    def drop(self, token: str) -> None:
        del self._held[token]

    async def _renew_while_held(self) -> None:
        owner = self._owner
        while self._held:
            await asyncio.sleep(owner.lease / 3)
            held = list(self._held.items())
            outcomes = await asyncio.gather(
                *(owner.store.renew(key, token, owed, owner.lease, owner.ttl)
                  for token, (key, owed) in held),
                return_exceptions=True,
            )  # fmt: skip
            for (_, (key, _)), outcome in zip(held, outcomes, strict=True):
                if isinstance(outcome, CommError):
                    owner._log.warning("idempotency key %r: lease not renewed: %s", key, outcome)
                elif isinstance(outcome, BaseException):
                    raise outcome

    async def aclose(self) -> None:
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
