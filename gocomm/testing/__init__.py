"""Test doubles for applications and for gocomm's own tests.

``MemorySender`` records what it is given; ``ScriptedSender`` plays a script of outcomes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gocomm.sender import AsyncCloseable, Receipt

__all__ = ["MemorySender", "ScriptedSender", "SentMessage", "Step"]


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One recorded send."""

    biz: str
    args: Any
    to: tuple[str, ...]


class MemorySender(AsyncCloseable):
    """Records each send in :attr:`sent` and succeeds."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.sent: list[SentMessage] = []

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        self.sent.append(SentMessage(biz, args, to))
        return Receipt(vendor=self.name, message_ids=(f"{self.name}-{len(self.sent)}",))

    def clear(self) -> None:
        self.sent.clear()

    def __repr__(self) -> str:
        return f"MemorySender(name={self.name!r}, sent={len(self.sent)})"


Step = None | float | int | BaseException | type[BaseException]


class ScriptedSender(AsyncCloseable):
    """Plays one step per call: ``None`` succeeds, an exception (instance or class) is raised,
    a number sleeps that many seconds and then succeeds. Past the last step it succeeds.

    Every call is recorded in :attr:`calls`; the successful ones also in :attr:`sent`.
    """

    def __init__(self, steps: Iterable[Step] = (), *, name: str = "scripted") -> None:
        self.name = name
        self.steps: list[Step] = list(steps)
        self.calls: list[SentMessage] = []
        self.sent: list[SentMessage] = []

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        message = SentMessage(biz, args, to)
        self.calls.append(message)
        step = self.steps[len(self.calls) - 1] if len(self.calls) <= len(self.steps) else None
        if isinstance(step, BaseException) or (
            isinstance(step, type) and issubclass(step, BaseException)
        ):
            raise step
        if isinstance(step, int | float) and not isinstance(step, bool):
            await asyncio.sleep(step)
        self.sent.append(message)
        return Receipt(vendor=self.name, message_ids=(f"{self.name}-{len(self.calls)}",))

    def __repr__(self) -> str:
        return f"ScriptedSender(name={self.name!r}, calls={len(self.calls)})"
