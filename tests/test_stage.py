"""Stages hand the recipients to each other as one tuple (``send_to``), while ``send`` keeps
the public protocol: nothing runs before it is awaited, and a subclass that overrides ``send``
is still called through it."""

from __future__ import annotations

import asyncio
from typing import Any

from gocomm.failover import FailoverSender
from gocomm.ratelimit import RateLimitSender, SlidingWindowLimiter
from gocomm.retryable import RetrySender
from gocomm.sender import Receipt, Stage, send_to_of
from gocomm.testing import MemorySender


class Recorder(Stage[Any]):
    """A stage that records the tuple it was handed."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, ...]] = []

    async def send_to(self, biz: str, args: Any, to: tuple[str, ...]) -> Receipt:
        self.seen.append(to)
        return Receipt(vendor="recorder")


async def test_stages_pass_one_tuple_down_without_copying_it() -> None:
    recorder = Recorder()
    stack = RateLimitSender(RetrySender(recorder, 3), "k", SlidingWindowLimiter(60, 10))
    to = ("+8613800000000", "+8613800000001")
    await stack.send_to("login", None, to)
    assert recorder.seen[0] is to
    await stack.send("login", None, *to)
    assert recorder.seen[1] == to


async def test_send_runs_nothing_before_it_is_awaited() -> None:
    limiter = SlidingWindowLimiter(60, 1)
    stack = RateLimitSender(MemorySender(), "k", limiter)
    pending = stack.send("login", None, "+8613800000000")
    assert asyncio.iscoroutine(pending)
    assert len(limiter) == 0  # the limiter has not been asked yet
    await pending
    assert len(limiter) == 1


async def test_a_subclass_that_overrides_send_is_called_through_it() -> None:
    class Counting(FailoverSender[Any]):
        calls = 0

        async def send(self, biz: str, args: Any, *to: str) -> Receipt | None:
            Counting.calls += 1
            return await super().send(biz, args, *to)

    inner = Counting([MemorySender()])
    assert send_to_of(inner) != inner.send_to
    await RetrySender(inner, 2).send("login", None, "+8613800000000")
    assert Counting.calls == 1
    plain = FailoverSender([MemorySender()])
    assert send_to_of(plain) == plain.send_to
