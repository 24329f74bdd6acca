"""A Redis password with '/', '#', '?' or '@': never shown, refused clearly in a URL, accepted
whole as ``redis.password`` (issue 17.2)."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from redis.asyncio import Redis
from typer.testing import CliRunner

from gocomm.cli import app
from gocomm.config import Settings, load_settings
from gocomm.containers import build_container
from gocomm.errors import ConfigError
from gocomm.masking import mask_url

# Generated passwords: each holds a character that ends a URL's address part.
PASSWORDS = ["Xy7/secretpart9", "Xy7#secretpart9", "Xy7?secretpart9", "Xy7/se?cr#et@pa:rt%9"]
PIECES = ("secretpart9", "se?cr#et", "cr#et@pa", "rt%9")


CONFIG = (
    'redis: {url: "redis://:${REDIS_PASSWORD}@cache.internal:6379/0"}\n'
    "sms:\n  vendors: [{plugin: console}]\n"
    "  ratelimit: {backend: redis, algorithm: sliding_window, key: 'k', rate: 1, window: 5}\n"
)


def _shows_none(text: str) -> bool:
    return not any(piece in text for piece in PIECES)


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("tail", ["host:6379/0", "host/0?db=1", "host"])
def test_mask_url_never_shows_userinfo_it_could_not_parse(password: str, tail: str) -> None:
    shown = mask_url(f"redis://:{password}@{tail}")
    assert _shows_none(shown), shown
    assert shown.endswith(f"@{tail}")


@pytest.mark.parametrize("password", PASSWORDS)
def test_the_documented_pattern_is_a_clear_config_error(tmp_path: Path, password: str) -> None:
    path = tmp_path / "gocomm.yaml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={"REDIS_PASSWORD": password})
    message = str(info.value)
    assert "redis.url" in message and "percent-encode" in message and "redis.password" in message
    assert "Port could not be cast" not in message
    assert _shows_none(message), message


@pytest.mark.parametrize(
    "command", [["config"], ["send", "sms", "--to", "+8613800138000", "--biz", "login"]]
)
def test_the_cli_exits_2_without_showing_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    path = tmp_path / "gocomm.yaml"
    path.write_text(CONFIG)
    result = CliRunner().invoke(
        app,
        ["--config", str(path), *command],
        env={"REDIS_PASSWORD": PASSWORDS[-1], "COLUMNS": "200", "NO_COLOR": "1"},
    )
    assert result.exit_code == 2, result.output
    assert "percent-encode" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert _shows_none(result.output), result.output


def test_a_password_in_both_places_is_refused() -> None:
    with pytest.raises(ConfigError, match="either in url or as password"):
        Settings.from_mapping({"redis": {"url": "redis://:a@host/0", "password": "b"}})


@pytest.mark.parametrize("password", PASSWORDS)
def test_redis_password_is_percent_encoded_and_never_shown(password: str) -> None:
    settings = Settings.from_mapping(
        {"redis": {"url": "redis://app@cache:6379/0", "password": password}}
    )
    assert settings.redis is not None
    assert settings.redis.connection_url() == f"redis://app:{quote(password, safe='')}@cache:6379/0"
    assert _shows_none(repr(settings)) and _shows_none(str(settings.masked_dict()))


async def test_the_container_connects_with_redis_password(redis_url: str) -> None:
    # A real Redis user whose password holds every troublesome character.
    password = PASSWORDS[-1]
    user = f"gocomm-{uuid.uuid4().hex[:8]}"
    admin = Redis.from_url(redis_url)
    try:
        await admin.acl_setuser(user, enabled=True, passwords=[f"+{password}"], commands=["+ping"])
        host = redis_url.split("://", 1)[1]
        container = build_container(
            {
                "redis": {"url": f"redis://{user}@{host}", "password": password},
                "sms": {
                    "vendors": [{"plugin": "console"}],
                    "ratelimit": {
                        "backend": "redis",
                        "algorithm": "sliding_window",
                        "key": "sms:{to}",
                        "rate": 1,
                        "window": 60,
                    },
                },
            }
        )
        try:
            client = await container.redis()
            assert await client.ping()
        finally:
            await container.shutdown_resources()
    finally:
        await admin.acl_deluser(user)
        await admin.aclose()
