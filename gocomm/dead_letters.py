"""Dead letters: the sends no worker could make, kept with their error and original task.

On the ``redis_stream`` broker they are entries of a Redis stream (``queue.dead_letter``,
default ``gocomm:dead``) that ``gocomm dead-letter list|retry|purge`` reads; on the ``memory``
broker they live in the process. A message delivered again after a worker died records its
dead letter once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DeadLetter", "DeadLetters", "MemoryDeadLetters", "RedisDeadLetters"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message no worker could send: the error's text and the original task."""

    id: str
    channel: str
    biz: str
    to: tuple[str, ...]
    error: str
    at: float
    task: Mapping[str, Any]


class DeadLetters:
    """Where dead letters are kept (the protocol of both kinds)."""

    async def add(self, task_id: str, task: Mapping[str, Any], error: str) -> None:
        """Record ``task`` with ``error``, once per ``task_id`` (a redelivery adds nothing)."""
        raise NotImplementedError

    async def list(self, count: int | None = None) -> list[DeadLetter]:
        """The dead letters, oldest first."""
        raise NotImplementedError

    async def delete(self, ids: Sequence[str]) -> int:
        """Remove the dead letters ``ids``; the number removed."""
        raise NotImplementedError


def _letter_fields(task: Mapping[str, Any], error: str) -> dict[str, str]:
    return {
        "channel": str(task.get("channel", "")),
        "biz": str(task.get("biz", "")),
        "to": json.dumps(list(task.get("to", ()))),
        "error": error,
        "at": f"{time.time():.3f}",
        "task": json.dumps(task),
    }


def _letter(entry_id: str, fields: Mapping[str, str]) -> DeadLetter:
    return DeadLetter(
        id=entry_id,
        channel=fields["channel"],
        biz=fields["biz"],
        to=tuple(json.loads(fields["to"])),
        error=fields["error"],
        at=float(fields["at"]),
        task=json.loads(fields["task"]),
    )


class MemoryDeadLetters(DeadLetters):
    """Dead letters in this process (the ``memory`` broker); gone when it exits."""

    def __init__(self) -> None:
        self._letters: dict[str, dict[str, str]] = {}
        self._seen: set[str] = set()
        self._next = 0

    async def add(self, task_id: str, task: Mapping[str, Any], error: str) -> None:
        if task_id in self._seen:
            return
        self._seen.add(task_id)
        self._next += 1
        self._letters[f"{self._next}-0"] = _letter_fields(task, error)

    async def list(self, count: int | None = None) -> list[DeadLetter]:
        letters = [_letter(i, f) for i, f in self._letters.items()]
        return letters[:count] if count is not None else letters

    async def delete(self, ids: Sequence[str]) -> int:
        return sum(self._letters.pop(i, None) is not None for i in ids)


# Add a dead letter unless this task id already has one (a redelivered message).
_ADD_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', tonumber(ARGV[1])) then
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
  return 1
end
return 0
"""


class RedisDeadLetters(DeadLetters):
    """Dead letters in the Redis stream ``stream``; ``redis`` is the caller's (not closed)."""

    def __init__(self, redis: Redis, stream: str = "gocomm:dead") -> None:
        self.redis = redis
        self.stream = stream
        self._add_once = redis.register_script(_ADD_ONCE)

    async def add(self, task_id: str, task: Mapping[str, Any], error: str) -> None:
        flat = [item for pair in _letter_fields(task, error).items() for item in pair]
        await self._add_once(
            keys=[self.stream, f"{self.stream}:seen:{task_id}"], args=[7 * 86400 * 1000, *flat]
        )

    async def list(self, count: int | None = None) -> list[DeadLetter]:
        entries: Any = await self.redis.xrange(self.stream, count=count)
        return [
            _letter(_text(i), {_text(k): _text(v) for k, v in fields.items()})
            for i, fields in entries
        ]

    async def delete(self, ids: Sequence[str]) -> int:
        return int(await self.redis.xdel(self.stream, *ids)) if ids else 0
