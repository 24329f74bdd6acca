"""gocomm.testing.vendor_checks: the checks vendor packages share fail when they should."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import BaseModel, SecretStr

from gocomm.errors import ConfigError
from gocomm.plugins import VendorRegistry, VendorSpec
from gocomm.testing import MemorySender
from gocomm.testing.vendor_checks import (
    assert_hook_registers,
    assert_not_shown,
    assert_plugin_entry_point,
    modules_imported_by,
    shown_texts,
    stalled_server,
)


class Settings(BaseModel):
    token: SecretStr


class LeakyVendor:
    def __init__(self, token: str) -> None:
        self._token = token  # not in its repr, but in its attributes

    def __repr__(self) -> str:
        return "LeakyVendor()"


def test_a_secret_in_the_vendors_attributes_or_the_log_is_caught(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    logging.getLogger("gocomm.test").info("sent with %s", "log-only-secret")
    texts = shown_texts(
        ValueError("refused"), LeakyVendor("attr-secret"), Settings(token="tkn-value-9"), caplog
    )
    assert_not_shown(texts, "tkn-value-9")  # the SecretStr is masked everywhere
    with pytest.raises(AssertionError, match="_token"):
        assert_not_shown(texts, "attr-secret")
    with pytest.raises(AssertionError, match="log-only-secret"):
        assert_not_shown(texts, "log-only-secret")


def test_a_plugin_not_as_described_fails_the_entry_point_check() -> None:
    with pytest.raises(ConfigError, match="no-such-vendor"):
        assert_plugin_entry_point(
            "no-such-vendor", distribution="gocomm-nothing", channels={"sms"}, settings=Settings
        )
    with pytest.raises(AssertionError):
        assert_plugin_entry_point(
            "memory", distribution="gocomm-nothing", channels={"sms"}, settings=Settings
        )


def test_hook_registers_checks_the_spec_it_registers() -> None:
    spec = VendorSpec("x", frozenset({"sms"}), Settings, lambda settings: MemorySender())

    def register(registry: VendorRegistry) -> None:
        registry.add(spec)

    assert_hook_registers(register, spec, name="x", channels={"sms"})
    with pytest.raises(AssertionError):
        assert_hook_registers(register, spec, name="x", channels={"email"})
    with pytest.raises(AssertionError):
        assert_hook_registers(lambda registry: None, spec, name="x", channels={"sms"})


async def test_stalled_server_holds_requests_until_the_block_ends() -> None:
    async with stalled_server() as server:
        host, port = server.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await server.entered.wait()
        with pytest.raises(TimeoutError):  # held: no answer can come while the block runs
            await asyncio.wait_for(reader.read(1), 0.1)
    assert await reader.read() == b""  # closed with the block, the request never answered
    writer.close()


def test_modules_imported_by_runs_a_fresh_interpreter() -> None:
    assert modules_imported_by("import json", ["json", "gocomm.cli"]) == ["json"]
