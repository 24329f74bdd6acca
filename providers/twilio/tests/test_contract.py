"""The twilio vendor passes gocomm's vendor contract suite against the local Messages server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gocomm_twilio import TwilioSms
from gocomm_twilio.testing import AUTH_TOKEN, FakeTwilio

from gocomm.testing.contract import FailureContract, FailureKind, VendorContract

from .conftest import make_settings


class TestTwilioContract(VendorContract, FailureContract):
    channel = "sms"
    vendor_name = "twilio"
    secret_values = (AUTH_TOKEN,)

    @pytest.fixture
    async def outbox(self, twilio_server: FakeTwilio) -> FakeTwilio:
        return twilio_server

    @pytest.fixture
    async def vendor(self, outbox: FakeTwilio) -> AsyncIterator[TwilioSms]:
        async with TwilioSms(make_settings(outbox.url)) as vendor:
            yield vendor

    async def make_failure(self, outbox: FakeTwilio, kind: FailureKind) -> None:
        # 20429: too many requests (HTTP 429); 21606: the From number cannot send messages.
        outbox.fail_next = 20429 if kind == "retryable" else 21606
