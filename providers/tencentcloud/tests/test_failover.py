"""One ``biz`` fails over between the aliyun and tencentcloud vendors through FailoverSender.

Both vendors are the real ones over real HTTP on loopback, each against its package's
signature-checking fake (``gocomm_tencentcloud.testing``, ``gocomm_aliyun.testing``).
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

from gocomm.errors import AllSendersFailed, is_retryable
from gocomm.failover import FailoverSender

from .conftest import make_settings

ARGS = {"code": "4321", "minutes": "10"}
TEMPLATES = {
    "aliyun": {"login": "SMS_123456"},
    "tencentcloud": {"login": {"id": "1234", "params": ["code", "minutes"]}},
}


@pytest.fixture
async def aliyun_side() -> AsyncIterator[tuple[FakeAliyun, AliyunSms]]:
    """Aliyun's signature-checking fake, throttling every request until a test says otherwise."""
    async with FakeAliyun(mode=ALIYUN_THROTTLED).serving() as side:
        settings = side.settings(templates=TEMPLATES["aliyun"])
        async with AliyunSms(settings) as vendor:
            yield side, vendor


@pytest.fixture
async def tencent_vendor(tencent_server: FakeTencentCloud) -> AsyncIterator[TencentCloudSms]:
    settings = make_settings(tencent_server.url, templates=TEMPLATES["tencentcloud"])
    async with TencentCloudSms(settings) as vendor:
        yield vendor


async def test_aliyun_throttled_tencent_delivers_the_same_biz(
    aliyun_side: tuple[FakeAliyun, AliyunSms],
    tencent_vendor: TencentCloudSms,
    tencent_server: FakeTencentCloud,
) -> None:
    side, aliyun = aliyun_side
    failover = FailoverSender([aliyun, tencent_vendor])
    receipt = await failover.send("login", ARGS, "+8613800138000")
    assert receipt is not None
    assert receipt.vendor == "tencentcloud"
    # Aliyun was asked with its template code and named params, Tencent with its id and order.
    [form] = side.accepted
    assert (form["TemplateCode"], json.loads(form["TemplateParam"])) == ("SMS_123456", ARGS)
    assert side.deliveries == []  # throttled: Aliyun delivered nothing
    [body] = tencent_server.accepted
    assert (body["TemplateId"], body["TemplateParamSet"]) == ("1234", ["4321", "10"])
    assert [d.recipient for d in tencent_server.deliveries] == ["+8613800138000"]
    assert failover.current_index == 1  # the next send starts at the healthy vendor


async def test_only_the_unsent_numbers_fail_over(
    aliyun_side: tuple[FakeAliyun, AliyunSms],
    tencent_vendor: TencentCloudSms,
    tencent_server: FakeTencentCloud,
) -> None:
    side, aliyun = aliyun_side
    side.mode = "ok"
    tencent_server.number_codes["+8613800138001"] = "LimitExceeded.PhoneNumberThirtySecondLimit"
    failover = FailoverSender([tencent_vendor, aliyun])
    to = ("+8613800138000", "+86 138 0013 8001", "+8613800138002")
    receipt = await failover.send("login", ARGS, *to)
    assert receipt is not None
    assert receipt.vendor == "aliyun"
    delivered_by_tencent = sorted(d.recipient for d in tencent_server.deliveries)
    assert delivered_by_tencent == ["+8613800138000", "+8613800138002"]
    # Aliyun got only the one number Tencent did not reach: nobody gets a second copy.
    assert [f["PhoneNumbers"] for f in side.accepted] == ["13800138001"]
    assert [d.recipient for d in side.deliveries] == ["+8613800138001"]


async def test_both_failing_raises_all_senders_failed(
    aliyun_side: tuple[FakeAliyun, AliyunSms],
    tencent_vendor: TencentCloudSms,
    tencent_server: FakeTencentCloud,
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
    assert len(side.accepted) == 1
    assert tencent_server.deliveries == []
