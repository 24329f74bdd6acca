"""gocomm_twilio.testing: the public fake Messages API that applications test against."""

from __future__ import annotations

import pytest
from gocomm_twilio import TwilioSms
from gocomm_twilio.testing import SERVICE_SID, THROTTLED, FakeTwilio

from gocomm.errors import PermanentError, SendError, is_retryable
from gocomm.testing.vendor_checks import modules_imported_by

from .conftest import make_settings

TEMPLATES = {"login": "Your code is {code}"}
OTHER_SID = "AC" + "a" * 32


async def test_settings_reach_a_fake_with_an_account_and_sender_of_its_own() -> None:
    fake = FakeTwilio(
        account_sid=OTHER_SID, auth_token="app-token", sender={"MessagingServiceSid": SERVICE_SID}
    )
    async with fake.serving():
        async with TwilioSms(fake.settings(templates=TEMPLATES)) as sms:
            receipt = await sms.send("login", {"code": "1234"}, "+14155550100")
        assert receipt.vendor == "twilio"
        assert [(d.recipient, d.text) for d in fake.deliveries] == [
            ("+14155550100", "Your code is 1234")
        ]
        assert fake.server is not None
        assert {r.path for r in fake.server.requests} == {
            f"/2010-04-01/Accounts/{OTHER_SID}/Messages.json"
        }
        assert fake.forms == [
            {"To": "+14155550100", "MessagingServiceSid": SERVICE_SID, "Body": "Your code is 1234"}
        ]
        # As Twilio: another account's path is not found, a wrong token refused (HTTP 401).
        stranger_settings = make_settings(fake.url, templates=TEMPLATES)
        async with TwilioSms(stranger_settings) as stranger:
            with pytest.raises(PermanentError) as caught:
                await stranger.send("login", {"code": "1"}, "+14155550100")
        assert caught.value.code == "20404"
        wrong_token = fake.settings(templates=TEMPLATES, auth_token="not-it")
        async with TwilioSms(wrong_token) as forger:
            with pytest.raises(PermanentError) as caught:
                await forger.send("login", {"code": "1"}, "+14155550100")
        assert caught.value.code == "20003"
    assert len(fake.forms) == 1


async def test_fail_next_throttles_once_with_retry_after() -> None:
    async with FakeTwilio(fail_next=THROTTLED, retry_after="5").serving() as fake:
        settings = fake.settings(templates=TEMPLATES)
        async with TwilioSms(settings) as sms:
            with pytest.raises(SendError) as caught:
                await sms.send("login", {"code": "1"}, "+14155550100")
            assert (caught.value.code, caught.value.retry_after) == (str(THROTTLED), 5.0)
            assert is_retryable(caught.value)
            await sms.send("login", {"code": "2"}, "+14155550100")
    assert [d.text for d in fake.deliveries] == ["Your code is 2"]


def test_url_before_serving_says_how_to_start() -> None:
    with pytest.raises(RuntimeError, match="serving"):
        _ = FakeTwilio().url


def test_the_fake_checks_auth_without_the_vendors_code() -> None:
    vendor_code = ["gocomm_twilio.vendor", "aiohttp"]
    assert modules_imported_by("import gocomm_twilio.testing", vendor_code) == []
