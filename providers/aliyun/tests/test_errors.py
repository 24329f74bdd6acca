"""Every code Aliyun documents for SendSms, classified; codes about one number refuse only it."""

from __future__ import annotations

import pytest
from gocomm_aliyun import AliyunSms
from gocomm_aliyun.codes import ERROR_CODES, error_class
from gocomm_aliyun.testing import THROTTLED, FakeAliyun

from gocomm.errors import InvalidRecipient, PermanentError, SendError, is_retryable
from gocomm.failover import FailoverSender
from gocomm.retryable import RetrySender

from .conftest import make_settings

MAINLAND = "+8613800138000"

# Aliyun's documented SendSms codes (its "API错误码" page, the OpenAPI gateway's common codes)
# and what each must become. Copied here on purpose: the test does not read the vendor's table.
PERMANENT = [
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL",
    "isv.SMS_SIGNATURE_ILLEGAL",
    "isv.SMS_SIGN_ILLEGAL",
    "isv.SMS_SIGN_NAME_ILLEGAL",
    "isv.SIGN_STATE_ILLEGAL",
    "isv.EXTEND_CODE_ERROR",
    "isv.SMS_TEMPLATE_ILLEGAL",
    "isv.SMS_CONTENT_ILLEGAL",
    "isv.SMS_CONTENT_CODE_ILLEGAL",
    "isv.TEMPLATE_MISSING_PARAMETERS",
    "isv.TEMPLATE_PARAMS_ILLEGAL",
    "isv.INVALID_PARAMETERS",
    "isv.INVALID_JSON_PARAM",
    "isv.PARAM_LENGTH_LIMIT",
    "isv.PARAM_NOT_SUPPORT_URL",
    "isv.BLACK_KEY_CONTROL_LIMIT",
    "isv.MOBILE_COUNT_OVER_LIMIT",
    "isv.DOMESTIC_NUMBER_NOT_SUPPORTED",
    "isv.NOT_SUPPORTED_COUNTRY",
    "isv.COUNTRY_RESTRICTED",
    "isv.AMOUNT_NOT_ENOUGH",
    "isv.OUT_OF_SERVICE",
    "isv.PRODUCT_UN_SUBSCRIPT",
    "isv.PRODUCT_UNSUBSCRIBE",
    "isv.ACCOUNT_NOT_EXISTS",
    "isv.ACCOUNT_ABNORMAL",
    "isv.DENY_IP_RANGE",
    "isv.FORBIDDEN_ACTION",
    "isv.RAM_PERMISSION_DENY",
    "isp.RAM_PERMISSION_DENY",
    "InvalidAccessKeyId.NotFound",
    "InvalidAccessKeyId.Inactive",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidAction.NotFound",
    "InvalidVersion",
    "MissingParameter",
    "Forbidden.RAM",
]
# The account's own caps: not retried here, but nobody is refused (failover moves on).
ACCOUNT_CAPS = ["isv.DAY_LIMIT_CONTROL", "isv.MONTH_LIMIT_CONTROL"]
RETRYABLE = [
    "isv.BUSINESS_LIMIT_CONTROL",  # minute/hour level; the day level is below
    "isp.SYSTEM_ERROR",
    "isp.GATEWAY_ERROR",
    "isp.UNKNOWN",
    "isv.DATA_NOT_EXIST",
    "isv.BILLING_DEDUCTION_ERROR",
    "Throttling",
    "Throttling.User",
    "Throttling.Api",
    "ServiceUnavailable",
    "InternalError",
    "SignatureNonceUsed",
    "InvalidTimeStamp.Expired",
    "isv.SOMETHING_NEW",  # a code gocomm does not know is retryable
]
TABLE = (
    [(code, PermanentError) for code in PERMANENT + ACCOUNT_CAPS]
    + [(code, SendError) for code in RETRYABLE]
    + [("isv.MOBILE_NUMBER_ILLEGAL", InvalidRecipient)]
)
DAILY = "触发天级流控Permits:10"
MINUTELY = "触发分钟级流控Permits:1"


@pytest.mark.parametrize(("code", "expected"), TABLE, ids=[code for code, _ in TABLE])
async def test_every_documented_code_is_classified(
    aliyun: AliyunSms, aliyun_server: FakeAliyun, code: str, expected: type[SendError]
) -> None:
    aliyun_server.mode = code
    aliyun_server.retry_after = "7"
    with pytest.raises(SendError) as caught:
        await aliyun.send("login", {"code": "1"}, MAINLAND)
    error = caught.value
    assert type(error) is expected
    assert (error.code, error.vendor) == (code, "aliyun")
    assert is_retryable(error) is (expected is SendError)
    if expected is InvalidRecipient:  # the number is refused for good, not owed
        assert (error.unsent, error.refused) == ((), (MAINLAND,))
    else:
        assert (error.unsent, error.refused) == ((MAINLAND,), ())
    assert error.retry_after == 7.0
    assert ("retry later" in str(error)) is (expected is SendError)


def test_the_table_covers_every_code_the_vendor_classifies() -> None:
    tested = {code for code, _ in TABLE}
    classified = (
        ERROR_CODES.permanent | ERROR_CODES.retryable | ERROR_CODES.invalid | ERROR_CODES.refusing
    )
    exact = {code for code in classified if not code.endswith(".*")}
    assert exact <= tested
    for prefix in classified - exact:
        assert any(code.startswith(prefix[:-1]) for code in tested), prefix
    # And no tested code falls to the default for unknown codes by accident.
    assert {code for code in tested if not ERROR_CODES.knows(code)} == {"isv.SOMETHING_NEW"}


def test_frequency_control_level_decides() -> None:
    assert error_class("isv.BUSINESS_LIMIT_CONTROL", MINUTELY) is SendError
    assert error_class("isv.BUSINESS_LIMIT_CONTROL", "触发小时级流控Permits:5") is SendError
    assert error_class("isv.BUSINESS_LIMIT_CONTROL", DAILY) is PermanentError
    assert error_class("isv.BUSINESS_LIMIT_CONTROL", "day-level flow control") is PermanentError
    assert error_class("isv.BUSINESS_LIMIT_CONTROL", "Daily limit reached") is PermanentError
    assert error_class("isv.BUSINESS_LIMIT_CONTROL", "minute limit, try today") is SendError


async def test_account_daily_cap_is_not_retried_here_but_fails_over(
    aliyun_server: FakeAliyun,
) -> None:
    aliyun_server.mode = "isv.DAY_LIMIT_CONTROL"
    to = (MAINLAND, "+85291234567")
    async with FakeAliyun().serving() as backup:
        capped = RetrySender(AliyunSms(make_settings(aliyun_server.url)), max_attempts=3)
        other = AliyunSms(make_settings(backup.url))
        async with FailoverSender([capped, other]) as sender:
            receipt = await sender.send("login", {"code": "1"}, *to)
        assert receipt is not None and receipt.vendor == "aliyun"
        assert [d.recipient for d in backup.deliveries] == list(to)
    assert len(aliyun_server.accepted) == 1  # one try at the capped account, no retry
    with pytest.raises(PermanentError, match="daily sending cap") as caught:
        async with AliyunSms(make_settings(aliyun_server.url)) as sms:
            await sms.send("login", {"code": "1"}, *to)
    assert (caught.value.unsent, caught.value.refused) == (to, ())  # all owed, none refused


def five() -> list[str]:
    return [f"+86139{i:08d}" for i in range(5)]


async def test_an_illegal_number_is_found_and_only_it_is_refused(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    to = five()
    aliyun_server.fail_numbers[to[2][3:]] = "isv.MOBILE_NUMBER_ILLEGAL"
    receipt = await aliyun.send("login", {"code": "1"}, *to)
    # Everyone else got it: the send went through, naming the refused number.
    assert receipt.refused == (to[2],)
    assert [d.recipient for d in aliyun_server.deliveries] == [to[0], to[1], to[3], to[4]]
    # All five, then halves until the illegal number is alone: 5 requests, none sent twice.
    assert len(aliyun_server.accepted) == 5


async def test_an_illegal_lone_number_is_an_invalid_recipient(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    aliyun_server.fail_numbers[MAINLAND[3:]] = "isv.MOBILE_NUMBER_ILLEGAL"
    with pytest.raises(InvalidRecipient, match="13800138000") as caught:
        await aliyun.send("login", {"code": "1"}, "+86 138 0013 8000")
    assert (caught.value.unsent, caught.value.refused) == ((), ("+86 138 0013 8000",))


async def test_a_number_throttled_this_minute_stays_owed_the_rest_go(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    to = five()
    aliyun_server.fail_numbers[to[4][3:]] = THROTTLED
    aliyun_server.messages[THROTTLED] = MINUTELY
    aliyun_server.acs_retry_after = "1500"
    with pytest.raises(SendError) as caught:
        await aliyun.send("login", {"code": "1"}, *to)
    assert is_retryable(caught.value)
    assert caught.value.unsent == (to[4],)
    assert caught.value.retry_after == 1.5
    assert [d.recipient for d in aliyun_server.deliveries] == to[:4]


async def test_a_number_capped_for_the_day_is_refused_the_rest_go(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    to = five()
    aliyun_server.fail_numbers[to[0][3:]] = THROTTLED
    aliyun_server.messages[THROTTLED] = DAILY
    receipt = await aliyun.send("login", {"code": "1"}, *to)
    assert receipt.refused == (to[0],)
    assert [d.recipient for d in aliyun_server.deliveries] == to[1:]
    # Alone, the capped number is a PermanentError that refuses it: no strategy resends it.
    with pytest.raises(PermanentError, match="daily cap") as caught:
        await aliyun.send("login", {"code": "1"}, to[0])
    assert (caught.value.unsent, caught.value.refused) == ((), (to[0],))


async def test_a_request_failing_for_another_reason_stops_the_search(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    to = five()
    aliyun_server.fail_numbers[to[1][3:]] = "isv.MOBILE_NUMBER_ILLEGAL"
    aliyun_server.fail_numbers[to[3][3:]] = "isp.SYSTEM_ERROR"
    with pytest.raises(SendError) as caught:
        await aliyun.send("login", {"code": "1"}, *to)
    assert is_retryable(caught.value)
    assert caught.value.unsent == (to[2], to[3], to[4])
    assert caught.value.refused == (to[1],)
    assert [d.recipient for d in aliyun_server.deliveries] == [to[0]]


@pytest.mark.parametrize(
    ("acs", "http", "expected"),
    [("1500", "7", 1.5), ("250", None, 0.25), ("0", "7", 7.0), ("soon", None, None)],
)
async def test_x_acs_retry_after_is_milliseconds(
    aliyun: AliyunSms,
    aliyun_server: FakeAliyun,
    acs: str,
    http: str | None,
    expected: float | None,
) -> None:
    aliyun_server.mode = "Throttling.User"
    aliyun_server.acs_retry_after = acs
    aliyun_server.retry_after = http
    with pytest.raises(SendError) as caught:
        await aliyun.send("login", {"code": "1"}, MAINLAND)
    assert caught.value.retry_after == expected


async def test_isolating_numbers_is_bounded(aliyun: AliyunSms, aliyun_server: FakeAliyun) -> None:
    to = [f"+86139{i:08d}" for i in range(64)]
    aliyun_server.fail_numbers.update(dict.fromkeys((n[3:] for n in to), THROTTLED))
    aliyun_server.messages[THROTTLED] = MINUTELY
    with pytest.raises(SendError) as caught:
        await aliyun.send("login", {"code": "1"}, *to)
    # Every number throttled: the first request and a bounded search (28 for 64 numbers), not
    # the 127 a full search takes, and everyone still owed.
    assert len(aliyun_server.accepted) <= 1 + 28
    assert is_retryable(caught.value)
    assert caught.value.unsent == tuple(to)
    assert aliyun_server.deliveries == []
