"""One ``biz`` fails over between any two SMS vendors, in either order, through FailoverSender.

Each vendor is the real one over real HTTP on loopback, against its package's public fake
(``gocomm_aliyun.testing``, ``gocomm_tencentcloud.testing``, ``gocomm_twilio.testing``), which
checks credentials and signatures and records what the vendor asked for. A :class:`Vendor`
says, for one of them, how to script its fake and how to read what it was asked.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from gocomm_aliyun import AliyunSms
from gocomm_aliyun.testing import THROTTLED as ALIYUN_THROTTLED
from gocomm_aliyun.testing import FakeAliyun
from gocomm_tencentcloud import TencentCloudSms
from gocomm_tencentcloud.testing import THROTTLED as TENCENT_THROTTLED
from gocomm_tencentcloud.testing import FakeTencentCloud
from gocomm_twilio import TwilioSms
from gocomm_twilio.testing import THROTTLED as TWILIO_THROTTLED
from gocomm_twilio.testing import FakeTwilio

from gocomm.errors import AllSendersFailed, is_retryable
from gocomm.failover import FailoverSender
from gocomm.httpvendor import HttpSmsVendor
from gocomm.testing.httpserver import FakeVendorServer

ARGS = {"code": "4321", "minutes": "10"}
BODY = "Your code is 4321, valid 10 minutes."


def _fail_aliyun_number(fake: Any, number: str) -> None:
    # Aliyun fails the whole request holding the number: the vendor sends the others apart.
    fake.fail_numbers[number.removeprefix("+86")] = ALIYUN_THROTTLED


def _fail_tencent_number(fake: Any, number: str) -> None:
    fake.number_codes[number] = TENCENT_THROTTLED  # one status in the answer's set


def _fail_twilio_number(fake: Any, number: str) -> None:
    fake.number_status[number] = "failed"  # created, then filtered by the carrier


def _fail_aliyun(fake: Any, number: str) -> str:
    fake.mode = ALIYUN_THROTTLED
    return ALIYUN_THROTTLED


def _fail_tencent(fake: Any, number: str) -> str:
    fake.mode = "InternalError.Timeout"
    return "InternalError.Timeout"


def _fail_twilio(fake: Any, number: str) -> str:
    fake.number_codes[number] = TWILIO_THROTTLED
    return str(TWILIO_THROTTLED)


@dataclass(frozen=True)
class Vendor:
    """One SMS vendor as this test drives it."""

    name: str
    fake: Callable[[], FakeVendorServer]
    sms: Callable[[Any], HttpSmsVendor]
    #: The vendor's own mapping of the ``login`` biz.
    template: object
    #: What each request the fake accepted asked for (template and params, or the text).
    asked: Callable[[Any], list[object]]
    #: What one request of the ``login`` biz with :data:`ARGS` asks for.
    expected_ask: object
    #: Fail every request for a number with a retryable error; returns its code.
    fail_all: Callable[[Any, str], str]
    #: Fail one number with a retryable error, the others of its request still sent.
    fail_one: Callable[[Any, str], None]


ALIYUN = Vendor(
    name="aliyun",
    fake=FakeAliyun,
    sms=AliyunSms,
    template="SMS_123456",
    asked=lambda fake: [(f["TemplateCode"], json.loads(f["TemplateParam"])) for f in fake.accepted],
    expected_ask=("SMS_123456", ARGS),
    fail_all=_fail_aliyun,
    fail_one=_fail_aliyun_number,
)
TENCENT = Vendor(
    name="tencentcloud",
    fake=FakeTencentCloud,
    sms=TencentCloudSms,
    template={"id": "1234", "params": ["code", "minutes"]},
    asked=lambda fake: [(b["TemplateId"], b["TemplateParamSet"]) for b in fake.accepted],
    expected_ask=("1234", ["4321", "10"]),
    fail_all=_fail_tencent,
    fail_one=_fail_tencent_number,
)
TWILIO = Vendor(
    name="twilio",
    fake=FakeTwilio,
    sms=TwilioSms,
    template="Your code is {code}, valid {minutes} minutes.",
    asked=lambda fake: [f["Body"] for f in fake.forms],
    expected_ask=BODY,
    fail_all=_fail_twilio,
    fail_one=_fail_twilio_number,
)


@dataclass
class Side:
    """A vendor running against its fake."""

    vendor: Vendor
    fake: Any
    sms: HttpSmsVendor

    def asked(self) -> list[object]:
        return self.vendor.asked(self.fake)

    def delivered(self) -> list[str]:
        return sorted(d.recipient for d in self.fake.deliveries)


@pytest.fixture(
    params=list(itertools.permutations([ALIYUN, TENCENT, TWILIO], 2)),
    ids=lambda pair: f"{pair[0].name}-then-{pair[1].name}",
)
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Side, Side]]:
    """The first and the second vendor of a FailoverSender, each against its own fake."""
    async with AsyncExitStack() as stack:
        sides = []
        for vendor in request.param:
            fake = await stack.enter_async_context(vendor.fake().serving())
            settings = fake.settings(templates={"login": vendor.template})
            sms = await stack.enter_async_context(vendor.sms(settings))
            sides.append(Side(vendor, fake, sms))
        yield sides[0], sides[1]


async def test_the_same_biz_fails_over_with_each_vendors_own_template(
    pair: tuple[Side, Side],
) -> None:
    first, second = pair
    first.vendor.fail_all(first.fake, "+8613800138000")
    failover = FailoverSender([first.sms, second.sms])
    receipt = await failover.send("login", ARGS, "+8613800138000")
    assert receipt is not None
    assert receipt.vendor == second.vendor.name
    # Each vendor was asked with its own mapping of "login": code and params, or rendered text.
    assert first.asked() == [first.vendor.expected_ask]
    assert first.delivered() == []
    assert second.asked() == [second.vendor.expected_ask]
    assert second.delivered() == ["+8613800138000"]
    assert failover.current_index == 1  # the next send starts at the healthy vendor


async def test_only_the_unsent_numbers_fail_over_and_nobody_gets_two(
    pair: tuple[Side, Side],
) -> None:
    first, second = pair
    first.vendor.fail_one(first.fake, "+8613800138001")
    failover = FailoverSender([first.sms, second.sms])
    to = ("+8613800138000", "+86 138 0013 8001", "+8613800138002")
    receipt = await failover.send("login", ARGS, *to)
    assert receipt is not None
    assert receipt.vendor == second.vendor.name
    assert first.delivered() == ["+8613800138000", "+8613800138002"]
    # The second vendor is asked for only the number the first did not reach.
    assert second.delivered() == ["+8613800138001"]
    assert second.asked()
    assert all(ask == second.vendor.expected_ask for ask in second.asked())


async def test_every_vendor_failing_raises_all_senders_failed_with_every_code(
    pair: tuple[Side, Side],
) -> None:
    first, second = pair
    number = "+8613800138000"
    codes = [side.vendor.fail_all(side.fake, number) for side in pair]
    failover = FailoverSender([first.sms, second.sms])
    with pytest.raises(AllSendersFailed) as caught:
        await failover.send("login", ARGS, number)
    assert [getattr(e, "code", None) for e in caught.value.exceptions] == codes
    assert caught.value.unsent == (number,)
    assert is_retryable(caught.value)
    for side in pair:
        assert len(side.asked()) == 1  # each vendor asked once, nobody twice
        assert side.delivered() == []


async def test_a_field_twilio_lacks_moves_on_before_any_twilio_request() -> None:
    async with FakeTwilio().serving() as twilio, FakeAliyun().serving() as aliyun:
        async with (
            TwilioSms(twilio.settings(templates={"login": TWILIO.template})) as first,
            AliyunSms(aliyun.settings(templates={"login": ALIYUN.template})) as second,
        ):
            failover = FailoverSender([first, second])
            receipt = await failover.send("login", {"code": "4321"}, "+8613800138000")
        assert receipt is not None
        assert receipt.vendor == "aliyun"
        assert twilio.server is not None
        assert twilio.server.requests == []
