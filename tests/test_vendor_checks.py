"""gocomm.testing.vendor_checks: the checks vendor packages share fail when they should."""

from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel, SecretStr

from gocomm.errors import ConfigError
from gocomm.testing.vendor_checks import assert_not_shown, assert_plugin_entry_point, shown_texts


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
