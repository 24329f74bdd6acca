"""Hostile configuration files: each is one ConfigError naming the file, fast and small.

Not UTF-8, nested 50,000 deep, an integer of 5,000 digits, a lone surrogate, an alias bomb.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from gocomm import _config_sources
from gocomm.config import load_settings
from gocomm.errors import ConfigError

CONSOLE = "sms:\n  vendors: [{plugin: console}]\n"


def refused(tmp_path: Path, content: str | bytes, environ: dict[str, str] | None = None) -> str:
    path = tmp_path / "gocomm.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=environ or {})
    message = str(info.value)
    assert str(path) in message
    assert len(message.splitlines()) == 1, message
    return message


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    message = refused(tmp_path, CONSOLE.encode() + b"  # caf\xe9\n")
    assert "not UTF-8" in message


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("sms: " + "[" * 50_000 + "]" * 50_000 + "\n", id="flow"),
        pytest.param("sms:\n" + "".join(" " * i + "- \n" for i in range(2, 3_000)), id="block"),
        pytest.param("sms: " + "{a: " * 50_000 + "1" + "}" * 50_000 + "\n", id="mappings"),
        pytest.param("sms: " + "[" * 500 + "]" * 500 + "\n", id="within-the-parser-limit"),
    ],
)
def test_nesting_too_deep(tmp_path: Path, text: str) -> None:
    assert "nest" in refused(tmp_path, text)


def test_an_integer_of_5000_digits(tmp_path: Path) -> None:
    message = refused(tmp_path, CONSOLE + "  retry: {max_attempts: " + "7" * 5000 + "}\n")
    assert "not a valid int" in message
    assert "7777" not in message


@pytest.mark.parametrize(
    "value", ["7" * 5000, "[" + "7" * 5000 + "]", "[" * 100_000 + "]" * 100_000]
)
def test_environment_values_too_big_or_deep(value: str) -> None:
    with pytest.raises(ConfigError, match="GOCOMM_SMS__RETRY__MAX_ATTEMPTS") as info:
        load_settings(environ={"GOCOMM_SMS__RETRY__MAX_ATTEMPTS": value})
    assert "7777" not in str(info.value)


def test_a_lone_surrogate(tmp_path: Path) -> None:
    message = refused(tmp_path, 'sms:\n  vendors: [{plugin: console}]\n  x: "\\ud83d"\n')
    assert "surrogate" in message or "invalid Unicode" in message  # libyaml's words


def test_a_lone_surrogate_from_the_environment() -> None:
    # os.environ holds undecodable bytes as lone surrogates (surrogateescape).
    with pytest.raises(ConfigError, match=r"GOCOMM_REDIS__URL.*not valid text"):
        load_settings(environ={"GOCOMM_REDIS__URL": "redis://:p\udcffw@host/0"})


def _bomb(levels: int, width: int = 9) -> str:
    lines = ["a0: &a0 [x]"]
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * width) + "]")
    lines.append(f"sms: {{vendors: [{{plugin: console}}], bomb: *a{levels}}}")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_within_the_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _bomb(9)  # 9**9 = 387 million values out of about 400 bytes
    assert len(text) < 1024
    reads = 0
    original = _config_sources._Reader.read

    def counting(self: _config_sources._Reader, *args: object) -> object:
        nonlocal reads
        reads += 1
        return original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(_config_sources._Reader, "read", counting)
    tracemalloc.start()
    try:
        message = refused(tmp_path, text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "aliases expand to more than" in message
    nodes = 10 + 9 * 10 + 20  # every node of the file once, at most
    assert reads <= _config_sources.ALIAS_BUDGET + nodes
    assert peak < 20 * 2**20  # a few MB, not gigabytes


def test_aliases_within_the_budget_still_work(tmp_path: Path) -> None:
    path = tmp_path / "gocomm.yaml"
    path.write_text(
        "sms: &channel {vendors: [{plugin: console}], retry: {max_attempts: 4}}\nemail: *channel\n"
    )
    settings = load_settings(path, environ={})
    assert settings.sms is not None and settings.email is not None
    assert settings.sms.retry is not None and settings.sms.retry.max_attempts == 4
    assert settings.email.retry is not None and settings.email.retry.max_attempts == 4


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("sms:\n  x:\n" + "    - 1\n" * 130_000, id="block-list"),
        pytest.param("sms: {x: [" + "1," * 500_000 + "1]}\n", id="flow-list"),
        pytest.param("a: &a [1]\nsms: {x: [" + "*a," * 200_000 + "*a]}\n", id="many-aliases"),
    ],
)
def test_a_megabyte_of_values_is_refused_before_it_is_built(tmp_path: Path, text: str) -> None:
    assert len(text) < 2**20
    tracemalloc.start()
    try:
        message = refused(tmp_path, text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"more than {_config_sources.MAX_EVENTS} YAML values" in message
    assert peak < 20 * 2**20
