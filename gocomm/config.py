"""The configuration: pydantic models for every section, and :func:`load_settings`.

The models are the source of truth for what a configuration may say (DESIGN §8)::

    redis:  {url, max_connections, socket_timeout}        only needed by a Redis rate limit
    email / sms:                                           one section per channel
      vendors:   [{plugin: NAME, ...that vendor's keys}]  failover order
      failover:  {mode: error} | {mode: timeout, threshold, restore_after, attempt_timeout}
                 | {mode: weighted, weights}
      breaker:   {backend, failure_ratio, minimum_calls, window, open_for, half_open_calls}
      routes:    [{prefixes, vendors, failover, breaker}]        by number prefix
      ratelimit: {backend, algorithm, key, fail_open, ...the algorithm's numbers}
      retry:     {max_attempts, interval: {kind: fixed|uniform|exponential, ...}, max_delay}

:func:`load_settings` reads YAML (with ``${VAR}`` / ``${VAR:default}`` interpolation), applies
``GOCOMM_<SECTION>__<KEY>`` environment overrides and validates. Every error is a
:class:`~gocomm.errors.ConfigError` naming the field, where it was set (file and line, or the
environment variable) and what is allowed, and never the value: values may be secrets.
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Mapping
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, get_args, get_origin
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from gocomm._config_sources import (
    Path,
    SourceMap,
    config_error,
    describe_source,
    env_overrides,
    has_override_variables,
    read_yaml,
    scrubbed_problems,
)
from gocomm.channels import CHANNELS
from gocomm.errors import ConfigError
from gocomm.masking import MASK, SecretUrl, mask_value, unparsed_userinfo
from gocomm.ratelimit.keys import check_key_template

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from gocomm.plugins import VendorRegistry
    from gocomm.ratelimit import ActiveLimiter, Limiter
    from gocomm.sender import Sender

__all__ = [
    "CHANNELS",
    "BreakerSettings",
    "ChannelSettings",
    "ConcurrencyLimit",
    "ErrorFailover",
    "ExponentialInterval",
    "FixedInterval",
    "PrometheusSettings",
    "QueueSettings",
    "RedisSettings",
    "RetrySettings",
    "RouteSettings",
    "SecretUrl",
    "Settings",
    "SlidingWindowLimit",
    "TelemetrySettings",
    "TimeoutFailover",
    "TokenBucketLimit",
    "UniformInterval",
    "VendorEntry",
    "WeightedFailover",
    "load_settings",
    "render_masked",
    "uses_redis",
]


class _Section(BaseModel):
    """Base of every section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------- redis


def _check_redis_url(url: str) -> None:
    """Refuse a Redis URL that does not parse as a whole; the message never quotes it."""
    if unparsed_userinfo(url):
        raise ValueError(
            "the user or password in the URL holds '/', '?' or '#', which end the address "
            "part: percent-encode them (%2F, %3F, %23; '%' itself as %25) or give the password "
            "as redis.password"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError:
        raise ValueError(
            "the port in the URL is not a number (a password with ':' or '@' must be "
            "percent-encoded, or given as redis.password)"
        ) from None


class RedisSettings(_Section):
    """The Redis server that rate limits with ``backend: redis`` share."""

    url: SecretUrl = Field(
        default=SecretUrl("redis://localhost:6379/0"),
        description="Server URL: `redis://[[user]:password@]host[:port][/db]`, `rediss://` "
        "for TLS or `unix://path`. A password in it is masked wherever it is shown; "
        "percent-encode `/`, `?`, `#`, `@`, `:` and `%` in it, or use `password`.",
    )
    password: SecretStr | None = Field(
        default=None,
        description="The Redis password, any characters, when it is not in `url` (e.g. "
        "`${REDIS_PASSWORD}` of a generated password). Never shown.",
    )
    max_connections: int = Field(
        default=50,
        ge=1,
        description="Size of the connection pool; callers beyond it wait for a free connection.",
    )
    socket_timeout: float = Field(
        default=1.0,
        gt=0,
        description="Seconds a connect or a command may take; a timed-out command is not retried.",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: SecretUrl) -> SecretUrl:
        _check_redis_url(url.get_secret_value())
        return url

    @model_validator(mode="after")
    def _one_password(self) -> RedisSettings:
        if self.password is not None and urlsplit(self.url.get_secret_value()).password:
            raise ValueError("give the password either in url or as password, not both")
        return self

    def connection_url(self) -> str:
        """The URL to connect with: ``url``, with ``password`` percent-encoded into it."""
        url = self.url.get_secret_value()
        if self.password is None:
            return url
        parts = urlsplit(url)
        user, _, host = parts.netloc.rpartition("@")
        secret = quote(self.password.get_secret_value(), safe="")
        return urlunsplit(parts._replace(netloc=f"{user}:{secret}@{host}"))


# ------------------------------------------------------------------------------------ failover


class ErrorFailover(_Section):
    """Fail over when a vendor raises: try each vendor once, in ring order."""

    mode: Literal["error"] = Field(default="error", description="`error`.")


class TimeoutFailover(_Section):
    """Switch to the next vendor after ``threshold`` consecutive timeouts."""

    mode: Literal["timeout"] = Field(description="`timeout`.")
    threshold: int = Field(ge=1, description="Consecutive timeouts that switch to the next vendor.")
    restore_after: float | None = Field(
        default=None, gt=0, description="Seconds after a switch to go back to the first vendor."
    )
    attempt_timeout: float | None = Field(
        default=None, gt=0, description="Seconds one vendor call may take before it times out."
    )


class WeightedFailover(_Section):
    """Start each send at a vendor picked by weight, then fail over in ring order."""

    mode: Literal["weighted"] = Field(description="`weighted`.")
    weights: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        min_length=1,
        description="One positive weight per vendor, in the order of `vendors`: `[3, 1]` starts "
        "three sends of four at the first (smooth weighted round robin).",
    )


FailoverSettings = Annotated[
    ErrorFailover | TimeoutFailover | WeightedFailover, Field(discriminator="mode")
]


# ----------------------------------------------------------------------------------- ratelimit


class _RateLimitBase(_Section):
    backend: Literal["memory", "redis"] = Field(
        default="memory",
        description="`memory` (this process only) or `redis` (shared by every process using "
        "the same Redis; needs the `redis` section).",
    )
    key: str = Field(
        default="{to}",
        min_length=1,
        description="Limiter key template with `{to}` and `{biz}`. With `{to}` and several "
        "recipients, each recipient has its own key; if any is limited nothing is sent.",
    )
    fail_open: bool = Field(
        default=False,
        description="When the limiter itself fails (Redis unreachable): `false` refuses the "
        "send with LimiterError, `true` sends anyway and logs it.",
    )

    @field_validator("key")
    @classmethod
    def _key_fields(cls, key: str) -> str:
        return check_key_template(key)

    # What each algorithm knows of itself, so that adding one touches its class only: the
    # container builds its limiter and stage, `gocomm config` draws it.

    def limiter(self, redis: Redis | None) -> Limiter | ActiveLimiter:
        """The limiter: in memory, or on ``redis`` (given for ``backend: redis``)."""
        raise NotImplementedError

    def stage(self, inner: Sender[Any], limiter: Any) -> Sender[Any]:
        """The rate limit stage over ``inner`` using ``limiter``."""
        raise NotImplementedError

    def summary(self) -> tuple[str, str]:
        """The stage's class name and what it allows, for drawing the stack."""
        raise NotImplementedError

    def notes(self) -> str:
        """What else the drawing says of the stage (", no refunds")."""
        return ""


class _RefundableRateLimit(_RateLimitBase):
    refund: bool = Field(
        default=True,
        description="Give back the quota of the recipients a send did not reach (it failed, or "
        "the vendor refused them), so that a failed login code does not lock its user out for "
        "the window. A key with `{to}` is given back per recipient; other keys only when "
        "nobody was reached.",
    )

    def stage(self, inner: Sender[Any], limiter: Any) -> Sender[Any]:
        from gocomm.ratelimit import RateLimitSender
        from gocomm.ratelimit.keys import key_function

        return RateLimitSender(
            inner, key_function(self.key), limiter, fail_open=self.fail_open, refund=self.refund
        )

    def notes(self) -> str:
        return "" if self.refund else ", no refunds"


class SlidingWindowLimit(_RefundableRateLimit):
    """At most ``rate`` sends per key in any ``window`` seconds."""

    algorithm: Literal["sliding_window"] = Field(description="`sliding_window`.")
    rate: int = Field(ge=1, description="Sends allowed per key in one window.")
    window: float = Field(gt=0, description="Window length in seconds.")

    def limiter(self, redis: Redis | None) -> Limiter | ActiveLimiter:
        if redis is None:
            from gocomm.ratelimit import SlidingWindowLimiter

            return SlidingWindowLimiter(self.window, self.rate)
        from gocomm.ratelimit.redis import RedisSlidingWindowLimiter

        return RedisSlidingWindowLimiter(redis, self.window, self.rate)

    def summary(self) -> tuple[str, str]:
        what = f"sliding window {self.rate} per {self.window:g}s"
        return "RateLimitSender", what


class TokenBucketLimit(_RefundableRateLimit):
    """A token bucket per key: ``rate`` tokens a second, holding at most ``burst``."""

    algorithm: Literal["token_bucket"] = Field(description="`token_bucket`.")
    rate: float = Field(gt=0, description="Tokens added per second.")
    burst: int = Field(ge=1, description="Bucket size: sends allowed at once after a quiet spell.")

    def limiter(self, redis: Redis | None) -> Limiter | ActiveLimiter:
        if redis is None:
            from gocomm.ratelimit import TokenBucketLimiter

            return TokenBucketLimiter(self.rate, self.burst)
        from gocomm.ratelimit.redis import RedisTokenBucketLimiter

        return RedisTokenBucketLimiter(redis, self.rate, self.burst)

    def summary(self) -> tuple[str, str]:
        what = f"token bucket {self.rate:g}/s, burst {self.burst}"
        return "RateLimitSender", what


class ConcurrencyLimit(_RateLimitBase):
    """At most ``max_active`` sends in flight per key."""

    algorithm: Literal["concurrency"] = Field(description="`concurrency`.")
    max_active: int = Field(ge=1, description="Sends allowed in flight at once per key.")
    lease: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a slot is held if its holder dies without releasing it; renewed "
        "while the send runs.",
    )

    def limiter(self, redis: Redis | None) -> Limiter | ActiveLimiter:
        if redis is None:
            from gocomm.ratelimit import ConcurrencyLimiter

            return ConcurrencyLimiter(self.max_active, lease=self.lease)
        from gocomm.ratelimit.redis import RedisConcurrencyLimiter

        return RedisConcurrencyLimiter(redis, self.max_active, lease=self.lease)

    def stage(self, inner: Sender[Any], limiter: Any) -> Sender[Any]:
        from gocomm.ratelimit import ConcurrencyLimitSender
        from gocomm.ratelimit.keys import key_function

        return ConcurrencyLimitSender(
            inner, key_function(self.key), limiter, fail_open=self.fail_open
        )

    def summary(self) -> tuple[str, str]:
        return "ConcurrencyLimitSender", f"{self.max_active} in flight"


RateLimitSettings = Annotated[
    SlidingWindowLimit | TokenBucketLimit | ConcurrencyLimit, Field(discriminator="algorithm")
]


# --------------------------------------------------------------------------------------- retry


class FixedInterval(_Section):
    """The same wait after every failed attempt."""

    kind: Literal["fixed"] = Field(description="`fixed`.")
    seconds: float = Field(ge=0, description="Seconds to wait.")


class UniformInterval(_Section):
    """A random wait between ``low`` and ``high``."""

    kind: Literal["uniform"] = Field(description="`uniform`.")
    low: float = Field(ge=0, description="Shortest wait in seconds.")
    high: float = Field(ge=0, description="Longest wait in seconds (at least `low`).")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.low > self.high:
            raise ValueError("low must not exceed high")
        return self


class ExponentialInterval(_Section):
    """Waits that grow by ``multiplier`` from ``initial`` up to ``maximum``."""

    kind: Literal["exponential"] = Field(description="`exponential`.")
    initial: float = Field(gt=0, description="First wait in seconds.")
    maximum: float = Field(gt=0, description="Cap on each wait in seconds (at least `initial`).")
    multiplier: float = Field(default=2.0, ge=1, description="Growth factor per attempt.")
    jitter: bool = Field(
        default=True, description="Wait a random time below the capped value (full jitter)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.initial > self.maximum:
            raise ValueError("initial must not exceed maximum")
        return self


IntervalSettings = Annotated[
    FixedInterval | UniformInterval | ExponentialInterval, Field(discriminator="kind")
]


class RetrySettings(_Section):
    """Send again after a retryable error."""

    max_attempts: int = Field(default=3, ge=1, description="Calls in all, the first included.")
    interval: IntervalSettings | None = Field(
        default=None,
        description="Wait between attempts; without it, retries follow at once.",
    )
    max_delay: float | None = Field(
        default=None,
        gt=0,
        description="Cap on each wait; a vendor's `retry_after` beyond it stops retrying. "
        "Needs `interval`.",
    )

    @model_validator(mode="after")
    def _delay_needs_interval(self) -> Self:
        if self.max_delay is not None and self.interval is None:
            raise ValueError("max_delay needs an interval (retries without one never wait)")
        return self


# ------------------------------------------------------------------------------------- vendors


class VendorEntry(BaseModel):
    """One vendor of a channel: ``{plugin: NAME, ...that vendor's keys}``, or just ``NAME``.

    The vendor's keys are checked by its own settings model once the vendor registry is known
    (:meth:`Settings.bind`); until then they are kept aside and never shown.
    """

    model_config = ConfigDict(frozen=True)

    plugin: str = Field(min_length=1, description="The registered vendor name (`gocomm plugins`).")
    options: Mapping[str, Any] = Field(default_factory=dict, repr=False, exclude=True)
    settings: SerializeAsAny[BaseModel] | None = Field(default=None, exclude=False)

    @model_validator(mode="before")
    @classmethod
    def _split_options(cls, data: Any) -> Any:
        # Every key but `plugin` belongs to the vendor, even one named `settings`; a bare name
        # is a vendor without keys (`vendors: [console]`).
        if isinstance(data, str):
            return {"plugin": data, "options": {}}
        if isinstance(data, Mapping):
            entry: dict[str, Any] = {"options": {k: v for k, v in data.items() if k != "plugin"}}
            if "plugin" in data:
                entry["plugin"] = data["plugin"]
            return entry
        return data

    @property
    def bound(self) -> bool:
        """Whether the vendor's keys have been validated by its settings model."""
        return self.settings is not None

    def __repr_args__(self) -> Any:
        yield "plugin", self.plugin
        if self.settings is not None:
            yield "settings", self.settings
        elif self.options:
            count = len(self.options)
            yield "options", f"<{count} key{'' if count == 1 else 's'}, not validated yet>"

    @model_serializer(mode="wrap")
    def _flat(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        # Written back as the user wrote it: {plugin, ...keys}. Unvalidated keys are masked,
        # since nothing says yet which of them are secrets.
        if self.settings is not None:
            keys = self.settings.model_dump(mode=info.mode)
        else:
            keys = {key: MASK for key in self.options}
        return {"plugin": self.plugin, **keys}


# ------------------------------------------------------------------------ health and routing


class BreakerSettings(_Section):
    """A circuit breaker around each vendor: stop calling one that keeps failing."""

    backend: Literal["memory", "redis"] = Field(
        default="memory",
        description="`memory` (this process) or `redis` (shared by every process).",
    )
    failure_ratio: float = Field(
        default=0.5, gt=0, le=1, description="Share of failed calls in the window that opens it."
    )
    minimum_calls: int = Field(
        default=20, ge=1, description="Calls the window must hold before it can open."
    )
    window: float = Field(default=30.0, gt=0, description="Seconds of outcomes counted.")
    open_for: float = Field(
        default=30.0, gt=0, description="Seconds an open breaker refuses before probing."
    )
    half_open_calls: int = Field(
        default=1, ge=1, description="Probe calls admitted once `open_for` has passed."
    )


def _check_prefix(prefix: str) -> str:
    if not re.fullmatch(r"\+[0-9]+", prefix):
        raise ValueError("must be '+' followed by digits (an E.164 prefix such as +86)")
    return prefix


class RouteSettings(_Section):
    """The recipients whose number starts with one of `prefixes` and the vendors they use."""

    prefixes: list[Annotated[str, AfterValidator(_check_prefix)]] = Field(
        min_length=1, description="E.164 prefixes, `+` and digits (`+86`); the longest wins."
    )
    vendors: list[VendorEntry] = Field(
        min_length=1, description="This route's vendors in failover order."
    )
    failover: FailoverSettings = Field(
        default_factory=ErrorFailover, description="How to move between this route's vendors."
    )
    breaker: BreakerSettings | None = Field(
        default=None, description="A circuit breaker around each of this route's vendors."
    )

    @model_validator(mode="after")
    def _weights_per_vendor(self) -> Self:
        _check_weights(self.failover, len(self.vendors))
        return self


def _check_weights(failover: object, vendors: int) -> None:
    if isinstance(failover, WeightedFailover) and len(failover.weights) != vendors:
        raise ValueError(
            f"failover.weights has {len(failover.weights)} weights for {vendors} vendors; "
            "give one weight per vendor"
        )


# ------------------------------------------------------------------------------------ channels


class ChannelSettings(_Section):
    """One channel's stack, outermost first: rate limit → retry → failover → vendors."""

    vendors: list[VendorEntry] = Field(
        min_length=1, description="The vendors in failover order; the first is preferred."
    )
    failover: FailoverSettings = Field(
        default_factory=ErrorFailover,
        description="How to move between vendors; a single vendor in `error` mode is used "
        "directly.",
    )
    ratelimit: RateLimitSettings | None = Field(
        default=None, description="The rate limit stage (outermost); left out, no limit."
    )
    retry: RetrySettings | None = Field(
        default=None, description="The retry stage; left out, no retry."
    )
    breaker: BreakerSettings | None = Field(
        default=None, description="A circuit breaker around each vendor; left out, none."
    )
    routes: list[RouteSettings] = Field(
        default_factory=list,
        description="Routes by number prefix, each with its own vendors; the channel's own "
        "`vendors` take the numbers no route matches.",
    )

    @model_validator(mode="after")
    def _check_routes(self) -> Self:
        _check_weights(self.failover, len(self.vendors))
        owner: dict[str, int] = {}
        for index, route in enumerate(self.routes):
            for prefix in route.prefixes:
                other = owner.setdefault(prefix, index)
                if other != index:
                    raise ValueError(
                        f"routes[{index}].prefixes repeats a prefix of routes[{other}]; "
                        "each prefix may belong to one route only"
                    )
        return self

    def vendor_lists(self) -> list[tuple[tuple[str | int, ...], list[VendorEntry]]]:
        """Every vendor list of the channel with its path below the channel: ``("vendors",)``
        and ``("routes", i, "vendors")``."""
        routes = [(("routes", i, "vendors"), r.vendors) for i, r in enumerate(self.routes)]
        return [(("vendors",), self.vendors), *routes]


class QueueSettings(_Section):
    """The queue that hands sends to workers (`gocomm worker`); see "Scaling out"."""

    broker: Literal["redis_stream", "memory"] = Field(
        default="redis_stream",
        description="`redis_stream` (Redis Streams, shared by every process) or `memory` "
        "(in this process only; nothing durable).",
    )
    url: SecretUrl | None = Field(
        default=None, description="Redis URL of the queue; left out, the `redis` section's."
    )
    queue_name: str = Field(default="gocomm", min_length=1, description="The stream's key.")
    idle_timeout: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a message may stay unacknowledged (a dead worker's) before "
        "another worker takes it over; longer than the slowest send, retry waits included.",
    )
    lease: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a worker (or a `SyncClient` send with an idempotency key) holds "
        "the key without renewing it (renewed while the send runs); a dead holder's hold ends "
        "after it.",
    )
    max_retries: int = Field(
        default=5, ge=0, description="Re-enqueues of a retryable failure before a dead letter."
    )
    dead_letter: str = Field(
        default="gocomm:dead", min_length=1, description="The dead-letter stream's key."
    )
    concurrency: int = Field(
        default=10, ge=1, description="Sends in flight at once in each worker process."
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: SecretUrl | None) -> SecretUrl | None:
        if url is not None:
            _check_redis_url(url.get_secret_value())
        return url

    def redis_url(self, redis: RedisSettings | None) -> str | None:
        """The queue's Redis URL: its own ``url``, else the ``redis`` section's."""
        if self.url is not None:
            return self.url.get_secret_value()
        return redis.connection_url() if redis is not None else None


class PrometheusSettings(_Section):
    """Prometheus metrics in ``prometheus_client``'s global registry (``gocomm[prometheus]``)."""

    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="`gocomm worker` and `gocomm batch` serve `/metrics` on this port; left "
        "out, the metrics are only registered (your application exposes them).",
    )
    addr: str = Field(default="0.0.0.0", description="The address `/metrics` is served on.")


class TelemetrySettings(_Section):
    """What the container reports (see the Telemetry page), from its first sender on."""

    opentelemetry: bool = Field(
        default=False,
        description="Spans and metrics through the OpenTelemetry API (`gocomm[otel]`); the "
        "application configures the SDK and its exporters.",
    )
    prometheus: PrometheusSettings | None = Field(
        default=None, description="Prometheus metrics (`gocomm[prometheus]`)."
    )


class Settings(_Section):
    """The whole configuration. ``repr`` and :meth:`masked_dict` never show a secret."""

    redis: RedisSettings | None = Field(
        default=None,
        description="The Redis server; needed by `backend: redis` and by sends with an "
        "idempotency key from `SyncClient`.",
    )
    email: ChannelSettings | None = Field(default=None, description="The email channel.")
    sms: ChannelSettings | None = Field(default=None, description="The SMS channel.")
    queue: QueueSettings | None = Field(
        default=None,
        description="The queue to workers; left out, `gocomm.tasks` uses the in-process "
        "`memory` broker.",
    )
    telemetry: TelemetrySettings | None = Field(
        default=None, description="OpenTelemetry and Prometheus reporting; left out, none."
    )

    _sources: SourceMap | None = None

    @property
    def sources(self) -> SourceMap:
        """Where each value came from (file and line, or variable), for error messages."""
        return self._sources if self._sources is not None else SourceMap("the settings")

    def channel(self, name: str) -> ChannelSettings | None:
        """The settings of channel ``name`` (``email`` or ``sms``); None when not configured."""
        if name not in CHANNELS:
            raise ConfigError(f"unknown channel {name!r}; the channels are {', '.join(CHANNELS)}")
        value: ChannelSettings | None = getattr(self, name)
        return value

    @property
    def bound(self) -> bool:
        """Whether every vendor entry has been validated by its vendor's settings model."""
        return all(
            entry.bound
            for name in CHANNELS
            if (channel := self.channel(name)) is not None
            for _, entries in channel.vendor_lists()
            for entry in entries
        )

    def bind(self, registry: VendorRegistry) -> Settings:
        """A copy whose vendor entries are validated by the vendors' own settings models.

        Raises :class:`ConfigError` naming each bad entry's field and source: an unknown
        plugin (with the names that exist), a vendor that does not serve the channel, or a key
        that vendor's model refuses.
        """
        problems: list[str] = []
        updates: dict[str, ChannelSettings] = {}
        for name in CHANNELS:
            channel = self.channel(name)
            if channel is None:
                continue
            bound_lists: list[list[VendorEntry]] = []
            for path, vendors in channel.vendor_lists():
                entries: list[VendorEntry] = []
                for index, entry in enumerate(vendors):
                    where = (name, *path, index)
                    bound = _bind_entry(registry, name, where, entry, self.sources, problems)
                    entries.append(bound if bound is not None else entry)
                bound_lists.append(entries)
            routes = [
                route.model_copy(update={"vendors": entries})
                for route, entries in zip(channel.routes, bound_lists[1:], strict=True)
            ]
            updates[name] = channel.model_copy(update={"vendors": bound_lists[0], "routes": routes})
        if problems:
            raise config_error(problems)
        copy = self.model_copy(update=updates)
        copy._sources = self._sources
        return copy

    def masked_dict(self) -> dict[str, Any]:
        """The effective configuration as plain data, every secret masked (URL passwords too).

        Vendor keys not validated yet (see :meth:`bind`) are all masked.
        """
        masked: dict[str, Any] = mask_value(self.model_dump())
        return masked

    def plain_dict(self) -> dict[str, Any]:
        """The configuration as plain data with secrets kept as ``SecretStr`` objects."""
        return self.model_dump()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "the settings") -> Settings:
        """Validate plain data (no environment, no interpolation) into :class:`Settings`."""
        return _validate(dict(data), SourceMap(source))


def render_masked(settings: Settings) -> str:
    """The effective configuration as YAML text, every secret masked (for ``gocomm config``)."""
    import yaml

    return yaml.safe_dump(settings.masked_dict(), sort_keys=False, allow_unicode=True)


def _bind_entry(
    registry: VendorRegistry,
    channel: str,
    path: tuple[str | int, ...],
    entry: VendorEntry,
    sources: SourceMap,
    problems: list[str],
) -> VendorEntry | None:
    try:
        spec = registry.get(entry.plugin)
    except ConfigError as exc:
        problems.append(f"{describe_source((*path, 'plugin'), sources)}: {exc}")
        return None
    if entry.settings is not None and type(entry.settings) is spec.settings:
        return entry  # bound before (bind is idempotent): each entry is validated once
    if channel not in spec.channels:
        served = ", ".join(sorted(spec.channels)) or "no channel"
        problems.append(
            f"{describe_source((*path, 'plugin'), sources)}: vendor {entry.plugin!r} serves "
            f"{served}, not {channel}; pick a vendor for {channel} (see `gocomm plugins`)"
        )
        return None
    try:
        validated = spec.settings.model_validate(dict(entry.options))
    except ValidationError as exc:
        keys = [name for name in spec.settings.model_fields]
        problems.extend(
            scrubbed_problems(
                exc, sources, prefix=path, data=dict(entry.options), allowed=lambda _: keys
            )
        )
        return None
    return entry.model_copy(update={"settings": validated})


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation may hold (through Annotated, unions, Optional and lists)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    models: list[type[BaseModel]] = []
    for argument in get_args(annotation):
        models += _models_of(argument)
    return models


def _allowed_keys(data: Any, path: Path) -> list[str] | None:
    """The keys allowed at ``path`` of ``data``, resolving unions by their discriminator."""
    candidates: list[type[BaseModel]] = [Settings]
    value = data
    for part in path:
        value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(part, int):
            continue
        candidates = [
            model
            for candidate in candidates
            if (field := candidate.model_fields.get(part)) is not None
            for model in _models_of(field.annotation)
        ]
    if len(candidates) > 1 and isinstance(value, Mapping):
        candidates = [
            model
            for model in candidates
            if any(
                get_origin(field.annotation) is Literal
                and value.get(name) in get_args(field.annotation)
                for name, field in model.model_fields.items()
            )
        ]
    if len(candidates) != 1:
        return None
    return [name for name in candidates[0].model_fields if name not in ("options", "settings")]


def _validate(data: Any, sources: SourceMap) -> Settings:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{sources.default}: the configuration must be a mapping with the sections "
            f"redis, {', '.join(CHANNELS)}"
        )
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = scrubbed_problems(exc, sources, data=data, allowed=partial(_allowed_keys, data))
        raise config_error(problems) from None
    settings._sources = sources
    _check_redis_backend(settings)
    return settings


def _backends(channel: ChannelSettings | None) -> list[tuple[tuple[str | int, ...], str]]:
    """The ``backend`` of each rate limit and breaker of ``channel``, with its path."""
    if channel is None:
        return []
    found: list[tuple[tuple[str | int, ...], str]] = []
    if channel.ratelimit is not None:
        found.append((("ratelimit",), channel.ratelimit.backend))
    if channel.breaker is not None:
        found.append((("breaker",), channel.breaker.backend))
    for index, route in enumerate(channel.routes):
        if route.breaker is not None:
            found.append((("routes", index, "breaker"), route.breaker.backend))
    return found


def uses_redis(channel: ChannelSettings | None) -> bool:
    """Whether ``channel`` has a rate limit or a breaker on Redis."""
    return any(backend == "redis" for _, backend in _backends(channel))


def _check_redis_backend(settings: Settings) -> None:
    if settings.redis is not None:
        return
    problems = []
    for name in CHANNELS:
        channel = settings.channel(name)
        for path, backend in _backends(channel):
            if backend == "redis":
                where = describe_source((name, *path, "backend"), settings.sources)
                problems.append(
                    f"{where}: backend redis needs a `redis` section (at least its url, e.g. "
                    "GOCOMM_REDIS__URL), or use backend memory"
                )
    queue = settings.queue
    if queue is not None and queue.broker == "redis_stream" and queue.url is None:
        where = describe_source(("queue", "broker"), settings.sources)
        problems.append(
            f"{where}: broker redis_stream needs a Redis: set queue.url or the `redis` section "
            "(e.g. GOCOMM_REDIS__URL), or use broker memory"
        )
    if problems:
        raise config_error(problems)


# ---------------------------------------------------------------------------------- loading


def default_settings_text() -> str:
    """The embedded default configuration (``gocomm/defaults.yaml``)."""
    return resources.files("gocomm").joinpath("defaults.yaml").read_text(encoding="utf-8")


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read, override and validate the configuration.

    The YAML file at ``path``, else at ``$GOCOMM_CONFIG``, with ``${VAR}`` / ``${VAR:default}``
    interpolated from ``environ`` (default ``os.environ``); then the ``GOCOMM_<SECTION>__<KEY>``
    variables override it (environment > file > defaults; a list or mapping is given whole as
    JSON). With no file and no such variable, the embedded default (both channels through the
    ``console`` vendor, an in-memory limit) applies; any configuration replaces it whole.

    Vendor entries are checked by their vendors' own models in one place only,
    :meth:`Settings.bind` (which :func:`~gocomm.containers.build_container` calls). Raises
    :class:`ConfigError` naming the field and its source.
    """
    env = os.environ if environ is None else environ
    if path is not None:
        file: pathlib.Path | None = pathlib.Path(path)
        origin = "the path given"
    elif env.get("GOCOMM_CONFIG"):
        file = pathlib.Path(env["GOCOMM_CONFIG"])
        origin = "GOCOMM_CONFIG"
    else:
        file = None
        origin = ""
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read the configuration file {str(file)!r} (from {origin}): "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"the configuration file {str(file)!r} (from {origin}) is not UTF-8 text "
                f"(byte {exc.start}); save it as UTF-8"
            ) from None
        data, sources = read_yaml(text, str(file), env)
    elif has_override_variables(env):
        data, sources = {}, SourceMap("the environment")
    else:
        data, sources = read_yaml(default_settings_text(), "gocomm/defaults.yaml", env)
    if data is None:
        data = {}
    if isinstance(data, dict):
        env_overrides(data, sources, env, sections=("redis", *CHANNELS, "queue"))
    return _validate(data, sources)
