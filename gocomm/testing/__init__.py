"""Test doubles for applications and for gocomm's own tests.

``MemorySender`` records what it is given; ``ScriptedSender`` plays a script of outcomes. Given
a ``channel``, both refuse bad recipients as every vendor does (``InvalidRecipient``, before
anything is recorded), so an application's bad-input branch can be tested with them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from gocomm.recipients import validate_recipients
from gocomm.sender import AsyncCloseable, Receipt
from gocomm.vendors.checks import channel_of, check_sms_send

__all__ = ["DoubleChannel", "MemorySender", "ScriptedSender", "SentMessage", "Step"]

#: What a test double validates: one channel's recipients, ``"both"`` (each send as the
#: channel its args imply: an Email is email, a mapping of template parameters SMS, as the
#: memory vendor does), or None (anything goes).
DoubleChannel = Literal["email", "sms", "both"] | None


def _checked(
    vendor: str, channel: DoubleChannel, args: Any, to: tuple[str, ...]
) -> tuple[str, ...]:
    """``to`` validated and normalised as a vendor of ``channel`` would, or refused."""
    if channel is None:
        return to
    if channel == "both":
        channel = channel_of(vendor, args)
    if channel == "sms" and isinstance(args, Mapping):
        return check_sms_send(vendor, args, to)
    return validate_recipients(channel, args, to, vendor=vendor)


def _check_channel(channel: DoubleChannel) -> DoubleChannel:
    if channel not in (None, "email", "sms", "both"):
        raise ValueError(f"channel must be 'email', 'sms', 'both' or None, got {channel!r}")
    return channel


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One recorded send."""

    biz: str
    args: Any
    to: tuple[str, ...]


class MemorySender(AsyncCloseable):
    """Records each send in :attr:`sent` and succeeds.

    With a ``channel`` it first validates the recipients as a vendor of that channel does:
    a bad one raises :class:`~gocomm.errors.InvalidRecipient` and nothing is recorded; SMS
    numbers are recorded in E.164 form.
    """

    def __init__(self, name: str = "memory", *, channel: DoubleChannel = None) -> None:
        self.name = name
        self.channel = _check_channel(channel)
        self.sent: list[SentMessage] = []

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        to = _checked(self.name, self.channel, args, to)
        self.sent.append(SentMessage(biz, args, to))
        return Receipt(vendor=self.name, message_ids=(f"{self.name}-{len(self.sent)}",))

    def clear(self) -> None:
        self.sent.clear()

    def __repr__(self) -> str:
        channel = f", channel={self.channel!r}" if self.channel is not None else ""
        return f"MemorySender(name={self.name!r}{channel}, sent={len(self.sent)})"


Step = None | float | int | BaseException | type[BaseException]


class ScriptedSender(AsyncCloseable):
    """Plays one step per call: ``None`` succeeds, an exception (instance or class) is raised,
    a number sleeps that many seconds and then succeeds. Past the last step it succeeds.

    Every call is recorded in :attr:`calls`; the successful ones also in :attr:`sent`. With a
    ``channel``, a send with a bad recipient is refused first, as a vendor refuses it before
    the network: it raises :class:`~gocomm.errors.InvalidRecipient`, is no call and plays no
    step.
    """

    def __init__(
        self, steps: Iterable[Step] = (), *, name: str = "scripted", channel: DoubleChannel = None
    ) -> None:
        self.name = name
        self.channel = _check_channel(channel)
        self.steps: list[Step] = list(steps)
        self.calls: list[SentMessage] = []
        self.sent: list[SentMessage] = []

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        message = SentMessage(biz, args, _checked(self.name, self.channel, args, to))
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
