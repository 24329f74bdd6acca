"""The limiter contract: every limiter backend passes the same suite.

Adding a backend
----------------
1. Define a fixture named ``<name>_limiter_backend`` (sync or async, e.g. in
   ``tests/conftest.py``) returning an object that satisfies :class:`LimiterBackend` below: async
   factories ``sliding_window(window, rate)``, ``token_bucket(rate, burst)`` and
   ``concurrency(max_active, lease)`` that each return a limiter with fresh state (no key shared
   with another test), and ``abandon(limiter, key)``, which takes a slot of ``key`` and vanishes
   without releasing it, as a crashed process would. The fixture closes what it opens.
2. Add ``"<name>"`` to :data:`BACKENDS`. That is the one line this file needs.

The contract tests run on real time (a Redis server's clock cannot be faked): windows are short
(0.2 to 1 s) and every timing assertion keeps a margin of 0.1 s or more on each side, so a slow
machine can delay a step without changing the outcome. Precision at the boundaries is tested on
the in-memory limiters alone, with a fake clock, in the second half of this file.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Protocol

import pytest

from gocomm.errors import ConfigError, Limited
from gocomm.ratelimit import (
    ActiveLimiter,
    ConcurrencyLimiter,
    Decision,
    DecisionLimiter,
    Limiter,
    RefundableLimiter,
    SlidingWindowLimiter,
    TokenBucketLimiter,
)
from gocomm.ratelimit.memory import SWEEP_BATCH

#: The limiter backends the contract runs against; a new backend adds its name here.
BACKENDS = ["memory", "redis"]

#: How many tasks the concurrency tests start at once.
TASKS = 300


class LimiterBackend(Protocol):
    """What the contract needs from a backend: fresh limiters, and a way to abandon a slot."""

    async def sliding_window(self, window: float, rate: int) -> DecisionLimiter: ...

    async def token_bucket(self, rate: float, burst: int) -> DecisionLimiter: ...

    async def concurrency(self, max_active: int, lease: float) -> ActiveLimiter: ...

    async def abandon(self, limiter: ActiveLimiter, key: str) -> None: ...


class MemoryBackend:
    """The in-memory limiters on the real monotonic clock."""

    async def sliding_window(self, window: float, rate: int) -> DecisionLimiter:
        return SlidingWindowLimiter(window, rate)

    async def token_bucket(self, rate: float, burst: int) -> DecisionLimiter:
        return TokenBucketLimiter(rate, burst)

    async def concurrency(self, max_active: int, lease: float) -> ActiveLimiter:
        return ConcurrencyLimiter(max_active, lease=lease)

    async def abandon(self, limiter: ActiveLimiter, key: str) -> None:
        # A task that takes the slot and ends without releasing it: its holder is gone.
        async def take_and_vanish() -> None:
            await limiter.acquire(key).__aenter__()

        await asyncio.create_task(take_and_vanish())


@pytest.fixture
def memory_limiter_backend() -> LimiterBackend:
    return MemoryBackend()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> LimiterBackend:
    backend: LimiterBackend = request.getfixturevalue(f"{request.param}_limiter_backend")
    return backend


RateFactory = Callable[[LimiterBackend], Awaitable[DecisionLimiter]]


async def _admitted(limiter: Limiter, key: str, n: int) -> int:
    """Make ``n`` requests one after the other; how many passed."""
    return sum([not await limiter.limit(key) for _ in range(n)])


async def _concurrent_decisions(limiter: DecisionLimiter, key: str) -> list[Decision]:
    start = asyncio.Event()

    async def one() -> Decision:
        await start.wait()
        return await limiter.check(key)

    tasks = [asyncio.create_task(one()) for _ in range(TASKS)]
    await asyncio.sleep(0)
    start.set()
    return await asyncio.gather(*tasks)


# -- rate limiters: both kinds ---------------------------------------------------------------


def _sliding_window(window: float, rate: int) -> RateFactory:
    return lambda backend: backend.sliding_window(window, rate)


def _token_bucket(rate: float, burst: int) -> RateFactory:
    return lambda backend: backend.token_bucket(rate, burst)


# Both kinds let 5 requests through at once and then refill slowly enough to be still.
FIVE_THEN_STILL = [
    pytest.param(_sliding_window(60.0, 5), id="sliding_window"),
    pytest.param(_token_bucket(0.01, 5), id="token_bucket"),
]


@pytest.mark.parametrize("make", FIVE_THEN_STILL)
async def test_is_a_limiter_and_a_decision_limiter(
    backend: LimiterBackend, make: RateFactory
) -> None:
    limiter = await make(backend)
    assert isinstance(limiter, Limiter)
    assert isinstance(limiter, DecisionLimiter)


@pytest.mark.parametrize("make", FIVE_THEN_STILL)
async def test_admits_the_limit_then_limits(backend: LimiterBackend, make: RateFactory) -> None:
    limiter = await make(backend)
    assert [await limiter.limit("k") for _ in range(7)] == [False] * 5 + [True] * 2
    decision = await limiter.check("k")
    assert decision.limited


@pytest.mark.parametrize("make", FIVE_THEN_STILL)
async def test_check_reports_no_wait_when_admitted(
    backend: LimiterBackend, make: RateFactory
) -> None:
    limiter = await make(backend)
    assert await limiter.check("k") == Decision(limited=False, retry_after=None)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_sliding_window(60.0, 50), id="sliding_window"),
        pytest.param(_token_bucket(0.01, 50), id="token_bucket"),
    ],
)
async def test_admits_exactly_the_limit_under_concurrent_tasks(
    backend: LimiterBackend, make: RateFactory
) -> None:
    limiter = await make(backend)
    decisions = await _concurrent_decisions(limiter, "k")
    assert sum(not d.limited for d in decisions) == 50
    assert all(d.retry_after is not None and d.retry_after > 0 for d in decisions if d.limited)


@pytest.mark.parametrize("make", FIVE_THEN_STILL)
async def test_keys_are_independent(backend: LimiterBackend, make: RateFactory) -> None:
    limiter = await make(backend)
    assert await _admitted(limiter, "a", 8) == 5
    assert await _admitted(limiter, "b", 8) == 5
    assert await limiter.limit("a")


@pytest.mark.parametrize("make", FIVE_THEN_STILL)
async def test_limited_requests_do_not_spend_quota(
    backend: LimiterBackend, make: RateFactory
) -> None:
    # Hammering a limited key must not push its recovery further away.
    limiter = await make(backend)
    await _admitted(limiter, "k", 5)
    first = await limiter.check("k")
    for _ in range(20):
        await limiter.check("k")
    last = await limiter.check("k")
    assert first.retry_after is not None
    assert last.retry_after is not None
    assert last.retry_after <= first.retry_after


@pytest.mark.parametrize(
    ("make", "longest_wait"),
    [
        pytest.param(_sliding_window(0.3, 1), 0.3, id="sliding_window"),
        pytest.param(_token_bucket(4.0, 1), 0.25, id="token_bucket"),
    ],
)
async def test_retry_after_is_the_wait_until_a_request_passes(
    backend: LimiterBackend, make: RateFactory, longest_wait: float
) -> None:
    limiter = await make(backend)
    assert not await limiter.limit("k")
    decision = await limiter.check("k")
    assert decision.limited
    assert decision.retry_after is not None
    assert 0 < decision.retry_after <= longest_wait + 1e-6
    await asyncio.sleep(decision.retry_after + 0.05)
    assert await limiter.check("k") == Decision(limited=False, retry_after=None)


# -- refunds (DESIGN §11) --------------------------------------------------------------------


async def _tokens(limiter: DecisionLimiter, key: str, n: int) -> list[object]:
    """Acquire ``n`` admissions of ``key``, which must all pass; their tokens."""
    assert isinstance(limiter, RefundableLimiter)
    decisions = [await limiter.acquire(key) for _ in range(n)]
    assert not any(d.limited for d in decisions)
    return [d.token for d in decisions]


@pytest.mark.parametrize("make", FIVE_THEN_STILL)
async def test_is_a_refundable_limiter(backend: LimiterBackend, make: RateFactory) -> None:
    limiter = await make(backend)
    assert isinstance(limiter, RefundableLimiter)
    admitted = await limiter.acquire("k")
    assert not admitted.limited and admitted.retry_after is None
    assert admitted.token is not None
    await _tokens(limiter, "k", 4)
    refused = await limiter.acquire("k")
    assert refused.limited and refused.token is None
    assert refused.retry_after is not None and refused.retry_after > 0


@pytest.mark.parametrize("make", FIVE_THEN_STILL)
async def test_refund_gives_back_one_admission_once(
    backend: LimiterBackend, make: RateFactory
) -> None:
    limiter = await make(backend)
    assert isinstance(limiter, RefundableLimiter)
    tokens = await _tokens(limiter, "k", 5)
    assert await limiter.limit("k")
    await limiter.refund("k", tokens[-1])
    await limiter.refund("k", tokens[-1])  # spent: gives nothing more
    assert [await limiter.limit("k") for _ in range(3)] == [False, True, True]


@pytest.mark.parametrize("make", FIVE_THEN_STILL)
async def test_unknown_foreign_and_spent_tokens_give_nothing(
    backend: LimiterBackend, make: RateFactory
) -> None:
    limiter = await make(backend)
    other = await make(backend)
    assert isinstance(limiter, RefundableLimiter) and isinstance(other, RefundableLimiter)
    tokens = await _tokens(limiter, "k", 5)
    [other_key_token] = await _tokens(limiter, "other", 1)
    for token in [None, "forged", 42, object(), other_key_token]:
        await limiter.refund("k", token)
    assert await limiter.limit("k")
    await limiter.refund("k", tokens[-1])
    assert not await limiter.limit("k")  # the slot the refund freed is taken again
    await limiter.refund("k", tokens[-1])
    assert await limiter.limit("k")
    # The token of another key, which gave nothing on this one, does give back on its own.
    await limiter.refund("other", other_key_token)
    assert await _admitted(limiter, "other", 6) == 5


async def test_sliding_window_refunds_any_admission_still_in_the_window(
    backend: LimiterBackend,
) -> None:
    limiter = await backend.sliding_window(60.0, 3)
    first, second, third = await _tokens(limiter, "k", 3)
    await limiter.refund("k", first)  # not the latest: the window still gives it back
    await limiter.refund("k", second)
    assert await _admitted(limiter, "k", 3) == 2
    await limiter.refund("k", third)
    assert await _admitted(limiter, "k", 2) == 1


async def test_sliding_window_refund_after_the_window_gives_nothing(
    backend: LimiterBackend,
) -> None:
    # An admission that left the window counts no more: refunding it cannot make room for a
    # request beyond the rate.
    limiter = await backend.sliding_window(0.3, 1)
    [old] = await _tokens(limiter, "k", 1)
    await asyncio.sleep(0.45)
    await _tokens(limiter, "k", 1)
    await limiter.refund("k", old)
    assert await limiter.limit("k")


async def test_token_bucket_refunds_the_latest_admission(backend: LimiterBackend) -> None:
    limiter = await backend.token_bucket(0.01, 3)
    first, second, third = await _tokens(limiter, "k", 3)
    await limiter.refund("k", first)  # a later admission exists: nothing is given back
    await limiter.refund("k", second)
    assert await limiter.limit("k")
    await limiter.refund("k", third)
    assert await _admitted(limiter, "k", 3) == 1


async def test_token_bucket_refund_never_fills_beyond_burst(backend: LimiterBackend) -> None:
    # 20 tokens a second: 0.5 s after the admission the bucket is full again; the refund of
    # that admission must not add a token on top of it.
    limiter = await backend.token_bucket(20.0, 2)
    [token] = await _tokens(limiter, "k", 1)
    await asyncio.sleep(0.5)
    await limiter.refund("k", token)
    assert await _admitted(limiter, "k", 5) == 2


@pytest.mark.parametrize(
    ("make", "all_given_back"),
    [
        pytest.param(_sliding_window(60.0, 50), True, id="sliding_window"),
        # The token bucket gives back the latest admission only: some refunds give nothing.
        pytest.param(_token_bucket(0.01, 50), False, id="token_bucket"),
    ],
)
async def test_refunds_under_concurrent_tasks_never_give_back_more_than_taken(
    backend: LimiterBackend, make: RateFactory, all_given_back: bool
) -> None:
    # Every task acquires, and refunds its admission twice; afterwards exactly the admissions
    # still counted keep the key full: no refund gave back more than its own admission.
    limiter = await make(backend)
    assert isinstance(limiter, RefundableLimiter)
    start = asyncio.Event()

    async def one() -> bool:
        await start.wait()
        decision = await limiter.acquire("k")
        if decision.limited:
            return False
        await asyncio.gather(*(limiter.refund("k", decision.token) for _ in range(2)))
        return True

    tasks = [asyncio.create_task(one()) for _ in range(TASKS)]
    await asyncio.sleep(0)
    start.set()
    admitted = sum(await asyncio.gather(*tasks))
    assert admitted >= 50
    room = await _admitted(limiter, "k", 60)
    assert room <= 50  # never more than the rate
    assert room == 50 if all_given_back else room >= 1


# -- sliding window --------------------------------------------------------------------------


async def test_sliding_window_forgets_requests_older_than_the_window(
    backend: LimiterBackend,
) -> None:
    limiter = await backend.sliding_window(0.3, 2)
    assert await _admitted(limiter, "k", 3) == 2
    await asyncio.sleep(0.45)
    assert await _admitted(limiter, "k", 3) == 2


async def test_sliding_window_slides_rather_than_resetting(backend: LimiterBackend) -> None:
    # A at 0 and B at 0.4 fill a window of 0.8 s. At 0.9 A has left the window and B has not:
    # exactly one more request passes (a fixed window reset would let two through).
    limiter = await backend.sliding_window(0.8, 2)
    assert not await limiter.limit("k")
    await asyncio.sleep(0.4)
    assert not await limiter.limit("k")
    assert await limiter.limit("k")
    await asyncio.sleep(0.5)
    assert [await limiter.limit("k") for _ in range(3)] == [False, True, True]


# -- token bucket ----------------------------------------------------------------------------


async def test_token_bucket_starts_full(backend: LimiterBackend) -> None:
    limiter = await backend.token_bucket(0.01, 3)
    assert await _admitted(limiter, "k", 10) == 3


async def test_token_bucket_refills_at_its_rate(backend: LimiterBackend) -> None:
    # 4 tokens a second: 0.625 s after emptying, 2.5 tokens are back; exactly 2 pass.
    limiter = await backend.token_bucket(4.0, 4)
    assert await _admitted(limiter, "k", 4) == 4
    assert await limiter.limit("k")
    await asyncio.sleep(0.625)
    assert await _admitted(limiter, "k", 5) == 2


async def test_token_bucket_never_holds_more_than_burst(backend: LimiterBackend) -> None:
    # 20 tokens a second for 0.5 s would be 10 tokens; the bucket holds 3.
    limiter = await backend.token_bucket(20.0, 3)
    assert await _admitted(limiter, "k", 3) == 3
    await asyncio.sleep(0.5)
    assert await _admitted(limiter, "k", 10) == 3


# -- concurrency -----------------------------------------------------------------------------


async def test_concurrency_limiter_is_an_active_limiter_not_a_rate_limiter(
    backend: LimiterBackend,
) -> None:
    limiter = await backend.concurrency(3, 30.0)
    assert isinstance(limiter, ActiveLimiter)
    assert not isinstance(limiter, Limiter)


async def test_concurrency_limiter_admits_max_active(backend: LimiterBackend) -> None:
    limiter = await backend.concurrency(3, 30.0)
    async with AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(limiter.acquire("k"))
        with pytest.raises(Limited) as info:
            await stack.enter_async_context(limiter.acquire("k"))
        assert info.value.key == "k"
    # All released: three fit again.
    async with AsyncExitStack() as stack:
        for _ in range(3):
            await stack.enter_async_context(limiter.acquire("k"))


async def test_concurrency_release_frees_a_slot(backend: LimiterBackend) -> None:
    limiter = await backend.concurrency(1, 30.0)
    async with limiter.acquire("k"):
        with pytest.raises(Limited):
            async with limiter.acquire("k"):
                pass
    async with limiter.acquire("k"):
        pass


async def test_concurrency_slot_is_released_when_the_block_raises(
    backend: LimiterBackend,
) -> None:
    limiter = await backend.concurrency(1, 30.0)
    with pytest.raises(KeyError):
        async with limiter.acquire("k"):
            raise KeyError("boom")
    async with limiter.acquire("k"):
        pass


async def test_concurrency_slot_is_released_when_the_holder_is_cancelled(
    backend: LimiterBackend,
) -> None:
    limiter = await backend.concurrency(1, 30.0)
    holding = asyncio.Event()

    async def hold() -> None:
        async with limiter.acquire("k"):
            holding.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(hold())
    await holding.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with limiter.acquire("k"):
        pass


async def test_concurrency_keys_are_independent(backend: LimiterBackend) -> None:
    limiter = await backend.concurrency(1, 30.0)
    async with limiter.acquire("a"), limiter.acquire("b"):
        with pytest.raises(Limited):
            async with limiter.acquire("a"):
                pass


async def test_concurrency_admits_exactly_max_active_under_concurrent_tasks(
    backend: LimiterBackend,
) -> None:
    limiter = await backend.concurrency(7, 30.0)
    start, all_decided = asyncio.Event(), asyncio.Event()
    decided = inside = most_inside = 0

    def decide() -> None:
        nonlocal decided
        decided += 1
        if decided == TASKS:
            all_decided.set()

    async def one() -> bool:
        nonlocal inside, most_inside
        await start.wait()
        try:
            async with limiter.acquire("k"):
                decide()
                inside += 1
                most_inside = max(most_inside, inside)
                await all_decided.wait()  # hold the slot until every task has tried
                inside -= 1
        except Limited:
            decide()
            return False
        return True

    tasks = [asyncio.create_task(one()) for _ in range(TASKS)]
    await asyncio.sleep(0)
    start.set()
    results = await asyncio.gather(*tasks)
    assert sum(results) == 7
    assert most_inside == 7


async def test_concurrency_lease_frees_an_abandoned_slot(backend: LimiterBackend) -> None:
    limiter = await backend.concurrency(1, 0.3)
    await backend.abandon(limiter, "k")
    with pytest.raises(Limited):
        async with limiter.acquire("k"):
            pass
    await asyncio.sleep(0.5)
    async with limiter.acquire("k"):
        pass


async def test_concurrency_lease_is_renewed_while_the_block_runs(
    backend: LimiterBackend,
) -> None:
    limiter = await backend.concurrency(1, 0.2)
    async with limiter.acquire("k"):
        await asyncio.sleep(0.6)  # three leases long
        with pytest.raises(Limited):
            async with limiter.acquire("k"):
                pass
    async with limiter.acquire("k"):
        pass


# == In memory only: exact behaviour on a fake clock =========================================


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_limiters_are_built_without_an_event_loop() -> None:
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()
    assert SlidingWindowLimiter(1.0, 1).rate == 1
    assert TokenBucketLimiter(1.0, 1).burst == 1
    assert ConcurrencyLimiter(1).lease == 30.0


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: SlidingWindowLimiter(0, 1), "window"),
        (lambda: SlidingWindowLimiter(-1.0, 1), "window"),
        (lambda: SlidingWindowLimiter(math.inf, 1), "window"),
        (lambda: SlidingWindowLimiter(math.nan, 1), "window"),
        (lambda: SlidingWindowLimiter("1", 1), "window"),
        (lambda: SlidingWindowLimiter(1.0, 0), "rate"),
        (lambda: SlidingWindowLimiter(1.0, 1.5), "rate"),
        (lambda: SlidingWindowLimiter(1.0, True), "rate"),
        (lambda: SlidingWindowLimiter(1.0, 1, clock=3.0), "clock"),
        (lambda: TokenBucketLimiter(0, 1), "rate"),
        (lambda: TokenBucketLimiter(math.inf, 1), "rate"),
        (lambda: TokenBucketLimiter(1.0, 0), "burst"),
        (lambda: TokenBucketLimiter(1.0, 2.0), "burst"),
        (lambda: ConcurrencyLimiter(0), "max_active"),
        (lambda: ConcurrencyLimiter(None), "max_active"),
        (lambda: ConcurrencyLimiter(1, lease=0), "lease"),
        (lambda: ConcurrencyLimiter(1, lease=-5.0), "lease"),
    ],
)
def test_bad_arguments_are_refused_by_name(build: Callable[[], object], name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be") as info:
        build()
    assert isinstance(info.value, ConfigError)


def test_repr_shows_the_settings() -> None:
    assert repr(SlidingWindowLimiter(60, 5)) == "SlidingWindowLimiter(window=60.0, rate=5)"
    assert repr(TokenBucketLimiter(2, 10)) == "TokenBucketLimiter(rate=2.0, burst=10)"
    assert repr(ConcurrencyLimiter(4)) == "ConcurrencyLimiter(max_active=4, lease=30.0)"


async def test_default_clock_is_monotonic() -> None:
    limiter = SlidingWindowLimiter(10.0, 1)
    before = time.monotonic()
    await limiter.limit("k")
    decision = await limiter.check("k")
    assert decision.retry_after is not None
    assert 9.0 < decision.retry_after <= 10.0 + (time.monotonic() - before)


async def test_sliding_window_boundary_is_exact(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(10.0, 2, clock=clock)
    assert await _admitted(limiter, "k", 2) == 2  # both at t=0
    clock.advance(4.0)
    assert await limiter.check("k") == Decision(True, 6.0)
    clock.advance(6.0 - 1e-6)
    assert await limiter.limit("k")
    clock.advance(1e-6)  # t = 10: both leave the window at once
    assert await _admitted(limiter, "k", 3) == 2


async def test_sliding_window_retry_after_names_the_oldest_request(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(1.0, 2, clock=clock)
    assert not await limiter.limit("k")  # t = 0
    clock.advance(0.25)
    assert not await limiter.limit("k")  # t = 0.25
    assert await limiter.check("k") == Decision(True, 0.75)
    clock.advance(0.75)  # the first has left; the second counts until 1.25
    assert not await limiter.limit("k")
    assert await limiter.check("k") == Decision(True, 0.25)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda c: SlidingWindowLimiter(0.7, 3, clock=c), id="sliding_window"),
        pytest.param(lambda c: TokenBucketLimiter(3.0, 2, clock=c), id="token_bucket"),
    ],
)
async def test_waiting_retry_after_always_passes(
    clock: FakeClock, build: Callable[[FakeClock], SlidingWindowLimiter | TokenBucketLimiter]
) -> None:
    # Irregular steps: whatever the arithmetic, waiting exactly retry_after is enough.
    limiter = build(clock)
    for step in [0.1, 0.013, 0.37, 0.0001, 0.29, 0.6, 0.05] * 5:
        clock.advance(step)
        decision = await limiter.check("k")
        if decision.limited:
            assert decision.retry_after is not None
            clock.advance(decision.retry_after)
            assert not await limiter.limit("k")


async def test_sliding_window_never_admits_more_than_rate_in_any_window(
    clock: FakeClock,
) -> None:
    limiter = SlidingWindowLimiter(1.0, 3, clock=clock)
    admitted: list[float] = []
    for _ in range(400):
        clock.advance(0.037)
        if not await limiter.limit("k"):
            admitted.append(clock.now)
    for i in range(len(admitted) - 3):
        assert admitted[i + 3] - admitted[i] >= 1.0 - 1e-9
    assert len(admitted) > 3 * 13  # and it does admit as many as it may: 3 per window


async def test_token_bucket_refills_fractionally(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(2.0, 4, clock=clock)
    assert await _admitted(limiter, "k", 5) == 4
    clock.advance(0.25)  # half a token
    assert await limiter.check("k") == Decision(True, 0.25)
    clock.advance(0.25)
    assert not await limiter.limit("k")
    assert await limiter.check("k") == Decision(True, 0.5)


async def test_token_bucket_slow_rate(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(0.5, 1, clock=clock)
    assert not await limiter.limit("k")
    assert await limiter.check("k") == Decision(True, 2.0)
    clock.advance(1.999)
    assert await limiter.limit("k")
    clock.advance(0.001)
    assert not await limiter.limit("k")


async def test_token_bucket_caps_at_burst_after_a_long_idle(clock: FakeClock) -> None:
    limiter = TokenBucketLimiter(100.0, 5, clock=clock)
    assert await _admitted(limiter, "k", 5) == 5
    clock.advance(3600.0)
    assert await _admitted(limiter, "k", 50) == 5


@pytest.mark.parametrize(
    ("build", "idle"),
    [
        pytest.param(lambda c: SlidingWindowLimiter(10.0, 3, clock=c), 10.0, id="sliding_window"),
        pytest.param(lambda c: TokenBucketLimiter(0.5, 5, clock=c), 10.0, id="token_bucket"),
    ],
)
async def test_idle_keys_are_forgotten(
    clock: FakeClock, build: Callable[[FakeClock], SlidingWindowLimiter], idle: float
) -> None:
    limiter = build(clock)
    for i in range(100_000):
        await limiter.limit(f"user-{i}")
    assert len(limiter) == 100_000
    clock.advance(idle / 2)
    await limiter.limit("hot")
    assert len(limiter) == 100_001  # nothing is idle long enough yet
    clock.advance(idle / 2)
    # Each call drops up to SWEEP_BATCH idle keys: traffic on a single key empties the rest.
    for _ in range(100_000 // SWEEP_BATCH + 1):
        await limiter.limit("hot")
    assert len(limiter) <= 2


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda c: SlidingWindowLimiter(1.0, 1, clock=c), id="sliding_window"),
        pytest.param(lambda c: TokenBucketLimiter(1.0, 1, clock=c), id="token_bucket"),
    ],
)
async def test_memory_stays_bounded_under_endless_distinct_keys(
    clock: FakeClock, build: Callable[[FakeClock], SlidingWindowLimiter]
) -> None:
    # 100 000 distinct keys, one per millisecond, with a one-second window: only the last
    # thousand or so can matter, and only about that many are ever kept.
    limiter = build(clock)
    most = 0
    for i in range(100_000):
        clock.advance(0.001)
        assert not await limiter.limit(f"+8613800{i:06d}")
        most = max(most, len(limiter))
    assert most <= 1000 + SWEEP_BATCH


async def test_forgetting_keeps_the_state_of_active_keys(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(10.0, 1, clock=clock)
    await limiter.limit("busy")
    for i in range(1000):
        await limiter.limit(f"idle-{i}")
    clock.advance(9.0)
    assert await limiter.limit("busy")  # limited, not touched: still remembered
    clock.advance(1.5)
    for _ in range(1000):
        await limiter.limit("other")
    assert len(limiter) == 1
    assert not await limiter.limit("busy")  # its window passed too: a fresh start


async def test_token_bucket_refund_leaves_the_bucket_as_if_never_admitted(
    clock: FakeClock,
) -> None:
    # Two buckets see the same requests, except that one also admits (and refunds) an extra
    # request half way: from then on both answer every request alike.
    plain = TokenBucketLimiter(2.0, 3, clock=clock)
    refunded = TokenBucketLimiter(2.0, 3, clock=clock)
    for step in [0.0, 0.1, 0.7, 0.05]:
        clock.advance(step)
        assert await plain.check("k") == await refunded.check("k")
    clock.advance(0.2)
    extra = await refunded.acquire("k")
    clock.advance(0.3)
    await refunded.refund("k", extra.token)
    for step in [0.0, 0.01, 0.2, 0.37, 0.0, 0.0, 0.9, 0.1]:
        clock.advance(step)
        assert await plain.check("k") == await refunded.check("k")


async def test_sliding_window_refund_at_the_window_edge(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(10.0, 2, clock=clock)
    first = await limiter.acquire("k")
    clock.advance(1.0)
    await limiter.acquire("k")
    clock.advance(9.0)  # first leaves the window now: nothing to give back
    await limiter.refund("k", first.token)
    assert await _admitted(limiter, "k", 2) == 1


async def test_sliding_window_refund_of_the_only_entry_forgets_the_key(clock: FakeClock) -> None:
    limiter = SlidingWindowLimiter(10.0, 3, clock=clock)
    decision = await limiter.acquire("k")
    assert len(limiter) == 1
    await limiter.refund("k", decision.token)
    assert len(limiter) == 0
    assert await _admitted(limiter, "k", 4) == 3


async def test_same_instant_admissions_each_refund_once(clock: FakeClock) -> None:
    # Admissions in the same instant hold equal entries; each token still gives back one.
    limiter = SlidingWindowLimiter(10.0, 3, clock=clock)
    a, b, c = [await limiter.acquire("k") for _ in range(3)]
    for _ in range(3):
        await limiter.refund("k", a.token)
    assert await _admitted(limiter, "k", 2) == 1
    await limiter.refund("k", b.token)
    await limiter.refund("k", c.token)
    assert await _admitted(limiter, "k", 3) == 2


async def test_in_memory_limiters_decide_without_a_coroutine(clock: FakeClock) -> None:
    window = SlidingWindowLimiter(10.0, 1, clock=clock)
    token = window.acquire_nowait("k")
    with pytest.raises(Limited) as info:
        window.acquire_nowait("k")
    assert info.value.key == "k" and info.value.retry_after == 10.0
    window.refund_nowait("k", token)
    window.acquire_nowait("k")
    bucket = TokenBucketLimiter(1.0, 1, clock=clock)
    token = bucket.acquire_nowait("k")
    with pytest.raises(Limited):
        bucket.acquire_nowait("k")
    bucket.refund_nowait("k", token)
    bucket.acquire_nowait("k")


async def test_concurrency_abandoned_slot_expires_after_the_lease(clock: FakeClock) -> None:
    limiter = ConcurrencyLimiter(1, lease=5.0, clock=clock)
    await MemoryBackend().abandon(limiter, "k")
    assert limiter.active("k") == 1
    clock.advance(4.9)
    with pytest.raises(Limited):
        async with limiter.acquire("k"):
            pass
    clock.advance(0.1)
    async with limiter.acquire("k"):
        assert limiter.active("k") == 1
    assert limiter.active("k") == 0


async def test_concurrency_running_holder_keeps_its_slot_past_the_lease(
    clock: FakeClock,
) -> None:
    limiter = ConcurrencyLimiter(1, lease=5.0, clock=clock)
    async with limiter.acquire("k"):
        clock.advance(3600.0)
        with pytest.raises(Limited):
            async with limiter.acquire("k"):
                pass
    async with limiter.acquire("k"):
        pass


async def test_concurrency_forgets_released_and_abandoned_keys(clock: FakeClock) -> None:
    limiter = ConcurrencyLimiter(2, lease=5.0, clock=clock)
    for i in range(1000):
        async with limiter.acquire(f"done-{i}"):
            pass
    assert len(limiter) == 0

    async def abandon_many() -> None:
        for i in range(1000):
            await limiter.acquire(f"lost-{i}").__aenter__()

    await asyncio.create_task(abandon_many())
    async with limiter.acquire("held"):
        assert len(limiter) == 1001
        clock.advance(5.0)
        for _ in range(1000 // SWEEP_BATCH + 1):
            async with limiter.acquire("hot"):
                pass
        assert len(limiter) == 1  # only the key still held
    assert len(limiter) == 0


async def test_concurrency_context_is_single_use() -> None:
    limiter = ConcurrencyLimiter(5)
    slot = limiter.acquire("k")
    async with slot:
        with pytest.raises(RuntimeError, match="only once"):
            async with slot:
                pass
