"""gocomm.config: models, YAML with interpolation, environment overrides, errors that name the
field and its source and never the value, masking, stack descriptions and the reference."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import AnyUrl, BaseModel, SecretStr, field_validator, model_validator

from gocomm.config import (
    ChannelSettings,
    ConcurrencyLimit,
    ExponentialInterval,
    RedisSettings,
    Settings,
    SlidingWindowLimit,
    TimeoutFailover,
    load_settings,
    render_masked,
)
from gocomm.errors import ConfigError
from gocomm.plugins import VendorRegistry, VendorSettings, VendorSpec, hookimpl, load_registry
from gocomm.ratelimit.keys import key_function
from gocomm.reference import REFERENCE_SECTIONS, reference_markdown
from gocomm.stacks import StackNode, describe_stacks
from gocomm.testing import MemorySender

SECRET = "sk_live_7Hq2ZpX9TopSecret"


class VaultSettings(VendorSettings):
    """A vendor with a secret, written as carelessly as a third party might be."""

    token: SecretStr
    region: str = "eu"

    @field_validator("region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        if region not in ("eu", "us"):
            raise ValueError(f"unknown region {region}")  # echoes the value: must be scrubbed
        return region


class VaultPlugin:
    @hookimpl
    def gocomm_register_vendors(self, registry: VendorRegistry) -> None:
        registry.add(
            VendorSpec(
                "vault",
                frozenset({"sms"}),
                VaultSettings,
                lambda settings: MemorySender("vault"),
                "an SMS vendor with a secret token",
            )
        )


@pytest.fixture
def registry() -> VendorRegistry:
    return load_registry(entry_points=False, plugins=[VaultPlugin()])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gocomm.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


#: A minimal valid SMS section; the bad-file cases add one bad key after it.
CONSOLE_SMS = "sms:\n  vendors: [{plugin: console}]\n"


def problem(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    message = str(exc.value)
    assert SECRET not in message
    assert SECRET not in repr(exc.value)
    return message


def refused(
    path: Path, expected: list[str], *, registry: VendorRegistry | None = None, **loading: Any
) -> str:
    """Load ``path`` (and bind it to ``registry`` when given): the ConfigError's message, which
    must contain every ``expected`` part and never the secret."""
    def load() -> None:
        settings = load_settings(path, **loading)
        if registry is not None:
            settings.bind(registry)

    with pytest.raises(ConfigError) as exc:
        load()
    message = problem(exc)
    for part in expected:
        assert part in message, message
    return message


# -- loading ---------------------------------------------------------------------------------


def test_yaml_with_interpolation_and_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        redis: {url: "redis://:${REDIS_PASSWORD}@localhost:6379/2", max_connections: 7}
        sms:
          vendors:
            - plugin: vault
              token: "${VAULT_TOKEN}"
              region: ${VAULT_REGION:us}
          failover: {mode: timeout, threshold: 3, restore_after: 1800, attempt_timeout: 5}
          ratelimit:
            {backend: redis, algorithm: sliding_window, key: "sms:{to}", rate: 1, window: 60}
          retry: {max_attempts: 3, interval: {kind: exponential, initial: 0.5, maximum: 10}}
        email:
          vendors: [{plugin: memory}]
        """,
    )
    env = {"REDIS_PASSWORD": SECRET, "VAULT_TOKEN": SECRET}
    settings = load_settings(path, environ=env)
    assert settings.redis is not None
    assert settings.redis.url.get_secret_value() == f"redis://:{SECRET}@localhost:6379/2"
    assert settings.redis.max_connections == 7
    assert settings.redis.socket_timeout == 1.0  # a default
    sms = settings.sms
    assert sms is not None
    assert sms.vendors[0].plugin == "vault"
    assert sms.vendors[0].options == {"token": SECRET, "region": "us"}
    assert sms.failover == TimeoutFailover(
        mode="timeout", threshold=3, restore_after=1800, attempt_timeout=5
    )
    assert isinstance(sms.ratelimit, SlidingWindowLimit)
    assert (sms.ratelimit.rate, sms.ratelimit.window, sms.ratelimit.key) == (1, 60, "sms:{to}")
    assert sms.retry is not None
    assert sms.retry.interval == ExponentialInterval(kind="exponential", initial=0.5, maximum=10)
    assert settings.email is not None
    assert settings.email.failover.mode == "error"
    assert settings.email.ratelimit is None
    assert settings.email.retry is None
    # Nothing shows the secret, before or after the vendor keys are validated.
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.masked_dict())


def test_escaped_placeholder_stays_literal(tmp_path: Path, registry: VendorRegistry) -> None:
    path = write(
        tmp_path,
        """\
        sms:
          vendors: [{plugin: vault, token: "a$${B}c${C:}d"}]
        """,
    )
    settings = load_settings(path, environ={}).bind(registry)
    assert settings.sms is not None
    vault = settings.sms.vendors[0].settings
    assert isinstance(vault, VaultSettings)
    assert vault.token.get_secret_value() == "a${B}cd"


def test_unset_variable_names_it_and_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        sms:
          vendors:
            - plugin: vault
              token: "${VAULT_TOKEN}"
        """,
    )
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    message = problem(exc)
    assert f"{path}:4" in message
    assert "VAULT_TOKEN" in message
    assert "sms.vendors[0].token" in message


def test_environment_overrides_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        sms:
          vendors: [{plugin: console}]
          retry: {max_attempts: 2}
        """,
    )
    env = {
        "GOCOMM_SMS__RETRY__MAX_ATTEMPTS": "5",
        "GOCOMM_SMS__VENDORS": '[{"plugin": "memory"}, {"plugin": "console"}]',
        "GOCOMM_SMS__FAILOVER": '{"mode": "timeout", "threshold": 2}',
        "GOCOMM_SMS__FAILOVER__RESTORE_AFTER": "30",
        "GOCOMM_SMS__RATELIMIT__ALGORITHM": "token_bucket",
        "GOCOMM_SMS__RATELIMIT__RATE": "0.5",
        "GOCOMM_SMS__RATELIMIT__BURST": "4",
        "GOCOMM_SMS__RATELIMIT__FAIL_OPEN": "true",
        "GOCOMM_REDIS__URL": "redis://localhost:6390/1",
    }
    settings = load_settings(path, environ=env)
    sms = settings.sms
    assert sms is not None
    assert sms.retry is not None and sms.retry.max_attempts == 5
    assert [v.plugin for v in sms.vendors] == ["memory", "console"]
    assert sms.failover == TimeoutFailover(mode="timeout", threshold=2, restore_after=30)
    assert sms.ratelimit is not None and sms.ratelimit.fail_open is True
    assert sms.ratelimit.model_dump()["burst"] == 4
    assert settings.redis is not None
    assert settings.redis.url.get_secret_value() == "redis://localhost:6390/1"


def test_environment_text_is_kept_whole() -> None:
    # A password with '#' or quotes must not lose a comment or its quotes on the way.
    env = {
        "GOCOMM_SMS__VENDORS": '[{"plugin": "memory"}]',
        "GOCOMM_REDIS__PASSWORD": "'pa ss' #1",
    }
    settings = load_settings(environ=env)
    assert settings.redis is not None and settings.redis.password is not None
    assert settings.redis.password.get_secret_value() == "'pa ss' #1"


def test_config_file_from_environment_and_path_precedence(tmp_path: Path) -> None:
    from_env = write(tmp_path, "sms: {vendors: [{plugin: console}]}\n")
    given = tmp_path / "given.yaml"
    given.write_text("email: {vendors: [{plugin: memory}]}\n", encoding="utf-8")
    env = {"GOCOMM_CONFIG": str(from_env)}
    assert load_settings(environ=env).sms is not None
    chosen = load_settings(given, environ=env)
    assert chosen.sms is None and chosen.email is not None


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GOCOMM_CONFIG"):
        load_settings(environ={"GOCOMM_CONFIG": str(tmp_path / "absent.yaml")})


def test_embedded_default_applies_only_without_configuration(tmp_path: Path) -> None:
    reserved = {
        "GOCOMM_DISABLE_PLUGINS": "acme",
        "GOCOMM_TEST_REDIS_URL": "redis://localhost:1/0",
        "HOME": "/root",
    }
    default = load_settings(environ=reserved)
    for channel in (default.email, default.sms):
        assert channel is not None
        assert [v.plugin for v in channel.vendors] == ["console"]
        assert isinstance(channel.ratelimit, SlidingWindowLimit)
        assert channel.ratelimit.backend == "memory"
    # Any configuration replaces it whole: here one variable configures only SMS.
    only_sms = load_settings(environ={"GOCOMM_SMS__VENDORS": '[{"plugin": "memory"}]'})
    assert only_sms.email is None
    assert only_sms.sms is not None and only_sms.sms.ratelimit is None
    # An empty file is a configuration too.
    empty = load_settings(write(tmp_path, "# nothing\n"), environ={})
    assert empty.email is None and empty.sms is None


def test_a_vendor_without_keys_can_be_named_alone() -> None:
    settings = Settings.from_mapping({"sms": {"vendors": ["console", {"plugin": "memory"}]}})
    assert settings.sms is not None
    assert [(v.plugin, dict(v.options)) for v in settings.sms.vendors] == [
        ("console", {}),
        ("memory", {}),
    ]


def test_from_mapping_has_no_environment_or_interpolation() -> None:
    settings = Settings.from_mapping(
        {"sms": {"vendors": [{"plugin": "vault", "token": "${NOT_INTERPOLATED}"}]}}
    )
    assert settings.sms is not None
    assert settings.sms.vendors[0].options["token"] == "${NOT_INTERPOLATED}"


# -- errors: field, source, what is allowed, never the value ----------------------------------


BAD_FILES = [
    pytest.param(
        CONSOLE_SMS + f"  retry: {{max_attempts: {SECRET}}}\n",
        ["sms.retry.max_attempts", ":3)", "integer"],
        id="retry-not-a-number",
    ),
    pytest.param(
        CONSOLE_SMS + "  retry: {max_attempts: 0}\n",
        ["sms.retry.max_attempts", ":3)", "greater than or equal to 1"],
        id="retry-zero",
    ),
    pytest.param(
        CONSOLE_SMS + f"  failover: {{mode: {SECRET}}}\n",
        ["sms.failover.mode", ":3)", "'error', 'timeout'"],
        id="failover-mode",
    ),
    pytest.param(
        CONSOLE_SMS + "  failover: {mode: timeout}\n",
        ["sms.failover.threshold", ":3)", "required"],
        id="failover-threshold-missing",
    ),
    pytest.param(
        CONSOLE_SMS + "  failover: {threshold: 3}\n",
        ["sms.failover", ":3)", "'mode'"],
        id="failover-no-mode",
    ),
    pytest.param(
        CONSOLE_SMS + f"  ratelimit:\n    algorithm: {SECRET}\n",
        ["sms.ratelimit.algorithm", ":4)", "'sliding_window', 'token_bucket', 'concurrency'"],
        id="ratelimit-algorithm",
    ),
    pytest.param(
        CONSOLE_SMS + "  ratelimit:\n"
        f"    {{algorithm: sliding_window, rate: 1, window: 60, key: 'x{{{SECRET}}}'}}\n",
        ["sms.ratelimit.key", ":4)", "{to} and {biz}"],
        id="ratelimit-key-field",
    ),
    pytest.param(
        CONSOLE_SMS + "  ratelimit:\n"
        f"    {{algorithm: token_bucket, rate: 1, burst: 1, backend: {SECRET}}}\n",
        ["sms.ratelimit.backend", ":4)", "'memory' or 'redis'"],
        id="ratelimit-backend",
    ),
    pytest.param(
        CONSOLE_SMS + "  ratelimit:\n"
        "    backend: redis\n    algorithm: concurrency\n    max_active: 2\n",
        ["sms.ratelimit.backend", ":4)", "needs a `redis` section"],
        id="redis-backend-without-redis",
    ),
    pytest.param(
        CONSOLE_SMS + "  retry:\n    interval: {kind: uniform, low: 5, high: 1}\n",
        ["sms.retry.interval", ":4)", "low must not exceed high"],
        id="uniform-interval-order",
    ),
    pytest.param(
        CONSOLE_SMS + "  retry: {max_delay: 3}\n",
        ["sms.retry", ":3)", "max_delay needs an interval"],
        id="max-delay-without-interval",
    ),
    pytest.param(
        CONSOLE_SMS + f"  retyr: {{max_attempts: {SECRET}}}\n",
        ["sms.retyr", ":3)", "not a known key", "vendors, failover, ratelimit, retry"],
        id="unknown-key",
    ),
    pytest.param(
        "sms:\n  vendors: []\n",
        ["sms.vendors", ":2)", "at least 1"],
        id="no-vendors",
    ),
    pytest.param(
        f"redis:\n  url: 'http://user:{SECRET}@host:1'\n",
        ["redis.url", ":2)", "redis://, rediss:// or unix://"],
        id="redis-url-scheme",
    ),
    pytest.param(
        CONSOLE_SMS + f"  ratelimit: {{backend: memory}}\n  x: {SECRET}\n",
        ["sms.ratelimit", ":3)", "'algorithm'", "sms.x", ":4)"],
        id="two-problems",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_FILES)
def test_bad_file_names_field_source_and_never_the_value(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = write(tmp_path, text)
    assert str(path) in refused(path, expected, environ={})


def test_yaml_syntax_error_does_not_quote_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, f"sms:\n  vendors: [{{plugin: console, token: {SECRET}]\n  x: : y\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    message = problem(exc)
    assert f"{path}:" in message and "not valid YAML" in message


def test_bad_yaml_scalar_is_refused_without_its_value(tmp_path: Path) -> None:
    path = write(tmp_path, CONSOLE_SMS + f"  retry: !!int {SECRET}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ={})
    assert "gocomm.yaml:3: sms.retry: is not a valid int" in problem(exc)


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "sms: {vendors: [{plugin: console}]}\nsms: {}\n")
    with pytest.raises(ConfigError, match=r"gocomm\.yaml:2: sms: is given twice"):
        load_settings(path, environ={})


BAD_ENVIRONMENTS = [
    pytest.param(
        {"GOCOMM_SMS__RETRY__MAX_ATTEMPTS": SECRET},
        ["sms.retry.max_attempts (GOCOMM_SMS__RETRY__MAX_ATTEMPTS)", "integer"],
        id="not-a-number",
    ),
    pytest.param(
        {"GOCOMM_SMS__RETRI__MAX_ATTEMPTS": SECRET},
        ["sms.retri (GOCOMM_SMS__RETRI__MAX_ATTEMPTS)", "not a known key"],
        id="unknown-key",
    ),
    pytest.param(
        {"GOCOMM_SMTP_PASSWORD": SECRET},
        ["unknown variable GOCOMM_SMTP_PASSWORD", "GOCOMM_<SECTION>__<KEY>"],
        id="unknown-variable",
    ),
    pytest.param(
        {"GOCOMM_SMS__VENDORS": f'[{{"plugin": "{SECRET}"'},
        ["GOCOMM_SMS__VENDORS", "not valid JSON"],
        id="bad-json",
    ),
    pytest.param(
        {"GOCOMM_SMS__VENDORS__0__PLUGIN": SECRET},
        ["GOCOMM_SMS__VENDORS__0__PLUGIN", "lists are given whole", "GOCOMM_SMS__VENDORS"],
        id="list-index",
    ),
    pytest.param(
        {"GOCOMM_SMS__FAILOVER__MODE": SECRET},
        ["sms.failover.mode (GOCOMM_SMS__FAILOVER__MODE)", "'error', 'timeout'"],
        id="failover-mode",
    ),
]


@pytest.mark.parametrize(("env", "expected"), BAD_ENVIRONMENTS)
def test_bad_environment_names_the_variable_and_never_the_value(
    tmp_path: Path, env: dict[str, str], expected: list[str]
) -> None:
    refused(write(tmp_path, CONSOLE_SMS), expected, environ=env)


# -- vendor entries: validated by the vendor's own model ---------------------------------------


def test_vendor_entries_are_validated_and_masked(tmp_path: Path, registry: VendorRegistry) -> None:
    path = write(
        tmp_path,
        """\
        redis: {url: "redis://app:${REDIS_PASSWORD}@cache:6379/0"}
        sms:
          vendors: [{plugin: vault, token: "${TOKEN}", region: us}]
        """,
    )
    settings = load_settings(path, environ={"TOKEN": SECRET, "REDIS_PASSWORD": SECRET})
    assert not settings.bound
    settings = settings.bind(registry)
    assert settings.bound
    assert settings.sms is not None
    vault = settings.sms.vendors[0].settings
    assert isinstance(vault, VaultSettings)
    assert vault.token.get_secret_value() == SECRET
    assert SECRET not in repr(settings)
    masked = settings.masked_dict()
    assert masked["sms"]["vendors"] == [{"plugin": "vault", "token": "**********", "region": "us"}]
    assert masked["redis"]["url"] == "redis://app:**********@cache:6379/0"
    text = render_masked(settings)
    assert SECRET not in text and "region: us" in text
    # The plain mirror keeps secrets as SecretStr objects, never as text.
    plain = settings.plain_dict()
    assert isinstance(plain["sms"]["vendors"][0]["token"], SecretStr)


def test_masked_text_carries_any_vendor_value(tmp_path: Path) -> None:
    settings = Settings.from_mapping(
        {"email": {"vendors": [{"plugin": "file", "directory": str(tmp_path)}]}}
    ).bind(load_registry(entry_points=False))
    assert f"directory: {tmp_path}" in render_masked(settings)


def test_unbound_vendor_keys_are_all_masked() -> None:
    settings = Settings.from_mapping({"sms": {"vendors": [{"plugin": "vault", "token": SECRET}]}})
    assert not settings.bound
    assert settings.masked_dict()["sms"]["vendors"] == [{"plugin": "vault", "token": "**********"}]
    assert "1 key, not validated yet" in repr(settings)


BAD_VENDORS = [
    pytest.param(
        f"  vendors: [{{plugin: vault, token: t, region: {SECRET}}}]\n",
        ["sms.vendors[0].region", ":2)", "unknown region <value hidden>"],
        id="vendor-validator-echoes-value",
    ),
    pytest.param(
        f"  vendors: [{{plugin: vault, token: t, tokn: {SECRET}}}]\n",
        ["sms.vendors[0].tokn", ":2)", "not a known key", "token, region"],
        id="vendor-unknown-key",
    ),
    pytest.param(
        "  vendors:\n    - plugin: console\n    - {plugin: vault}\n",
        ["sms.vendors[1].token", ":4)", "required"],
        id="vendor-missing-key",
    ),
    pytest.param(
        f"  vendors:\n    - plugin: nope\n      token: {SECRET}\n",
        ["sms.vendors[0].plugin", ":3)", "nope", "console", "memory", "vault"],
        id="unknown-plugin",
    ),
]


@pytest.mark.parametrize(("vendors", "expected"), BAD_VENDORS)
def test_bad_vendor_entry(
    tmp_path: Path, registry: VendorRegistry, vendors: str, expected: list[str]
) -> None:
    refused(write(tmp_path, "sms:\n" + vendors), expected, environ={}, registry=registry)


def test_vendor_for_the_wrong_channel(registry: VendorRegistry) -> None:
    settings = Settings.from_mapping({"email": {"vendors": [{"plugin": "vault", "token": "t"}]}})
    with pytest.raises(ConfigError) as exc:
        settings.bind(registry)
    assert "email.vendors[0].plugin" in str(exc.value)
    assert "serves sms, not email" in str(exc.value)


# -- key templates, stacks, the reference -------------------------------------------------------


def test_key_template_gives_one_key_per_recipient() -> None:
    per_recipient = key_function("sms:{biz}:{to}")
    assert per_recipient("login", {}, ("+1", "+2", "+1")) == ["sms:login:+1", "sms:login:+2"]
    per_biz = key_function("{biz}")
    assert per_biz("login", {}, ("+1", "+2")) == "login"
    with pytest.raises(ValueError, match=r"\{to\} and \{biz\}"):
        key_function("{to.__class__}")


def test_describe_stacks() -> None:
    settings = Settings.from_mapping(
        {
            "sms": {
                "vendors": [{"plugin": "aliyun"}, {"plugin": "tencentcloud"}],
                "ratelimit": {"algorithm": "concurrency", "max_active": 2},
                "retry": {"max_attempts": 3, "interval": {"kind": "fixed", "seconds": 1}},
            },
            "email": {
                "vendors": [{"plugin": "smtp"}],
                "failover": {"mode": "timeout", "threshold": 2},
            },
        }
    )
    stacks = describe_stacks(settings)
    sms = stacks["sms"]
    assert sms is not None
    assert sms.label == "ValidatingSender"  # every stack validates recipients first
    (limit,) = sms.children
    assert limit.label == "ConcurrencyLimitSender" and "2 in flight" in limit.detail
    (retry,) = limit.children
    assert retry.label == "IntervalRetrySender" and "3 attempts" in retry.detail
    (failover,) = retry.children
    assert failover.label == "FailoverSender"
    assert [v.label for v in failover.children] == ["aliyun", "tencentcloud"]
    email = stacks["email"]
    assert email is not None
    (timeout_failover,) = email.children
    assert timeout_failover == StackNode(
        "TimeoutFailoverSender",
        "switch after 2 consecutive timeouts",
        (StackNode("smtp", "vendor"),),
    )
    assert email.to_dict()["children"][0]["children"][0]["label"] == "smtp"
    single = describe_stacks(Settings.from_mapping({"sms": {"vendors": [{"plugin": "memory"}]}}))
    assert single["email"] is None
    assert single["sms"] is not None and single["sms"].children == (StackNode("memory", "vendor"),)


def _fields(model: type[BaseModel]) -> list[str]:
    return [name for name in model.model_fields if name not in ("options", "settings")]


def test_reference_lists_every_field(registry: VendorRegistry) -> None:
    text = reference_markdown(registry)
    assert text.startswith("# Configuration reference")
    models = [model for _, model in REFERENCE_SECTIONS]
    for model in (Settings, RedisSettings, ChannelSettings, ConcurrencyLimit, *models):
        for name in _fields(model):
            assert f"| `{name}` |" in text, (model.__name__, name)
    for path, _ in REFERENCE_SECTIONS:
        assert f"## `{path}`" in text
    assert "### `plugin: vault` (sms)" in text
    assert "| `token` |" in text and "| `region` |" in text


def test_settings_repr_masks_every_secret(registry: VendorRegistry) -> None:
    data: dict[str, Any] = {
        "redis": {"url": f"rediss://user:{SECRET}@cache:6380/0"},
        "sms": {"vendors": [{"plugin": "vault", "token": SECRET}]},
    }
    for settings in (Settings.from_mapping(data), Settings.from_mapping(data).bind(registry)):
        assert SECRET not in repr(settings)
        assert SECRET not in str(settings)
        assert SECRET not in str(settings.masked_dict())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{SECRET}@cache:6379/0", "redis://:**********@cache:6379/0"),
        # redis-py takes any query parameter as a client option: ?password= authenticates too.
        (
            f"redis://cache:6379/0?password={SECRET}&db=1",
            "redis://cache:6379/0?password=**********&db=1",
        ),
        (f"redis://app:{SECRET}@[::1]:6379/0", "redis://app:**********@[::1]:6379/0"),
        ("redis://cache:6379/0?client_name=api", "redis://cache:6379/0?client_name=api"),
    ],
)
def test_redis_url_is_shown_with_every_password_masked(url: str, shown: str) -> None:
    settings = Settings.from_mapping({"redis": {"url": url}})
    assert settings.masked_dict()["redis"]["url"] == shown
    assert SECRET not in repr(settings)


class HookSettings(VendorSettings):
    """A third-party vendor whose URLs are plain fields, not secrets."""

    webhook: str
    callback: AnyUrl


class HookPlugin:
    @hookimpl
    def gocomm_register_vendors(self, registry: VendorRegistry) -> None:
        registry.add(
            VendorSpec("hook", frozenset({"sms"}), HookSettings, lambda s: MemorySender("hook"))
        )


def test_a_password_in_any_vendor_url_is_masked() -> None:
    registry = load_registry(entry_points=False, plugins=[HookPlugin()])
    entry = {
        "plugin": "hook",
        "webhook": f"https://hook:{SECRET}@hooks.example.com/sms?sig=1",
        "callback": f"https://example.com/cb?token={SECRET}",
    }
    settings = Settings.from_mapping({"sms": {"vendors": [entry]}}).bind(registry)
    (shown,) = settings.masked_dict()["sms"]["vendors"]
    assert shown["webhook"] == "https://hook:**********@hooks.example.com/sms?sig=1"
    assert shown["callback"] == "https://example.com/cb?token=**********"
    assert SECRET not in render_masked(settings)


class CountedSettings(VendorSettings):
    """A vendor settings model that counts how often it validates."""

    validations: ClassVar[int] = 0
    name: str = "counted"

    @model_validator(mode="after")
    def _count(self) -> CountedSettings:
        type(self).validations += 1
        return self


class CountedPlugin:
    @hookimpl
    def gocomm_register_vendors(self, registry: VendorRegistry) -> None:
        registry.add(
            VendorSpec("counted", frozenset({"sms"}), CountedSettings, lambda _: MemorySender())
        )


def test_vendor_settings_are_validated_once_from_file_to_container(tmp_path: Path) -> None:
    from gocomm.containers import build_container

    registry = load_registry(entry_points=False, plugins=[CountedPlugin()])
    path = write(tmp_path, "sms:\n  vendors: [{plugin: counted, name: a}, {plugin: counted}]\n")
    CountedSettings.validations = 0
    settings = load_settings(path, environ={})
    assert CountedSettings.validations == 0  # loading checks gocomm's own sections only
    bound = settings.bind(registry)
    build_container(bound, registry=registry)  # already bound: not validated again
    build_container(settings, registry=registry)  # binds itself
    assert CountedSettings.validations == 4  # two entries, bound twice in all: once per bind
    assert bound.bind(registry) is not None
    assert CountedSettings.validations == 4
