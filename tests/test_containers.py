"""gocomm.containers: the stack each configuration builds, shared state, overrides, shutdown."""

from __future__ import annotations

import asyncio
import os
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from redis.asyncio import BlockingConnectionPool, Redis

from gocomm.config import Settings, load_settings
from gocomm.containers import BorrowedSender, build_container
from gocomm.errors import ConfigError, InvalidRecipient, Limited
from gocomm.events import ObservedVendor
from gocomm.failover import FailoverSender, TimeoutFailoverSender
from gocomm.plugins import VendorRegistry, VendorSettings, VendorSpec, hookimpl, load_registry
from gocomm.ratelimit import (
    ConcurrencyLimiter,
    ConcurrencyLimitSender,
    RateLimitSender,
    SlidingWindowLimiter,
    TokenBucketLimiter,
)
from gocomm.ratelimit.redis import RedisSlidingWindowLimiter
from gocomm.recipients import ValidatingSender
from gocomm.retryable import IntervalRetrySender, RetrySender
from gocomm.sender import AsyncCloseable, Receipt
from gocomm.stacks import describe_stack
from gocomm.testing import MemorySender, ScriptedSender
from gocomm.vendors.memory import MemoryVendor

SMS = {"code": "1234"}
PHONE = "+8613800000000"
OTHER_PHONE = "+8613800000001"


class Flaky(AsyncCloseable):
    """A vendor that fails while ``failing`` is set, and records its sends and its closing."""

    failing = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[str, ...]] = []

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        if self.failing:
            raise ConnectionError(f"{self.name} is down")
        self.sent.append(to)
        return Receipt(vendor=self.name)


class FlakySettings(VendorSettings):
    name: str


class FlakyPlugin:
    @hookimpl
    def gocomm_register_vendors(self, registry: VendorRegistry) -> None:
        registry.add(
            VendorSpec(
                "flaky",
                frozenset({"sms", "email"}),
                FlakySettings,
                lambda settings: Flaky(settings.name),
                "a vendor the test can break",
            )
        )


@pytest.fixture
def registry() -> VendorRegistry:
    return load_registry(entry_points=False, plugins=[FlakyPlugin()])


def chain(sender: Any) -> list[Any]:
    """The stages of a resolved stack after the validation stage that starts every one,
    outermost first, borrowed views seen through."""
    assert isinstance(sender, ValidatingSender), sender
    sender = sender.sender
    stages = []
    while sender is not None:
        if isinstance(sender, BorrowedSender):
            sender = sender.target
            continue
        if isinstance(sender, ObservedVendor):  # each vendor emits its calls (gocomm.events)
            sender = sender.sender
            continue
        stages.append(sender)
        sender = getattr(sender, "sender", None)
    return stages


FULL = {
    "sms": {
        "vendors": [{"plugin": "flaky", "name": "a"}, {"plugin": "flaky", "name": "b"}],
        "ratelimit": {"algorithm": "sliding_window", "rate": 1, "window": 60, "key": "sms:{to}"},
        "retry": {"max_attempts": 2, "interval": {"kind": "fixed", "seconds": 0}},
    },
    "email": {"vendors": [{"plugin": "memory"}]},
}


# -- the stacks ------------------------------------------------------------------------------


async def test_stack_from_a_mapping(registry: VendorRegistry) -> None:
    container = build_container(FULL, registry=registry)
    try:
        sender = await container.sms.sender()
        limit, retry, failover = chain(sender)
        assert isinstance(limit, RateLimitSender)
        assert isinstance(limit.limiter, SlidingWindowLimiter)
        assert isinstance(retry, IntervalRetrySender) and retry.max_attempts == 2
        assert isinstance(failover, FailoverSender)
        assert [s.name for s in failover.senders] == ["a", "b"]
        # Each vendor is observed (gocomm.events) through a borrowed view.
        assert all(isinstance(s, ObservedVendor) for s in failover.senders)
        assert all(isinstance(s.sender, BorrowedSender) for s in failover.senders)
        vendors = await container.sms.vendors()
        assert [s.sender.target for s in failover.senders] == vendors
        assert await sender.send("login", SMS, PHONE) == Receipt(vendor="a")
        # A single vendor with no other stage is used directly, behind a borrowed view.
        (email,) = chain(await container.email.sender())
        assert isinstance(email, MemoryVendor)
    finally:
        await container.shutdown_resources()


async def test_a_send_every_vendor_failed_gives_its_quota_back(registry: VendorRegistry) -> None:
    # ratelimit.refund defaults to true: after every vendor failed, the user may ask again.
    container = build_container(FULL, registry=registry)
    try:
        sender = await container.sms.sender()
        [limit] = [s for s in chain(sender) if isinstance(s, RateLimitSender)]
        assert limit.refund is True
        Flaky.failing = True
        try:
            with pytest.raises(Exception, match="failed"):
                await sender.send("login", SMS, PHONE)
        finally:
            Flaky.failing = False
        assert await sender.send("login", SMS, PHONE) == Receipt(vendor="a")
        with pytest.raises(Limited):
            await sender.send("login", SMS, PHONE)
    finally:
        await container.shutdown_resources()


async def test_ratelimit_refund_false_keeps_failed_sends_counted(
    registry: VendorRegistry,
) -> None:
    settings = {"sms": {**FULL["sms"], "ratelimit": {**FULL["sms"]["ratelimit"], "refund": False}}}
    container = build_container(settings, registry=registry)
    try:
        sender = await container.sms.sender()
        [limit] = [s for s in chain(sender) if isinstance(s, RateLimitSender)]
        assert limit.refund is False
        Flaky.failing = True
        try:
            with pytest.raises(Exception, match="failed"):
                await sender.send("login", SMS, PHONE)
        finally:
            Flaky.failing = False
        with pytest.raises(Limited):
            await sender.send("login", SMS, PHONE)
    finally:
        await container.shutdown_resources()
    stack = describe_stack(Settings.model_validate(settings).sms)
    assert stack is not None and stack.detail.endswith("fail closed, no refunds")


async def test_stack_from_yaml_with_interpolation(tmp_path: Path, registry: VendorRegistry) -> None:
    path = tmp_path / "gocomm.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            sms:
              vendors:
                - {plugin: flaky, name: "${PRIMARY}"}
                - {plugin: flaky, name: "${SECONDARY:backup}"}
              failover: {mode: timeout, threshold: 2, attempt_timeout: 5, restore_after: 60}
              ratelimit: {algorithm: concurrency, max_active: 3, key: "{biz}"}
              retry: {max_attempts: 4}
            """
        ),
        encoding="utf-8",
    )
    settings = load_settings(path, environ={"PRIMARY": "main"})
    container = build_container(settings, registry=registry)
    try:
        limit, retry, failover = chain(await container.sms.sender())
        assert isinstance(limit, ConcurrencyLimitSender)
        assert isinstance(limit.limiter, ConcurrencyLimiter)
        assert isinstance(retry, RetrySender) and retry.max_attempts == 4
        assert isinstance(failover, TimeoutFailoverSender)
        assert [s.name for s in failover.senders] == ["main", "backup"]
        receipt = await limit.send("login", SMS, PHONE)
        assert receipt is not None and receipt.vendor == "main"
        # An unconfigured channel is an error only when resolved, and names the channel.
        with pytest.raises(ConfigError, match="email channel is not configured"):
            await container.email.sender()
    finally:
        await container.shutdown_resources()


async def test_every_stack_validates_recipients_before_the_limiter_and_the_vendors(
    registry: VendorRegistry,
) -> None:
    settings = {
        "sms": {
            **FULL["sms"],
            # One send per minute in all: a bad number that took quota would block the next.
            "ratelimit": {"algorithm": "sliding_window", "rate": 1, "window": 60, "key": "sms"},
        },
        "email": {"vendors": [{"plugin": "memory"}]},
    }
    container = build_container(settings, registry=registry)
    try:
        sms = await container.sms.sender()
        assert isinstance(sms, ValidatingSender) and sms.channel == "sms"
        with pytest.raises(InvalidRecipient, match="13800138000"):
            await sms.send("login", SMS, "13800138000")  # no country code: no vendor takes it
        a, b = await container.sms.vendors()
        assert a.sent == [] and b.sent == []  # refused once, before failover or retry
        assert await sms.send("login", SMS, "+86 138-0013-8000") == Receipt(vendor="a")
        assert a.sent == [("+8613800138000",)]  # normalised before the vendors see it
        email = await container.email.sender()
        assert isinstance(email, ValidatingSender) and email.channel == "email"
        with pytest.raises(InvalidRecipient, match="not-an-address"):
            await email.send("welcome", {}, "not-an-address")
    finally:
        await container.shutdown_resources()


async def test_stack_from_environment_variables(registry: VendorRegistry) -> None:
    env = {
        "GOCOMM_SMS__VENDORS": '[{"plugin": "flaky", "name": "env"}]',
        "GOCOMM_SMS__RATELIMIT__ALGORITHM": "token_bucket",
        "GOCOMM_SMS__RATELIMIT__RATE": "2",
        "GOCOMM_SMS__RATELIMIT__BURST": "5",
        "GOCOMM_SMS__RETRY__MAX_ATTEMPTS": "3",
        "GOCOMM_SMS__RETRY__INTERVAL": '{"kind": "uniform", "low": 0, "high": 0}',
    }
    container = build_container(load_settings(environ=env), registry=registry)
    try:
        limit, retry, vendor = chain(await container.sms.sender())
        assert isinstance(limit, RateLimitSender)
        assert isinstance(limit.limiter, TokenBucketLimiter)
        assert isinstance(retry, IntervalRetrySender) and retry.max_attempts == 3
        assert isinstance(vendor, Flaky) and vendor.name == "env"
        with pytest.raises(ConfigError, match="email channel is not configured"):
            await container.email.sender()
        assert container.config.sms.retry.max_attempts() == 3
    finally:
        await container.shutdown_resources()


async def test_embedded_default_builds_console_stacks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("GOCOMM_")]:
        monkeypatch.delenv(name)
    container = build_container()
    try:
        for channel in (container.email, container.sms):
            limit, vendor = chain(await channel.sender())
            assert isinstance(limit, RateLimitSender)
            assert isinstance(limit.limiter, SlidingWindowLimiter)
            assert type(vendor).__name__ == "ConsoleVendor"
    finally:
        await container.shutdown_resources()


def test_bad_mapping_is_refused_before_anything_is_built(registry: VendorRegistry) -> None:
    with pytest.raises(ConfigError, match=r"sms\.vendors\[0\]\.name \(the settings\): is required"):
        build_container({"sms": {"vendors": [{"plugin": "flaky"}]}}, registry=registry)
    with pytest.raises(ConfigError, match=r"sms\.retry\.max_attempts \(the settings\)"):
        build_container({"sms": {"vendors": [{"plugin": "memory"}], "retry": {"max_attempts": 0}}})
    with pytest.raises(TypeError, match="mapping"):
        build_container(["not", "settings"])  # type: ignore[arg-type]


# -- shared state ----------------------------------------------------------------------------


async def test_resolves_share_one_failover_index_and_one_limiter(registry: VendorRegistry) -> None:
    container = build_container(FULL, registry=registry)
    try:
        first = await container.sms.sender()
        second = await container.sms.sender()
        assert first is not second
        assert chain(first)[0].limiter is chain(second)[0].limiter
        a, b = await container.sms.vendors()
        a.failing = True
        assert await first.send("login", SMS, PHONE) == Receipt(vendor="b")
        failover = await container.sms.failover()
        assert failover.current_index == 1
        # The second stack starts where the first one left the index, and shares its quota.
        a.failing = False
        assert await second.send("login", SMS, OTHER_PHONE) == Receipt(vendor="b")
        with pytest.raises(Limited):
            await second.send("login", SMS, PHONE)
        assert b.sent == [(PHONE,), (OTHER_PHONE,)]
    finally:
        await container.shutdown_resources()


async def test_concurrent_first_resolves_build_one_stack(registry: VendorRegistry) -> None:
    container = build_container(FULL, registry=registry)
    try:
        senders = await asyncio.gather(*(container.sms.sender() for _ in range(5)))
        assert len({id(chain(s)[-1]) for s in senders}) == 1
        assert len({id(chain(s)[0].limiter) for s in senders}) == 1
    finally:
        await container.shutdown_resources()


async def test_closing_a_resolved_stack_closes_nothing_shared(registry: VendorRegistry) -> None:
    container = build_container(FULL, registry=registry)
    try:
        sender = await container.sms.sender()
        async with sender:
            await sender.send("login", SMS, PHONE)
        assert sender.closed
        vendors = await container.sms.vendors()
        assert not any(v.closed for v in vendors)
        failover = await container.sms.failover()
        assert not failover.closed
        again = await container.sms.sender()
        assert await again.send("login", SMS, OTHER_PHONE) == Receipt(vendor="a")
    finally:
        await container.shutdown_resources()


async def test_shutdown_closes_vendors_and_timers_and_resets_singletons(
    registry: VendorRegistry,
) -> None:
    settings = {
        "sms": {
            "vendors": [{"plugin": "flaky", "name": "a"}, {"plugin": "flaky", "name": "b"}],
            "failover": {"mode": "timeout", "threshold": 1, "restore_after": 3600},
            "ratelimit": {"algorithm": "sliding_window", "rate": 1, "window": 60},
        }
    }
    container = build_container(settings, registry=registry)
    sender = await container.sms.sender()
    vendors = await container.sms.vendors()
    failover = await container.sms.failover()
    limiter = chain(sender)[0].limiter
    await container.shutdown_resources()
    assert all(v.closed for v in vendors)
    assert failover.closed
    assert not container.sms.vendors.initialized
    assert not container.sms.failover.initialized
    # Built anew on the next resolve, with fresh limiter state.
    fresh = await container.sms.sender()
    assert chain(fresh)[0].limiter is not limiter
    assert await fresh.send("login", SMS, PHONE) == Receipt(vendor="a")
    await container.shutdown_resources()
    await container.shutdown_resources()  # idempotent


async def test_a_failing_vendor_factory_closes_the_vendors_built_before_it() -> None:
    built: list[Flaky] = []

    def make(settings: FlakySettings) -> Flaky:
        if settings.name == "broken":
            raise RuntimeError("the broken vendor cannot be built")
        built.append(Flaky(settings.name))
        return built[-1]

    class BuildOrFailPlugin:
        @hookimpl
        def gocomm_register_vendors(self, registry: VendorRegistry) -> None:
            registry.add(VendorSpec("flaky", frozenset({"sms"}), FlakySettings, make))

    settings = {"sms": {"vendors": [{"plugin": "flaky", "name": n} for n in ("a", "broken")]}}
    registry = load_registry(entry_points=False, plugins=[BuildOrFailPlugin()])
    container = build_container(settings, registry=registry)
    with pytest.raises(RuntimeError, match="broken vendor"):
        await container.sms.sender()
    assert [v.name for v in built] == ["a"]
    assert built[0].closed
    await container.shutdown_resources()


async def test_init_resources_builds_only_what_is_configured(registry: VendorRegistry) -> None:
    container = build_container(
        {"redis": {"url": "redis://127.0.0.1:1/0"}, "sms": FULL["sms"]}, registry=registry
    )
    try:
        await container.init_resources()
        assert container.sms.vendors.initialized and container.sms.failover.initialized
        assert not container.email.vendors.initialized
        assert not container.redis.initialized  # the limit is in memory
    finally:
        await container.shutdown_resources()


# -- overrides -------------------------------------------------------------------------------


async def test_override_the_vendors_of_one_channel(registry: VendorRegistry) -> None:
    container = build_container(FULL, registry=registry)
    broken, spare = ScriptedSender([ConnectionError("down")]), MemorySender("spare")
    try:
        with container.sms.vendors.override([broken, spare]):
            sender = await container.sms.sender()
            assert await sender.send("login", SMS, PHONE) == Receipt("spare", ("spare-1",))
        (email,) = chain(await container.email.sender())
        assert isinstance(email, MemoryVendor)  # the other channel is untouched
    finally:
        await container.shutdown_resources()
    # An override's objects belong to whoever made them: the container does not close them.
    assert not broken.closed and not spare.closed


async def test_override_one_stage(registry: VendorRegistry) -> None:
    container = build_container(FULL, registry=registry)
    stand_in = MemorySender("stand-in")
    try:
        with container.sms.failover.override(stand_in):
            limit, retry, failover = chain(await container.sms.sender())
            assert failover is stand_in
            assert isinstance(limit, RateLimitSender) and isinstance(retry, IntervalRetrySender)
        # The retry stage replaced by a provider of our own: the rest of the stack stays.
        with container.sms.retry.override(providers.Factory(RetrySender, stand_in, 5)):
            limit, retry, failover = chain(await container.sms.sender())
            assert isinstance(retry, RetrySender) and retry.max_attempts == 5
            assert retry.sender is stand_in
            await limit.send("login", SMS, PHONE)
        assert len(stand_in.sent) == 1
    finally:
        await container.shutdown_resources()
    assert not stand_in.closed


async def test_override_applies_after_shutdown(registry: VendorRegistry) -> None:
    container = build_container(FULL, registry=registry)
    first = chain(await container.sms.sender())[-1]
    assert isinstance(first, FailoverSender)
    await container.shutdown_resources()
    outbox = MemorySender("outbox")
    with container.sms.vendors.override([outbox]):
        sender = await container.sms.sender()
        await sender.send("login", SMS, PHONE)
        await container.shutdown_resources()
    assert [m.to for m in outbox.sent] == [(PHONE,)]


async def test_plain_override_of_a_channel_without_configuration() -> None:
    container = build_container({"sms": {"vendors": [{"plugin": "memory"}]}})
    outbox = MemorySender("outbox")
    with container.email.vendors.override([outbox]):
        sender = await container.email.sender()
        assert chain(sender) == [outbox]
    await container.shutdown_resources()


async def test_awaitable_under_a_plain_object_override() -> None:
    container = build_container({"sms": {"vendors": [{"plugin": "memory"}]}})
    stand_in = MemorySender("stand-in")
    with container.sms.sender.override(stand_in):
        assert await container.sms.sender() is stand_in
    assert not container.sms.vendors.initialized  # nothing was built for it
    await container.shutdown_resources()


@pytest.fixture
def scripted_sms(registry: VendorRegistry) -> Iterator[tuple[Any, ScriptedSender]]:
    """A container whose SMS vendors are replaced for the whole test, by a fixture."""
    container = build_container(FULL, registry=registry)
    scripted = ScriptedSender([ConnectionError("first call fails")])
    with container.sms.vendors.override([scripted]):
        yield container, scripted


async def test_override_from_a_fixture(scripted_sms: tuple[Any, ScriptedSender]) -> None:
    container, scripted = scripted_sms
    try:
        sender = await container.sms.sender()
        receipt = await sender.send("login", SMS, PHONE)
        assert receipt is not None and receipt.attempts == 2  # the retry stage retried it
        assert len(scripted.calls) == 2
    finally:
        await container.shutdown_resources()


# -- Redis -----------------------------------------------------------------------------------


@pytest.fixture
def redis_settings(redis_url: str) -> tuple[dict[str, Any], str]:
    """Settings for a Redis limit whose client connections carry a name of this test's own."""
    name = f"gocomm-ctest-{uuid.uuid4().hex[:8]}"
    separator = "&" if "?" in redis_url else "?"
    settings = {
        "redis": {"url": f"{redis_url}{separator}client_name={name}", "max_connections": 4},
        "sms": {
            "vendors": [{"plugin": "memory"}],
            "ratelimit": {
                "backend": "redis",
                "algorithm": "sliding_window",
                "rate": 1,
                "window": 60,
                "key": f"{name}:{{to}}",
            },
        },
    }
    return settings, name


async def connections_named(redis_url: str, name: str) -> int:
    observer = Redis.from_url(redis_url)
    try:
        clients = await observer.client_list()
        return sum(1 for client in clients if client.get("name") == name)
    finally:
        await observer.aclose()


async def test_redis_backend_shares_a_client_and_shutdown_closes_it(
    redis_url: str, redis_settings: tuple[dict[str, Any], str]
) -> None:
    settings, name = redis_settings
    container = build_container(settings)
    try:
        await container.init_resources()
        assert container.redis.initialized
        first = await container.sms.sender()
        second = await container.sms.sender()
        assert isinstance(chain(first)[0].limiter, RedisSlidingWindowLimiter)
        assert chain(first)[0].limiter is chain(second)[0].limiter
        client = await container.redis()
        assert chain(first)[0].limiter.redis is client
        pool = client.connection_pool
        assert isinstance(pool, BlockingConnectionPool)
        assert pool.max_connections == 4
        assert pool.connection_kwargs["retry"].get_retries() == 0  # no retry of a timeout
        assert pool.connection_kwargs["socket_timeout"] == 1.0
        await first.send("login", SMS, PHONE)
        with pytest.raises(Limited):
            await second.send("login", SMS, PHONE)
        assert await connections_named(redis_url, name) >= 1
    finally:
        await container.shutdown_resources()
    assert not container.redis.initialized
    assert await connections_named(redis_url, name) == 0


async def test_no_redis_client_without_a_redis_backend(registry: VendorRegistry) -> None:
    container = build_container(
        {"redis": {"url": "redis://127.0.0.1:1/0"}, **FULL}, registry=registry
    )
    try:
        await (await container.sms.sender()).send("login", SMS, PHONE)
        assert not container.redis.initialized
    finally:
        await container.shutdown_resources()
