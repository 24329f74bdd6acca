"""Fixtures: the twilio vendor against the package's own auth-checking fake Messages API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gocomm_twilio import TwilioSettings, TwilioSms
from gocomm_twilio.testing import ACCOUNT_SID, FakeTwilio

MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
TEMPLATES = {
    "login": "Your code is {code}, valid {minutes} minutes.",
    "contract": "Your code is {code}",
    "braces": "{{literal}} {code}",
    "bare": "{code}",
}


@pytest.fixture
async def twilio_server() -> AsyncIterator[FakeTwilio]:
    async with FakeTwilio().serving() as fake:
        yield fake


def make_settings(endpoint: str, **overrides: object) -> TwilioSettings:
    """The fake's own settings (its credentials) with these tests' templates, at ``endpoint``."""
    values: dict[str, object] = {
        "templates": TEMPLATES,
        "endpoint": endpoint,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
    }
    return FakeTwilio().settings(**{**values, **overrides})


@pytest.fixture
async def twilio(twilio_server: FakeTwilio) -> AsyncIterator[TwilioSms]:
    async with TwilioSms(make_settings(twilio_server.url)) as vendor:
        yield vendor
