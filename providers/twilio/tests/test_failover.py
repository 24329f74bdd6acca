"""One ``biz`` fails over between Aliyun or Tencent Cloud and Twilio through FailoverSender.

Every vendor is the real one over real HTTP on loopback, each against its package's fake
(``gocomm_twilio.testing``, ``gocomm_aliyun.testing``, ``gocomm_tencentcloud.testing``), which
checks credentials and signatures and records what each vendor asked for.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from gocomm_aliyun import AliyunSms
from gocomm_aliyun.testing import THROTTLED as ALIYUN_THROTTLED
from gocomm_aliyun.testing import FakeAliyun
from gocomm_tencentcloud import TencentCloudSms
from gocomm_tencentcloud.testing import FakeTencentCloud
from gocomm_twilio import TwilioSms
from gocomm_twilio.testing import FakeTwilio

from gocomm.errors import AllSendersFailed, is_retryable
from gocomm.failover import FailoverSender

from .conftest import make_settings

ARGS = {"code": "4321", "minutes": "10"}
TEMPLATES = {
    "aliyun": {"login": "SMS_123456"},
    "tencentcloud": {"login": {"id": "1234", "params": ["code", "minutes"]}},
    "twilio": {"login": "Your code is {code}, valid {minutes} minutes."},
}
BODY = "Your code is 4321, valid 10 minutes."


@pytest.fixture
async def aliyun_side() -> AsyncIterator[tuple[FakeAliyun, AliyunSms]]:
    """Aliyun's signature-checking fake, throttling every request until a test says otherwise."""
    async with FakeAliyun(mode=ALIYUN_THROTTLED).serving() as side:
        settings = side.settings(templates=TEMPLATES["aliyun"])
        async with AliyunSms(settings) as vendor:
            yield side, vendor


@pytest.fixture
async def tencent_side() -> AsyncIterator[tuple[FakeTencentCloud, TencentCloudSms]]:
    """Tencent Cloud's signature-checking fake; ``number_codes`` fails single numbers."""
    async with FakeTencentCloud().serving() as side:
        settings = side.settings(templates=TEMPLATES["tencentcloud"])
        async with TencentCloudSms(settings) as vendor:
            yield side, vendor


@pytest.fixture
async def twilio_vendor(twilio_server: FakeTwilio) -> AsyncIterator[TwilioSms]:
    settings = make_settings(twilio_server.url, templates=TEMPLATES["twilio"])
    async with TwilioSms(settings) as vendor:
        yield vendor


async def test_aliyun_throttled_twilio_delivers_the_same_biz(
    aliyun_side: tuple[FakeAliyun, AliyunSms],
    twilio_vendor: TwilioSms,
    twilio_server: FakeTwilio,
) -> None:
    side, aliyun = aliyun_side
    failover = FailoverSender([aliyun, twilio_vendor])
    receipt = await failover.send("login", ARGS, "+8613800138000")
    assert receipt is not None
    assert receipt.vendor == "twilio"
    # Aliyun was asked with its template code and named params, Twilio with the rendered body.
    [form] = side.accepted
    assert (form["TemplateCode"], json.loads(form["TemplateParam"])) == ("SMS_123456", ARGS)
    assert side.deliveries == []  # throttled: Aliyun delivered nothing
    assert [(d.recipient, d.text) for d in twilio_server.deliveries] == [("+8613800138000", BODY)]
    assert failover.current_index == 1  # the next send starts at the healthy vendor


async def test_only_the_numbers_tencent_did_not_reach_fail_over_to_twilio(
    tencent_side: tuple[FakeTencentCloud, TencentCloudSms],
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
    [body] = side.accepted
    assert (body["TemplateId"], body["TemplateParamSet"]) == ("1234", ["4321", "10"])
    assert sorted(d.recipient for d in side.deliveries) == ["+8613800138000", "+8613800138002"]
    # Twilio got only the one number Tencent did not reach: nobody gets a second copy.
    assert [f["To"] for f in twilio_server.forms] == ["+8613800138001"]
    assert twilio_server.forms[0]["Body"] == BODY


async def test_twilio_partial_failure_fails_over_only_the_unsent(
    aliyun_side: tuple[FakeAliyun, AliyunSms],
    twilio_vendor: TwilioSms,
    twilio_server: FakeTwilio,
) -> None:
    side, aliyun = aliyun_side
    side.mode = "ok"
    twilio_server.number_status["+8613800138001"] = "failed"  # filtered by the carrier
    failover = FailoverSender([twilio_vendor, aliyun])
    receipt = await failover.send("login", ARGS, "+8613800138000", "+8613800138001")
    assert receipt is not None
    assert receipt.vendor == "aliyun"
    assert [d.recipient for d in twilio_server.deliveries] == ["+8613800138000"]
    assert [f["PhoneNumbers"] for f in side.accepted] == ["13800138001"]
    assert [d.recipient for d in side.deliveries] == ["+8613800138001"]


async def test_a_field_twilio_lacks_moves_on_before_any_twilio_request(
    aliyun_side: tuple[FakeAliyun, AliyunSms],
    twilio_vendor: TwilioSms,
    twilio_server: FakeTwilio,
) -> None:
    side, aliyun = aliyun_side
    side.mode = "ok"
    failover = FailoverSender([twilio_vendor, aliyun])
    receipt = await failover.send("login", {"code": "4321"}, "+8613800138000")  # no minutes
    assert receipt is not None
    assert receipt.vendor == "aliyun"
    assert twilio_server.server is not None
    assert twilio_server.server.requests == []


async def test_every_vendor_failing_raises_all_senders_failed(
    tencent_side: tuple[FakeTencentCloud, TencentCloudSms],
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
    assert side.deliveries == []
    assert twilio_server.deliveries == []
