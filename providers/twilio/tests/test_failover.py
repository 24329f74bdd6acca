"""One ``biz`` fails over between Aliyun or Tencent Cloud and Twilio through FailoverSender.

Every vendor is the real one over real HTTP on loopback. Twilio's side is this package's
auth-checking fake; Aliyun's and Tencent Cloud's are small servers speaking their answer shapes
(their own packages test the signatures), recording what each vendor asked for.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from gocomm_aliyun import AliyunSettings, AliyunSms
from gocomm_tencentcloud import TencentCloudSettings, TencentCloudSms
from gocomm_twilio import TwilioSms

from gocomm.errors import AllSendersFailed, is_retryable
from gocomm.failover import FailoverSender
from gocomm.testing.httpserver import HttpRequest, HttpResponse, LocalHttpServer

from .conftest import FakeTwilio, make_settings

ARGS = {"code": "4321", "minutes": "10"}
TEMPLATES = {
    "aliyun": {"login": "SMS_123456"},
    "tencentcloud": {"login": {"id": "1234", "params": ["code", "minutes"]}},
    "twilio": {"login": "Your code is {code}, valid {minutes} minutes."},
}
BODY = "Your code is 4321, valid 10 minutes."


@dataclass
class AliyunSide:
    """Answers SendSms with ``code`` ("OK" or an Aliyun error code); records each form."""

    code: str = "isv.BUSINESS_LIMIT_CONTROL"
    forms: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, request: HttpRequest) -> HttpResponse:
        form = request.form()
        self.forms.append(form)
        answer = {"RequestId": "r", "Code": self.code, "Message": self.code}
        if self.code == "OK":
            answer["BizId"] = f"biz-{len(self.forms)}"
        return HttpResponse.json(answer)


@dataclass
class TencentSide:
    """Answers SendSms with one status per number (``number_codes``, default "Ok")."""

    number_codes: dict[str, str] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: HttpRequest) -> HttpResponse:
        assert request.headers["authorization"].startswith("TC3-HMAC-SHA256 ")
        assert request.headers["x-tc-action"] == "SendSms"
        body = request.json()
        self.bodies.append(body)
        statuses = [
            {
                "SerialNo": f"serial-{number}",
                "PhoneNumber": number,
                "Code": self.number_codes.get(number, "Ok"),
                "Message": "send success",
            }
            for number in body["PhoneNumberSet"]
        ]
        return HttpResponse.json({"Response": {"SendStatusSet": statuses, "RequestId": "r"}})


@pytest.fixture
async def aliyun_side() -> AsyncIterator[tuple[AliyunSide, AliyunSms]]:
    side = AliyunSide()
    async with LocalHttpServer(side.handle) as server:
        settings = AliyunSettings.model_validate(
            {
                "access_key_id": "id",
                "access_key_secret": "secret",
                "sign_name": "gocomm",
                "templates": TEMPLATES["aliyun"],
                "endpoint": server.url,
            }
        )
        async with AliyunSms(settings) as vendor:
            yield side, vendor


@pytest.fixture
async def tencent_side() -> AsyncIterator[tuple[TencentSide, TencentCloudSms]]:
    side = TencentSide()
    async with LocalHttpServer(side.handle) as server:
        settings = TencentCloudSettings.model_validate(
            {
                "secret_id": "id",
                "secret_key": "key",
                "sdk_app_id": "1400000000",
                "sign_name": "gocomm",
                "templates": TEMPLATES["tencentcloud"],
                "endpoint": server.url,
            }
        )
        async with TencentCloudSms(settings) as vendor:
            yield side, vendor


@pytest.fixture
async def twilio_vendor(twilio_server: FakeTwilio) -> AsyncIterator[TwilioSms]:
    settings = make_settings(twilio_server.url, templates=TEMPLATES["twilio"])
    async with TwilioSms(settings) as vendor:
        yield vendor


async def test_aliyun_throttled_twilio_delivers_the_same_biz(
    aliyun_side: tuple[AliyunSide, AliyunSms],
    twilio_vendor: TwilioSms,
    twilio_server: FakeTwilio,
) -> None:
    side, aliyun = aliyun_side
    failover = FailoverSender([aliyun, twilio_vendor])
    receipt = await failover.send("login", ARGS, "+8613800138000")
    assert receipt is not None
    assert receipt.vendor == "twilio"
    # Aliyun was asked with its template code and named params, Twilio with the rendered body.
    [form] = side.forms
    assert (form["TemplateCode"], json.loads(form["TemplateParam"])) == ("SMS_123456", ARGS)
    assert [(d.recipient, d.text) for d in twilio_server.deliveries] == [("+8613800138000", BODY)]
    assert failover.current_index == 1  # the next send starts at the healthy vendor


async def test_only_the_numbers_tencent_did_not_reach_fail_over_to_twilio(
    tencent_side: tuple[TencentSide, TencentCloudSms],
    twilio_vendor: TwilioSms,
    twilio_server: FakeTwilio,
) -> None:
    side, tencent = tencent_side
    side.number_codes["+8613800138001"] = "LimitExceeded.PhoneNumberThirtySecondLimit"
    failover = FailoverSender([tencent, twilio_vendor])
    to = ("+8613800138000", "+86 138 0013 8001", "+8613800138002")
    receipt = await failover.send("login", ARGS, *to)
    assert receipt is not None
    assert receipt.vendor == "twilio"
    [body] = side.bodies
    assert (body["TemplateId"], body["TemplateParamSet"]) == ("1234", ["4321", "10"])
    # Twilio got only the one number Tencent did not reach: nobody gets a second copy.
    assert [f["To"] for f in twilio_server.forms] == ["+8613800138001"]
    assert twilio_server.forms[0]["Body"] == BODY


async def test_twilio_partial_failure_fails_over_only_the_unsent(
    aliyun_side: tuple[AliyunSide, AliyunSms],
    twilio_vendor: TwilioSms,
    twilio_server: FakeTwilio,
) -> None:
    side, aliyun = aliyun_side
    side.code = "OK"
    twilio_server.number_status["+8613800138001"] = "failed"  # filtered by the carrier
    failover = FailoverSender([twilio_vendor, aliyun])
    receipt = await failover.send("login", ARGS, "+8613800138000", "+8613800138001")
    assert receipt is not None
    assert receipt.vendor == "aliyun"
    assert [d.recipient for d in twilio_server.deliveries] == ["+8613800138000"]
    assert [f["PhoneNumbers"] for f in side.forms] == ["13800138001"]


async def test_a_field_twilio_lacks_moves_on_before_any_twilio_request(
    aliyun_side: tuple[AliyunSide, AliyunSms],
    twilio_vendor: TwilioSms,
    twilio_server: FakeTwilio,
) -> None:
    side, aliyun = aliyun_side
    side.code = "OK"
    failover = FailoverSender([twilio_vendor, aliyun])
    receipt = await failover.send("login", {"code": "4321"}, "+8613800138000")  # no minutes
    assert receipt is not None
    assert receipt.vendor == "aliyun"
    assert twilio_server.server is not None
    assert twilio_server.server.requests == []


async def test_every_vendor_failing_raises_all_senders_failed(
    tencent_side: tuple[TencentSide, TencentCloudSms],
    twilio_vendor: TwilioSms,
    twilio_server: FakeTwilio,
) -> None:
    side, tencent = tencent_side
    side.number_codes["+8613800138000"] = "InternalError.Timeout"
    twilio_server.number_codes["+8613800138000"] = 20429
    failover = FailoverSender([tencent, twilio_vendor])
    with pytest.raises(AllSendersFailed) as caught:
        await failover.send("login", ARGS, "+8613800138000")
    codes = [getattr(e, "code", None) for e in caught.value.exceptions]
    assert codes == ["InternalError.Timeout", "20429"]
    assert caught.value.unsent == ("+8613800138000",)
    assert is_retryable(caught.value)
    assert twilio_server.deliveries == []
