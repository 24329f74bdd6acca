"""gocomm_tencentcloud.testing: the public fake SMS API that applications test against."""

from __future__ import annotations

import pytest
from gocomm_tencentcloud import TencentCloudSms
from gocomm_tencentcloud.testing import THROTTLED, FakeTencentCloud

from gocomm.errors import PermanentError, SendError, is_retryable
from gocomm.testing.vendor_checks import modules_imported_by

from .conftest import make_settings

TEMPLATES = {"login": {"id": "1234", "params": ["code"]}}


async def test_settings_reach_a_fake_with_credentials_of_its_own() -> None:
    fake = FakeTencentCloud(secret_id="AKID-app", secret_key="app-key", sdk_app_id="1400000042")
    async with fake.serving():
        async with TencentCloudSms(fake.settings(templates=TEMPLATES)) as sms:
            receipt = await sms.send("login", {"code": "1234"}, "+8613800138000")
        assert receipt.vendor == "tencentcloud"
        assert [(d.recipient, d.text) for d in fake.deliveries] == [("+8613800138000", "1234")]
        [body] = fake.accepted
        assert (body["SmsSdkAppId"], body["TemplateId"]) == ("1400000042", "1234")
        # Requests signed with other credentials are refused as Tencent Cloud refuses them.
        async with TencentCloudSms(make_settings(fake.url, templates=TEMPLATES)) as stranger:
            with pytest.raises(PermanentError) as caught:
                await stranger.send("login", {"code": "1"}, "+8613800138000")
        assert caught.value.code == "AuthFailure.SecretIdNotFound"
        wrong_key = fake.settings(templates=TEMPLATES, secret_key="not-it")
        async with TencentCloudSms(wrong_key) as forger:
            with pytest.raises(PermanentError) as caught:
                await forger.send("login", {"code": "1"}, "+8613800138000")
        assert caught.value.code == "AuthFailure.SignatureFailure"
    assert len(fake.accepted) == 1


async def test_a_throttled_number_fails_alone_with_retry_after() -> None:
    fake = FakeTencentCloud(number_codes={"+8613800138001": THROTTLED}, retry_after="4")
    async with fake.serving():
        settings = fake.settings(templates=TEMPLATES)
        async with TencentCloudSms(settings) as sms:
            with pytest.raises(SendError) as caught:
                await sms.send("login", {"code": "1"}, "+8613800138000", "+8613800138001")
    assert (caught.value.code, caught.value.retry_after) == (THROTTLED, 4.0)
    assert is_retryable(caught.value)
    assert caught.value.unsent == ("+8613800138001",)
    assert [d.recipient for d in fake.deliveries] == ["+8613800138000"]


def test_url_before_serving_says_how_to_start() -> None:
    with pytest.raises(RuntimeError, match="serving"):
        _ = FakeTencentCloud().url


def test_the_fake_checks_signatures_without_the_vendors_signing_code() -> None:
    vendor_code = ["gocomm_tencentcloud.signing", "gocomm_tencentcloud.vendor", "aiohttp"]
    assert modules_imported_by("import gocomm_tencentcloud.testing", vendor_code) == []
