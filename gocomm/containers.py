"""The dependency-injector containers that wire each channel's stack from :class:`Settings`.

Wiring only: what each stage does lives in :mod:`gocomm.ratelimit`, :mod:`gocomm.retryable`,
:mod:`gocomm.failover` and the vendors. Each channel declares its stack outermost first::

    sender    Factory    ValidatingSender: every recipient checked before anything else
    ratelimit Factory    the rate limit stage (RateLimitSender / ConcurrencyLimitSender)
    retry     Factory    RetrySender / IntervalRetrySender
    routing   Resource   RoutingSender over the routes and the failover stage (or the latter)
    failover  Resource   Failover / TimeoutFailover / WeightedFailoverSender (or the single
                         vendor), each vendor in a BreakerSender when a breaker is configured
    vendors   Resource   the vendors, built by their plugins' factories
    limiter   Singleton  the limiter the rate limit stage asks (in memory or on Redis)

The state stacks share (vendors, failover index and timer, limiters, the Redis client) lives in
Singletons and Resources, so every ``await container.sms.sender()`` shares one failover index
and one limiter, while the wrappers are made fresh per resolve and own nothing shared: closing a
resolved stack closes nothing that another stack uses. ``await container.shutdown_resources()``
closes the vendors, timers and Redis client and resets the singletons.

``tasks = await container.queue()`` is the application's side of the queue (a started
:class:`~gocomm.tasks.GocommTasks`; ``await tasks.enqueue(...)``), closed at shutdown too.
``await container.idempotency_store()`` is the Redis store of idempotency keys that sends made
with a key outside the queue use (``SyncClient.send(..., idempotency_key=...)``).

Tests override one piece::

    with container.sms.vendors.override([ScriptedSender([TimeoutError]), MemorySender()]):
        sender = await container.sms.sender()        # failover over the two test doubles

Overrides apply to the next resolve of a Resource: before the first resolve or after
``shutdown_resources()``.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers

from gocomm.channels import CHANNELS
from gocomm.config import (
    BreakerSettings,
    ChannelSettings,
    ErrorFailover,
    ExponentialInterval,
    FixedInterval,
    Settings,
    TimeoutFailover,
    UniformInterval,
    VendorEntry,
    WeightedFailover,
    load_settings,
    uses_redis,
)
from gocomm.errors import ConfigError
from gocomm.events import ObservedVendor
from gocomm.sender import (
    Receipt,
    Sender,
    Stage,
    aclose_all,
    send_to_of,
    vendor_name,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gocomm.health import CircuitBreaker
    from gocomm.idempotency import IdempotencyStore
    from gocomm.plugins import VendorRegistry
    from gocomm.ratelimit import ActiveLimiter, Limiter
    from gocomm.tasks import GocommTasks

__all__ = ["BorrowedSender", "ChannelContainer", "Container", "build_container"]


class BorrowedSender(Stage[Any]):
    """A non-owning view of a shared sender: sends through it; closing it closes nothing.

    The container hands these out so that closing one resolved stack never closes the vendors
    or failover state that every other stack shares; those close with the container. A send
    is handed straight to the target's (no coroutine of its own).
    """

    def __init__(self, target: Sender[Any]) -> None:
        self._target = target
        self._send_target = send_to_of(target)

    @property
    def target(self) -> Sender[Any]:
        """The shared sender."""
        return self._target

    @property
    def name(self) -> str:
        """The shared sender's name, so that logs name the vendor, not the view."""
        return vendor_name(self.target)

    def send_to(
        self, biz: str, args: Any, to: tuple[str, ...]
    ) -> Coroutine[Any, Any, Receipt | None]:
        return self._send_target(biz, args, to)

    def __repr__(self) -> str:
        return f"BorrowedSender({self.target!r})"


def _borrow(sender: Sender[Any]) -> BorrowedSender:
    return sender if isinstance(sender, BorrowedSender) else BorrowedSender(sender)


# ------------------------------------------------------------------------- provider functions


def _not_configured(channel: str) -> ConfigError:
    return ConfigError(
        f"the {channel} channel is not configured: add the `{channel}:` section with `vendors` "
        f"to the configuration, or set GOCOMM_{channel.upper()}__VENDORS (e.g. "
        '\'[{"plugin": "console"}]\')'
    )


async def _open_vendors(
    channel: str, settings: ChannelSettings | None, registry: VendorRegistry
) -> AsyncIterator[list[Sender[Any]]]:
    """The channel's vendors, made by their plugins' factories; closed at shutdown."""
    if settings is None:
        raise _not_configured(channel)
    vendors: list[Sender[Any]] = []
    try:  # closes the vendors at shutdown, or those built before one that failed to build
        _build_vendors(f"{channel}.vendors", settings.vendors, registry, vendors)
        yield vendors
    finally:
        await aclose_all(*vendors)


def _build_vendors(
    where: str, entries: Sequence[VendorEntry], registry: VendorRegistry, into: list[Sender[Any]]
) -> None:
    """Build each vendor of ``entries`` into ``into`` (so the caller closes those built even
    when a later one fails)."""
    for index, entry in enumerate(entries):
        if entry.settings is None:
            raise ConfigError(
                f"{where}[{index}] ({entry.plugin}) was not validated by its "
                "vendor's settings model: build the container with build_container()"
            )
        into.append(registry.get(entry.plugin).factory(entry.settings))


async def _open_failover(
    channel: str,
    vendors: Sequence[Sender[Any]],
    settings: ChannelSettings | None,
    redis: Callable[[], Awaitable[Redis]],
) -> AsyncIterator[Sender[Any]]:
    """The failover stage over ``vendors``; a single vendor in ``error`` mode is used directly.

    The strategy sees borrowed views of the vendors: closing it (at shutdown) stops its
    restore timer and leaves the vendors to their own resource, which may be an override.
    """
    senders = list(vendors)
    if not senders:
        raise ConfigError(f"the {channel} channel has no vendors: list at least one")
    mode = settings.failover if settings is not None else ErrorFailover()
    breaker = settings.breaker if settings is not None else None
    entries = settings.vendors if settings is not None else []
    breakers: list[object] = []
    stage: Sender[Any] | None = None
    try:
        where = f"{channel}.vendors"
        stage = await _failover_stage(where, senders, entries, mode, breaker, redis, breakers)
        yield stage
    finally:
        # After the stage, a Redis breaker sends the outcomes it still holds.
        await aclose_all(stage, *breakers)


async def _failover_stage(
    where: str,
    senders: list[Sender[Any]],
    entries: Sequence[VendorEntry],
    mode: ErrorFailover | TimeoutFailover | WeightedFailover,
    breaker_settings: BreakerSettings | None,
    redis: Callable[[], Awaitable[Redis]],
    breakers: list[object],
) -> Sender[Any]:
    """Borrowed views of ``senders``, each in a breaker if configured, under ``mode``.

    Closing the result closes no vendor; the breaker made is added to ``breakers``, for the
    caller to close after the stage. Breakers are named by the vendor's place in the
    configuration (``sms.vendors[0].aliyun``), which is how processes share a circuit.
    """
    from gocomm.failover import FailoverSender, TimeoutFailoverSender
    from gocomm.health import BreakerSender
    from gocomm.routing import WeightedFailoverSender

    stages: list[Sender[Any]] = [BorrowedSender(sender) for sender in senders]
    if breaker_settings is not None:
        breaker = await _make_breaker(breaker_settings, redis)
        breakers.append(breaker)
        names = [
            f"{where}[{i}].{entries[i].plugin if i < len(entries) else vendor_name(sender)}"
            for i, sender in enumerate(senders)
        ]
        stages = [
            BreakerSender(stage, breaker, name=name)
            for stage, name in zip(stages, names, strict=True)
        ]
    # Outside the breaker: a call it refuses is an attempt too (CircuitOpen), seen in traces.
    stages = [
        ObservedVendor(stage, vendor=vendor_name(sender))
        for stage, sender in zip(stages, senders, strict=True)
    ]
    if isinstance(mode, ErrorFailover) and len(stages) == 1:
        return stages[0]
    strategy: FailoverSender[Any] | TimeoutFailoverSender[Any]
    if isinstance(mode, ErrorFailover):
        strategy = FailoverSender(stages)
    elif isinstance(mode, WeightedFailover):
        strategy = WeightedFailoverSender(stages, mode.weights)
    else:
        strategy = TimeoutFailoverSender(
            stages,
            mode.threshold,
            restore_after=mode.restore_after,
            attempt_timeout=mode.attempt_timeout,
        )
    return strategy


async def _make_breaker(
    settings: BreakerSettings, redis: Callable[[], Awaitable[Redis]]
) -> CircuitBreaker:
    """The circuit breaker of one vendor list; the Redis client is asked for only when needed."""
    from gocomm.health import MemoryCircuitBreaker, RedisCircuitBreaker

    numbers = settings.model_dump(exclude={"backend"})
    if settings.backend == "memory":
        return MemoryCircuitBreaker(**numbers)
    return RedisCircuitBreaker(await redis(), **numbers)


async def _open_routing(
    channel: str,
    failover: Sender[Any],
    settings: ChannelSettings | None,
    registry: VendorRegistry,
    redis: Callable[[], Awaitable[Redis]],
) -> AsyncIterator[Sender[Any]]:
    """The routing stage: each route's own vendors and failover stage, and the channel's
    failover stage as the default route; without routes, the failover stage itself.

    The routes' vendors are built and closed here; the default route is borrowed.
    """
    from gocomm.routing import Route, RoutingSender

    if settings is None or not settings.routes:
        yield failover
        return
    vendors: list[Sender[Any]] = []
    stages: list[Sender[Any]] = []
    breakers: list[object] = []
    try:  # closes what was built, even when a later route fails to build
        routes = []
        for index, route in enumerate(settings.routes):
            where = f"{channel}.routes[{index}].vendors"
            start = len(vendors)
            _build_vendors(where, route.vendors, registry, vendors)
            stage = await _failover_stage(
                where,
                vendors[start:],
                route.vendors,
                route.failover,
                route.breaker,
                redis,
                breakers,
            )
            stages.append(stage)
            routes.append(Route(tuple(route.prefixes), stage))
        yield RoutingSender(routes, default=_borrow(failover))
    finally:
        await aclose_all(*stages, *breakers, *vendors)


async def _make_limiter(
    settings: ChannelSettings | None, redis: Callable[[], Awaitable[Redis]]
) -> Limiter | ActiveLimiter | None:
    """The limiter of the rate limit stage; the Redis client is asked for only when needed."""
    limit = settings.ratelimit if settings is not None else None
    if limit is None:
        return None
    return limit.limiter(await redis() if limit.backend == "redis" else None)


def _interval(
    interval: FixedInterval | UniformInterval | ExponentialInterval,
) -> Callable[[int], float]:
    from gocomm.retryable import exponential, fixed, uniform

    if isinstance(interval, FixedInterval):
        return fixed(interval.seconds)
    if isinstance(interval, UniformInterval):
        return uniform(interval.low, interval.high)
    return exponential(interval.initial, interval.maximum, interval.multiplier, interval.jitter)


def _retry_stage(inner: Sender[Any], settings: ChannelSettings | None) -> Sender[Any]:
    """A fresh retry stage over a borrowed view of the shared failover stage."""
    from gocomm.retryable import IntervalRetrySender, RetrySender

    view = _borrow(inner)
    retry = settings.retry if settings is not None else None
    if retry is None:
        return view
    if retry.interval is None:
        return RetrySender(view, retry.max_attempts)
    return IntervalRetrySender(
        view, retry.max_attempts, _interval(retry.interval), max_delay=retry.max_delay
    )


def _rate_limit_stage(
    inner: Sender[Any], limiter: Any, settings: ChannelSettings | None
) -> Sender[Any]:
    """The outermost stage: a fresh rate (or concurrency) limit over ``inner``."""
    limit = settings.ratelimit if settings is not None else None
    if limit is None or limiter is None:
        return _borrow(inner)
    # Borrowed even when it is this resolve's own retry stage: an override may have put a
    # shared object there, and the retry stage owns nothing that needs closing.
    return limit.stage(_borrow(inner), limiter)


def _validating_stage(inner: Sender[Any], channel: str, telemetry: object = None) -> Sender[Any]:
    """The first stage of every stack: a bad recipient is refused before any quota is taken,
    any retry waits or any vendor sees it. (``telemetry`` is only resolved: the exporters
    listen from the first sender on.)"""
    from gocomm.recipients import ValidatingSender

    if channel not in CHANNELS:
        raise ConfigError(f"unknown channel {channel!r}: gocomm has the email and sms channels")
    return ValidatingSender(_borrow(inner), "email" if channel == "email" else "sms")


async def _open_redis(settings: Settings) -> AsyncIterator[Redis]:
    """The Redis client of every Redis limiter: a blocking pool, no retry of a timed-out
    command (a retried rate limit decision could spend quota twice)."""
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    if settings.redis is None:
        raise ConfigError(
            "a Redis rate limit needs a `redis` section (at least its url, or GOCOMM_REDIS__URL)"
        )
    redis = settings.redis
    pool = BlockingConnectionPool.from_url(
        redis.connection_url(),
        max_connections=redis.max_connections,
        socket_timeout=redis.socket_timeout,
        socket_connect_timeout=redis.socket_timeout,
    )
    # Set after from_url so that no query parameter of the URL can turn retries back on.
    pool.connection_kwargs.update(retry=Retry(NoBackoff(), 0), retry_on_error=[])
    pool.connection_kwargs.pop("retry_on_timeout", None)
    client = Redis.from_pool(pool)  # the client owns the pool: aclose() disconnects it
    try:
        yield client
    finally:
        await client.aclose()


async def _open_queue(settings: Settings) -> AsyncIterator[GocommTasks]:
    """The application's handle on the queue (``queue`` section; default the in-process
    ``memory`` broker): started here, stopped at shutdown. Needs ``gocomm[taskiq]``."""
    try:
        from gocomm.tasks import GocommTasks, make_broker
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ConfigError(
            f"the queue needs taskiq: pip install 'gocomm[taskiq]' ({exc})"
        ) from exc
    tasks = GocommTasks(make_broker(settings), settings=settings)
    await tasks.startup()
    try:
        yield tasks
    finally:
        await tasks.shutdown()


async def _open_idempotency_store(
    settings: Settings, redis: Callable[[], Awaitable[Redis]]
) -> AsyncIterator[IdempotencyStore]:
    """The idempotency keys of keyed sends made outside the queue, in Redis so that every
    process shares them: the queue's own Redis when it has one (the workers keep their keys
    there, under the same prefix), else the `redis` section's client."""
    from gocomm.idempotency import RedisIdempotencyStore

    queue = settings.queue
    if queue is not None and queue.broker == "redis_stream" and queue.url is not None:
        from redis.asyncio import Redis

        client = Redis.from_url(queue.url.get_secret_value())
        try:
            yield RedisIdempotencyStore(client)
        finally:
            await client.aclose()
        return
    if settings.redis is None:
        raise ConfigError(
            "a send with an idempotency key needs a store that every process shares: configure "
            "the `redis` section (at least its url, or GOCOMM_REDIS__URL). gocomm keeps no keys "
            "in memory here: each process (a Celery or gunicorn worker) would have its own, and "
            "a message redelivered to another process would be sent again"
        )
    yield RedisIdempotencyStore(await redis())


async def _open_telemetry(settings: Settings) -> AsyncIterator[list[Any]]:
    """The exporters the ``telemetry`` section names, listening from the first resolved
    sender until shutdown (gocomm.telemetry)."""
    from gocomm.telemetry.install import install_telemetry

    installed = install_telemetry(settings.telemetry)
    try:
        yield installed
    finally:
        for instrumentation in reversed(installed):
            instrumentation.uninstrument()


# --------------------------------------------------------------------------------- containers


class ChannelContainer(containers.DeclarativeContainer):
    """One channel's stack, outermost first: sender (validation) → ratelimit → retry →
    routing → failover → vendors.

    Declared once; :class:`Container` holds two, ``email`` and ``sms``.
    """

    name = providers.Object("channel")
    settings: providers.Object[ChannelSettings | None] = providers.Object(None)
    registry: providers.Dependency[VendorRegistry] = providers.Dependency()
    redis: providers.Dependency[Redis] = providers.Dependency()
    telemetry: providers.Dependency[list[Any]] = providers.Dependency()

    vendors = providers.Resource(_open_vendors, name, settings, registry)
    failover = providers.Resource(_open_failover, name, vendors, settings, redis.provider)
    routing = providers.Resource(
        _open_routing, name, failover, settings, registry, redis.provider
    )
    limiter = providers.Singleton(_make_limiter, settings, redis.provider)
    retry = providers.Factory(_retry_stage, routing, settings)
    ratelimit = providers.Factory(_rate_limit_stage, retry, limiter, settings)
    sender = providers.Factory(_validating_stage, ratelimit, name, telemetry)


class _ContainerInstance(containers.DynamicContainer):
    """What ``Container()`` returns: a dynamic container whose shutdown is always awaitable."""

    async def shutdown_resources(self, resource_type: Any = None) -> None:
        """Close every vendor, failover timer and the Redis client; reset the singletons.

        Channels close before the Redis client their limiters use. Every resource is closed
        even when one fails; then the failures are raised.
        """
        errors: list[Exception] = []
        channels: list[Any] = [self.email, self.sms]
        for channel in channels:
            for resource in (channel.routing, channel.failover, channel.vendors):
                await _shutdown(resource, errors)
        await _shutdown(self.queue, errors)
        await _shutdown(self.idempotency_store, errors)
        await _shutdown(self.telemetry, errors)
        await _shutdown(self.redis, errors)
        self.reset_singletons()  # in-memory limiter state goes with them
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup("several resources failed to close", errors)

    async def init_resources(self, resource_type: Any = None) -> None:
        """Build what the configuration uses now rather than at the first send: each configured
        channel's vendors and failover stage, and the Redis client if a limit needs it."""
        settings: Settings = self.settings()
        for name in CHANNELS:
            channel = settings.channel(name)
            if channel is None:
                continue  # resolving it would raise; it may be overridden before use
            await getattr(self, name).routing()
            if uses_redis(channel):
                await self.redis()

    async def aclose(self) -> None:
        """The same as :meth:`shutdown_resources`, for ``aclose_all`` and exit stacks."""
        await self.shutdown_resources()


async def _shutdown(resource: Any, errors: list[Exception]) -> None:
    if not resource.initialized:
        return
    try:
        result = resource.shutdown()
        if inspect.isawaitable(result):
            await result
    except Exception as exc:  # close the others first, then report
        errors.append(exc)


class Container(containers.DeclarativeContainer):
    """The whole application: ``config``, ``registry``, ``redis`` and the ``email`` and ``sms``
    channel containers. Build it with :func:`build_container`."""

    instance_type = _ContainerInstance

    settings = providers.Object(Settings())
    config = providers.Configuration()
    registry: providers.Object[VendorRegistry | None] = providers.Object(None)
    redis = providers.Resource(_open_redis, settings)
    #: ``tasks = await container.queue()``: enqueue sends for workers (gocomm.tasks).
    queue = providers.Resource(_open_queue, settings)
    #: ``await container.idempotency_store()``: the Redis store of idempotency keys that
    #: ``SyncClient.send(..., idempotency_key=...)`` uses (gocomm.idempotency).
    idempotency_store = providers.Resource(_open_idempotency_store, settings, redis.provider)
    #: The exporters of the ``telemetry`` section (gocomm.telemetry), installed with the
    #: first sender resolved and removed at shutdown.
    telemetry = providers.Resource(_open_telemetry, settings)

    email = providers.Container(
        ChannelContainer,
        name="email",
        settings=settings.provided.email,
        registry=registry,
        redis=redis,
        telemetry=telemetry,
    )
    sms = providers.Container(
        ChannelContainer,
        name="sms",
        settings=settings.provided.sms,
        registry=registry,
        redis=redis,
        telemetry=telemetry,
    )

    if TYPE_CHECKING:
        # What the instance (a _ContainerInstance) offers, for type checkers: dependency-
        # injector's stubs type shutdown_resources() as maybe-awaitable; ours always is.
        async def shutdown_resources(self, resource_type: Any = None) -> None: ...
        async def init_resources(self, resource_type: Any = None) -> None: ...
        async def aclose(self) -> None: ...

    def __new__(cls, **overriding_providers: Any) -> Any:
        container = super().__new__(cls, **overriding_providers)
        # Awaitable always, even when an override gives plain objects.
        provider: providers.Provider[Any]
        for provider in container.traverse(types=_ASYNC_PROVIDERS):
            provider.enable_async_mode()
        return container


_ASYNC_PROVIDERS = [providers.Resource, providers.Factory, providers.Singleton]


def build_container(
    settings: Settings | Mapping[str, Any] | None = None,
    *,
    registry: VendorRegistry | None = None,
) -> Container:
    """A :class:`Container` for ``settings``.

    ``settings`` is a :class:`Settings`, a plain mapping (validated the same way, without
    environment or interpolation) or None (then :func:`~gocomm.config.load_settings`). Vendor
    entries are validated against ``registry``'s models (default: every installed plugin).
    Raises :class:`ConfigError` for a bad configuration; nothing is connected until a sender is
    resolved.
    """
    if settings is None:
        settings = load_settings()
    elif isinstance(settings, Mapping):
        settings = Settings.from_mapping(settings)
    elif not isinstance(settings, Settings):
        raise TypeError(
            f"settings must be Settings, a mapping or None, not {type(settings).__name__}"
        )
    if registry is None:
        from gocomm.plugins import load_registry

        registry = load_registry()
    bound = settings.bind(registry)
    from gocomm.telemetry.install import check_telemetry

    check_telemetry(bound.telemetry)  # a missing extra is named now, before any send
    # Container() is a _ContainerInstance, typed by Container's declarations above.
    container: Container = Container()
    container.settings.set_provides(bound)
    container.registry.set_provides(registry)
    container.config.from_dict(bound.plain_dict())
    return container
