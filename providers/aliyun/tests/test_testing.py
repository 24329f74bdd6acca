"""gocomm_aliyun.testing: the public fake Dysmsapi that applications test against."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any

import pytest
from gocomm_aliyun import AliyunSms
from gocomm_aliyun.signing import acs3_authorization, sha256_hex
from gocomm_aliyun.testing import THROTTLED, FakeAliyun

from gocomm.errors import PermanentError, SendError, is_retryable
from gocomm.sender import Receipt
from gocomm.testing.httpserver import HttpRequest
from gocomm.testing.vendor_checks import modules_imported_by

from .conftest import make_settings

TEMPLATES = {"login": "SMS_123456"}


async def test_settings_reach_a_fake_with_credentials_of_its_own() -> None:
    fake = FakeAliyun(access_key_id="LTAI-app", access_key_secret="app-secret")
    async with fake.serving():
        async with AliyunSms(fake.settings(templates=TEMPLATES)) as sms:
            receipt = await sms.send("login", {"code": "1234"}, "+8613800138000", "+85291234567")
        assert receipt == Receipt(vendor="aliyun", message_ids=("biz-1",))
        assert [(d.recipient, d.text) for d in fake.deliveries] == [
            ("+8613800138000", "1234"),
            ("+85291234567", "1234"),
        ]
        # Settings signed with other credentials are refused as Aliyun refuses them.
        async with AliyunSms(make_settings(fake.url)) as stranger:
            with pytest.raises(PermanentError) as caught:
                await stranger.send("login", {"code": "1"}, "+8613800138000")
        assert caught.value.code == "InvalidAccessKeyId.NotFound"
        wrong_secret = fake.settings(templates=TEMPLATES, access_key_secret="not-it")
        async with AliyunSms(wrong_secret) as forger:
            with pytest.raises(PermanentError) as caught:
                await forger.send("login", {"code": "1"}, "+8613800138000")
        assert caught.value.code == "SignatureDoesNotMatch"
    assert len(fake.accepted) == 1


async def test_fail_next_throttles_once_with_retry_after() -> None:
    async with FakeAliyun(fail_next=THROTTLED, retry_after="3").serving() as fake:
        settings = fake.settings(templates=TEMPLATES)
        async with AliyunSms(settings) as sms:
            with pytest.raises(SendError) as caught:
                await sms.send("login", {"code": "1"}, "+8613800138000")
            assert (caught.value.code, caught.value.retry_after) == (THROTTLED, 3.0)
            assert is_retryable(caught.value)
            await sms.send("login", {"code": "2"}, "+8613800138000")
    assert [d.text for d in fake.deliveries] == ["2"]


def test_url_before_serving_says_how_to_start() -> None:
    with pytest.raises(RuntimeError, match="serving"):
        _ = FakeAliyun().url


def test_the_fake_checks_signatures_without_the_vendors_signing_code() -> None:
    vendor_code = ["gocomm_aliyun.signing", "gocomm_aliyun.vendor", "aiohttp"]
    assert modules_imported_by("import gocomm_aliyun.testing", vendor_code) == []


def v3_request(fake: FakeAliyun, **changes: Any) -> HttpRequest:
    """A SendSms signed with V3 as Aliyun documents it, then altered by ``changes``."""
    body = b"PhoneNumbers=13800138000&SignName=gocomm&TemplateCode=SMS_1"
    headers = {
        "host": "127.0.0.1",
        "content-type": "application/x-www-form-urlencoded",
        "x-acs-action": "SendSms",
        "x-acs-version": "2017-05-25",
        "x-acs-date": changes.pop(
            "date", f"{datetime.datetime.now(datetime.UTC):%Y-%m-%dT%H:%M:%SZ}"
        ),
        "x-acs-signature-nonce": changes.pop("nonce", uuid.uuid4().hex),
        "x-acs-content-sha256": sha256_hex(body),
        **changes.pop("extra", {}),
    }
    unsigned = changes.pop("unsigned", ())
    signed = {k: v for k, v in headers.items() if k not in unsigned}
    headers["authorization"] = acs3_authorization(
        fake.access_key_id, changes.pop("secret", fake.access_key_secret), method="POST",
        host="127.0.0.1", path="/", query=(), headers=signed, body=body,
    )  # fmt: skip
    return HttpRequest("POST", "/", headers, changes.pop("body", body), 1)


async def answer(fake: FakeAliyun, request: HttpRequest) -> str:
    return str(json.loads((await fake.handle(request)).body)["Code"])


async def test_the_fake_refuses_v3_requests_as_aliyun_does() -> None:
    fake = FakeAliyun()
    assert await answer(fake, v3_request(fake, nonce="n-1")) == "OK"
    assert await answer(fake, v3_request(fake, nonce="n-1")) == "SignatureNonceUsed"
    assert await answer(fake, v3_request(fake, secret="other")) == "SignatureDoesNotMatch"
    assert await answer(fake, v3_request(fake, body=b"PhoneNumbers=1")) == "InvalidParameter"
    stale = v3_request(fake, date="2020-01-01T00:00:00Z")
    assert await answer(fake, stale) == "InvalidTimeStamp.Expired"
    unsigned = v3_request(fake, extra={"x-acs-extra": "1"}, unsigned=("x-acs-extra",))
    assert await answer(fake, unsigned) == "IncompleteSignature"
    assert len(fake.accepted) == 1
