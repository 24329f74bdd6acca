"""taskiq-redis's Redis Streams broker, with what gocomm's workers need added.

:class:`GocommStreamBroker` is a ``taskiq_redis.RedisStreamBroker`` (consumer groups, messages
acknowledged after their outcome is recorded) that also:

* reclaims a dead worker's messages on every turn of its loop, quiet stream or not
  (taskiq-redis runs ``XAUTOCLAIM`` only after a read that returned messages, so a dead
  worker's messages would wait for the next new message);
* creates its consumer group at the start of the stream (``0``, not ``$``), so messages
  enqueued before the first worker ever started are delivered;
* reads at most ``prefetch`` entries at a time (taskiq-redis reads 100), so a worker that dies
  leaves few messages waiting out the idle timeout;
* delays a message (label ``delay``, seconds) in a sorted set next to the stream, moved onto
  the stream by the workers when due, in one script;
* deletes a message from the stream when acknowledging it, so the stream holds only what is
  still to do;
* survives Redis going away: the loop logs, waits and reads again.

Every duration is in seconds here; taskiq-redis's milliseconds stay inside.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AckableMessage, BrokerMessage
from taskiq_redis import RedisStreamBroker

from gocomm.ratelimit.redis_scripts import Script, runner_for

__all__ = ["GocommStreamBroker"]

_log = logging.getLogger("gocomm.queue")

# Move the due members of the delayed set (score: due time, ms of Redis time) onto the stream.
_PROMOTE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, data in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'data', data)
  redis.call('ZREM', KEYS[1], data)
end
return #due
"""

# Add a message to the delayed set, due ARGV[2] ms from now (Redis time).
_DELAY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""

# Acknowledge a message and delete it from the stream, in one step.
_ACK_SOURCE = """
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""
_ACK = Script("stream_ack", _ACK_SOURCE, hashlib.sha1(_ACK_SOURCE.encode()).hexdigest())

_OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


class GocommStreamBroker(RedisStreamBroker):
    """A Redis Streams broker for gocomm's workers (see the module's description).

    ``idle_timeout``: seconds a message may stay unacknowledged before another worker takes it
    over; ``prefetch``: entries read at once; ``block``: seconds one read waits for a message
    (also how often due delayed messages and abandoned ones are looked for).
    """

    def __init__(
        self,
        url: str,
        *,
        queue_name: str = "gocomm",
        idle_timeout: float = 300.0,
        prefetch: int = 10,
        block: float = 0.5,
        max_connections: int | None = None,
        **connection_kwargs: Any,
    ) -> None:
        super().__init__(
            url,
            queue_name=queue_name,
            consumer_group_name="gocomm",
            consumer_id="0",
            idle_timeout=max(1, round(idle_timeout * 1000)),
            xread_block=max(1, round(block * 1000)),
            xread_count=prefetch,
            unacknowledged_batch_size=prefetch,
            max_connection_pool_size=max_connections,
            **connection_kwargs,
        )
        self.delayed_key = f"{queue_name}:delayed"
        self.prefetch = prefetch
        self._redis = Redis(connection_pool=self.connection_pool)
        self._promote = self._redis.register_script(_PROMOTE)
        self._delay = self._redis.register_script(_DELAY)
        # One round trip at a time: the script calls a worker's tasks make meanwhile (their
        # idempotency decisions and acknowledgements) queue up and share the next one, which
        # costs the worker less CPU per message than more, smaller round trips.
        self._runner = runner_for(self._redis, max_flights=1)

    async def kick(self, message: BrokerMessage) -> None:
        """Put ``message`` on the stream, or in the delayed set when it has a ``delay``."""
        delay = float(message.labels.get("delay") or 0)
        if delay > 0:
            await self._delay(
                keys=[self.delayed_key], args=[message.message, max(1, round(delay * 1000))]
            )
            return
        await super().kick(message)

    def _ack_generator(self, id: str, queue_name: str) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            # Through the script runner: the acknowledgements of concurrent tasks (and their
            # idempotency decisions, on the same pool) share pipelined round trips.
            await self._runner.run(_ACK, queue_name, (self.consumer_group_name, id), 5.0)

        return ack

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """Deliver due delayed messages, abandoned ones and new ones, for ever."""
        pause = 0.1
        while True:
            try:
                async for message in self._one_turn():
                    yield message
                pause = 0.1
            except _OUTAGE_ERRORS as exc:
                _log.warning("queue: Redis unreachable (%s); reading again in %.1fs", exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # The stream was lost (a Redis without persistence restarted): declare again.
                _log.warning("queue: consumer group missing; creating it again")
                await self._declare_consumer_group()

    async def _one_turn(self) -> AsyncGenerator[AckableMessage, None]:
        redis = self._redis
        await self._promote(keys=[self.delayed_key, self.queue_name], args=[self.prefetch])
        _, claimed, *_ = await redis.xautoclaim(
            self.queue_name,
            self.consumer_group_name,
            self.consumer_name,
            min_idle_time=self.idle_timeout,
            count=self.prefetch,
        )
        for entry in claimed:
            message = self._message(self.queue_name, entry)
            if message is not None:
                yield message
        fetched: Any = await redis.xreadgroup(
            self.consumer_group_name,
            self.consumer_name,
            {self.queue_name: ">"},
            block=self.block,
            count=self.count,
        )
        for stream, entries in fetched or ():
            name = stream.decode() if isinstance(stream, bytes) else str(stream)
            for entry in entries:
                message = self._message(name, entry)
                if message is not None:
                    yield message

    def _message(self, stream: str, entry: Any) -> AckableMessage | None:
        msg_id, fields = entry
        if not fields or b"data" not in fields:  # deleted meanwhile
            return None
        msg_id = msg_id.decode() if isinstance(msg_id, bytes) else str(msg_id)
        return AckableMessage(data=fields[b"data"], ack=self._ack_generator(msg_id, stream))
