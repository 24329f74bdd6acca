"""One ``biz`` fails over between the aliyun and tencentcloud vendors through FailoverSender.

Both vendors are the real ones over real HTTP on loopback: Tencent Cloud's side is the
signature-checking fake of this package, Aliyun's a small Dysmsapi-shaped server that answers
with a throttling code or success.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from gocomm_aliyun import AliyunSettings, AliyunSms
from gocomm_tencentcloud import TencentCloudSms

from gocomm.errors import AllSendersFailed, is_retryable
from gocomm.failover import FailoverSender
from gocomm.testing.httpserver import HttpRequest, HttpResponse, LocalHttpServer

from .conftest import FakeTencent, make_settings

ARGS = {"code": "4321", "minutes": "10"}
TEMPLATES = {
    "aliyun": {"login": "SMS_123456"},
    "tencentcloud": {"login": {"id": "1234", "params": ["code", "minutes"]}},
}


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
async def tencent_vendor(tencent_server: FakeTencent) -> AsyncIterator[TencentCloudSms]:
    settings = make_settings(tencent_server.url, templates=TEMPLATES["tencentcloud"])
    async with TencentCloudSms(settings) as vendor:
        yield vendor


async def test_aliyun_throttled_tencent_delivers_the_same_biz(
    aliyun_side: tuple[AliyunSide, AliyunSms],
    tencent_vendor: TencentCloudSms,
    tencent_server: FakeTencent,
) -> None:
    side, aliyun = aliyun_side
    failover = FailoverSender([aliyun, tencent_vendor])
    receipt = await failover.send("login", ARGS, "+8613800138000")
    assert receipt is not None
    assert receipt.vendor == "tencentcloud"
    # Aliyun was asked with its template code and named params, Tencent with its id and order.
    [form] = side.forms
    assert (form["TemplateCode"], json.loads(form["TemplateParam"])) == ("SMS_123456", ARGS)
    [body] = tencent_server.accepted
    assert (body["TemplateId"], body["TemplateParamSet"]) == ("1234", ["4321", "10"])
    assert [d.recipient for d in tencent_server.deliveries] == ["+8613800138000"]
    assert failover.current_index == 1  # the next send starts at the healthy vendor


async def test_only_the_unsent_numbers_fail_over(
    aliyun_side: tuple[AliyunSide, AliyunSms],
    tencent_vendor: TencentCloudSms,
    tencent_server: FakeTencent,
) -> None:
    side, aliyun = aliyun_side
    side.code = "OK"
    tencent_server.number_codes["+8613800138001"] = "LimitExceeded.PhoneNumberThirtySecondLimit"
    failover = FailoverSender([tencent_vendor, aliyun])
    to = ("+8613800138000", "+86 138 0013 8001", "+8613800138002")
    receipt = await failover.send("login", ARGS, *to)
    assert receipt is not None
    assert receipt.vendor == "aliyun"
    delivered_by_tencent = sorted(d.recipient for d in tencent_server.deliveries)
    assert delivered_by_tencent == ["+8613800138000", "+8613800138002"]
    # Aliyun got only the one number Tencent did not reach: nobody gets a second copy.
    assert [f["PhoneNumbers"] for f in side.forms] == ["13800138001"]


async def test_both_failing_raises_all_senders_failed(
    aliyun_side: tuple[AliyunSide, AliyunSms],
    tencent_vendor: TencentCloudSms,
    tencent_server: FakeTencent,
) -> None:
    side, aliyun = aliyun_side
    tencent_server.mode = "InternalError.Timeout"
    failover = FailoverSender([aliyun, tencent_vendor])
    with pytest.raises(AllSendersFailed) as caught:
        await failover.send("login", ARGS, "+8613800138000")
    codes = [getattr(e, "code", None) for e in caught.value.exceptions]
    assert codes == ["isv.BUSINESS_LIMIT_CONTROL", "InternalError.Timeout"]
    assert caught.value.unsent == ("+8613800138000",)
    assert is_retryable(caught.value)
    assert len(side.forms) == 1
    assert tencent_server.deliveries == []
