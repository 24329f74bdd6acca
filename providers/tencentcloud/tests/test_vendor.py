"""The tencentcloud vendor against a local SendSms server that verifies every TC3 signature."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from gocomm_tencentcloud import TencentCloudSettings, TencentCloudSms
from gocomm_tencentcloud.plugin import SPEC, gocomm_register_vendors
from gocomm_tencentcloud.testing import SECRET_KEY, FakeTencentCloud
from pydantic import ValidationError

from gocomm.errors import (
    InvalidMessage,
    InvalidRecipient,
    PermanentError,
    RetryExhausted,
    SendError,
    SendTimeout,
    is_retryable,
)
from gocomm.failover import FailoverSender
from gocomm.retryable import RetrySender
from gocomm.sender import Receipt
from gocomm.testing import MemorySender
from gocomm.testing.vendor_checks import (
    assert_hook_registers,
    assert_not_shown,
    assert_plugin_entry_point,
    shown_texts,
    stalled_server,
)

from .conftest import make_settings

ARGS = {"minutes": "5", "code": "1234"}


async def test_sends_ordered_params_with_a_verified_signature(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud
) -> None:
    receipt = await tencent.send("login", ARGS, "+8613800138000", "+8613800138001")
    assert receipt == Receipt(vendor="tencentcloud", message_ids=("serial-1", "serial-2"))
    [body] = tencent_server.accepted
    assert body == {
        "PhoneNumberSet": ["+8613800138000", "+8613800138001"],  # E.164 with the +
        "SmsSdkAppId": "1400000000",
        "SignName": "gocomm",
        "TemplateId": "1234",
        "TemplateParamSet": ["1234", "5"],  # the order {id, params} names
    }
    assert tencent_server.server is not None
    headers = tencent_server.server.requests[0].headers
    assert headers["x-tc-region"] == "ap-guangzhou"
    assert headers["host"] == f"127.0.0.1:{tencent_server.server.port}"


async def test_mainland_and_international_numbers_go_in_separate_requests(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud
) -> None:
    # Tencent refuses a request mixing them (UnsupportedOperation.ContainDomestic...).
    to = ["+85291234567", "+8613800138000", "+14155550100", "+8613800138001"]
    receipt = await tencent.send("login", ARGS, *to)
    sent = [body["PhoneNumberSet"] for body in tencent_server.accepted]
    assert sent == [[to[1], to[3]], [to[0], to[2]]]
    assert len(receipt.message_ids) == 4
    assert sorted(d.recipient for d in tencent_server.deliveries) == sorted(to)


async def test_plain_id_and_unmapped_biz_take_the_order_of_args(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud
) -> None:
    await tencent.send("plain", ARGS, "+8613800138000")
    await tencent.send("9999", {"b": "2", "a": "1"}, "+8613800138000")
    assert [(b["TemplateId"], b["TemplateParamSet"]) for b in tencent_server.accepted] == [
        ("5678", ["5", "1234"]),
        ("9999", ["2", "1"]),
    ]


async def test_missing_ordered_param_fails_before_sending(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud
) -> None:
    with pytest.raises(InvalidMessage, match="'minutes'"):
        await tencent.send("login", {"code": "1"}, "+8613800138000")
    with pytest.raises(InvalidRecipient, match="'0086138'"):
        await tencent.send("login", ARGS, "0086138")
    # Text that cannot be encoded (a lone surrogate) is refused before any request.
    with pytest.raises(InvalidMessage, match=r"'code'.*surrogate"):
        await tencent.send("login", {"code": "\ud83d", "minutes": "5"}, "+8613800138000")
    with pytest.raises(InvalidMessage, match="surrogate"):
        await tencent.send("9999", {"x": "ok \udfff"}, "+8613800138000")
    assert tencent_server.server is not None
    assert tencent_server.server.requests == []


def numbers(count: int) -> list[str]:
    return [f"+86139{i:08d}" for i in range(count)]


async def test_more_than_200_numbers_are_split(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud
) -> None:
    to = numbers(401)
    receipt = await tencent.send("login", ARGS, *to)
    assert [len(b["PhoneNumberSet"]) for b in tencent_server.accepted] == [200, 200, 1]
    assert len(receipt.message_ids) == 401
    assert [n for b in tencent_server.accepted for n in b["PhoneNumberSet"]] == to


async def test_per_number_refusals_refuse_those_numbers_only(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud
) -> None:
    to = numbers(250)
    tencent_server.number_codes[to[3]] = "InvalidParameterValue.IncorrectPhoneNumber"
    tencent_server.number_codes[to[240]] = "FailedOperation.PhoneNumberInBlacklist"
    receipt = await tencent.send("login", ARGS, *to)
    # Both requests were made; the send went through for the 248 others.
    assert len(tencent_server.accepted) == 2
    assert receipt.refused == (to[3], to[240])
    assert len(receipt.message_ids) == 248
    assert len(tencent_server.deliveries) == 248


async def test_a_mixed_answer_owes_only_the_retryable_numbers(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud
) -> None:
    to = numbers(5)
    tencent_server.number_codes[to[0]] = "LimitExceeded.PhoneNumberDailyLimit"
    tencent_server.number_codes[to[1]] = "LimitExceeded.PhoneNumberThirtySecondLimit"
    tencent_server.number_codes[to[3]] = "LimitExceeded.AppCountryOrRegionInBlacklist"
    tencent_server.number_codes[to[4]] = "InvalidParameterValue.IncorrectPhoneNumber"
    tencent_server.retry_after = "30"
    with pytest.raises(SendError) as caught:
        await tencent.send("login", ARGS, *to)
    error = caught.value
    assert is_retryable(error)
    assert error.unsent == (to[1],)
    assert error.refused == (to[0], to[3], to[4])
    assert error.retry_after == 30.0
    assert error.code == "LimitExceeded.PhoneNumberThirtySecondLimit"
    assert "sent to 1 of 5" in str(error)


async def test_a_retry_never_resends_a_refused_number(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud
) -> None:
    to = numbers(3)
    tencent_server.number_codes[to[0]] = "LimitExceeded.PhoneNumberDailyLimit"
    tencent_server.number_codes[to[1]] = "InternalError.Timeout"
    with pytest.raises(RetryExhausted) as caught:
        await RetrySender(tencent, 3).send("login", ARGS, *to)
    sent = [body["PhoneNumberSet"] for body in tencent_server.accepted]
    assert sent == [to, [to[1]], [to[1]]]
    assert (caught.value.unsent, caught.value.refused) == ((to[1],), (to[0],))


async def test_the_apps_daily_cap_is_not_retried_here_and_failover_moves_on(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud
) -> None:
    tencent_server.mode = "LimitExceeded.AppDailyLimit"
    other = MemorySender(name="other")
    stack = RetrySender(FailoverSender([tencent, other]), 3)
    to = numbers(2)
    receipt = await stack.send("login", ARGS, *to)
    assert len(tencent_server.accepted) == 1  # not retried at Tencent
    assert receipt is not None and receipt.vendor == "other"
    assert [message.to for message in other.sent] == [tuple(to)]


async def test_a_request_refused_for_a_named_number_goes_on_without_it(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud
) -> None:
    to = numbers(3)
    tencent_server.request_codes[to[1]] = "InvalidParameterValue.IncorrectPhoneNumber"
    receipt = await tencent.send("login", ARGS, *to)
    assert [body["PhoneNumberSet"] for body in tencent_server.accepted] == [to, [to[0], to[2]]]
    assert receipt.refused == (to[1],)
    assert [d.recipient for d in tencent_server.deliveries] == [to[0], to[2]]


async def test_a_request_refused_for_an_unnamed_number_is_sent_number_by_number(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud
) -> None:
    to = numbers(3)
    tencent_server.request_codes[to[2]] = "LimitExceeded.PhoneNumberDailyLimit"
    tencent_server.name_numbers = False
    receipt = await tencent.send("login", ARGS, *to)
    sent = [body["PhoneNumberSet"] for body in tencent_server.accepted]
    assert sent == [to, [to[0]], [to[1]], [to[2]]]
    assert receipt.refused == (to[2],)
    with pytest.raises(PermanentError) as caught:  # alone, it is refused with nobody sent
        await tencent.send("login", ARGS, to[2])
    assert (caught.value.unsent, caught.value.refused) == ((), (to[2],))


async def test_a_number_without_status_is_unsent(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud
) -> None:
    tencent_server.number_codes["+8613800138001"] = "-"
    with pytest.raises(SendError) as caught:
        await tencent.send("login", ARGS, "+8613800138000", "+86 138 0013 8001")
    assert is_retryable(caught.value)
    assert caught.value.unsent == ("+86 138 0013 8001",)  # in the caller's spelling


@pytest.mark.parametrize("mode", ["http500", "http502"])
async def test_5xx_is_retryable_with_retry_after(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud, mode: str
) -> None:
    tencent_server.mode = mode
    tencent_server.retry_after = "2.5"
    with pytest.raises(SendError) as caught:
        await tencent.send("login", ARGS, "+8613800138000")
    assert is_retryable(caught.value)
    assert caught.value.code == f"HTTP{mode[4:]}"
    assert caught.value.retry_after == 2.5


async def test_wrong_secret_fails_the_servers_check_and_is_never_shown(
    tencent_server: FakeTencentCloud, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "WRONG-tencent-secret-42"
    settings = make_settings(tencent_server.url, secret_key=wrong)
    async with TencentCloudSms(settings) as vendor:
        with pytest.raises(PermanentError) as caught:
            await vendor.send("login", ARGS, "+8613800138000")
        texts = shown_texts(caught.value, vendor, settings, caplog)
    assert caught.value.code == "AuthFailure.SignatureFailure"
    assert tencent_server.accepted == []
    assert_not_shown(texts, wrong, SECRET_KEY)


async def test_a_signed_host_other_than_the_endpoints_is_refused(
    tencent_server: FakeTencentCloud,
) -> None:
    # The server recomputes the signature over the Host it received: a vendor that signed
    # another host than it sends would be refused. Ours signs what it sends, so it passes.
    async with TencentCloudSms(make_settings(tencent_server.url)) as vendor:
        vendor.host = "sms.tencentcloudapi.com"
        with pytest.raises(PermanentError) as caught:
            await vendor.send("login", ARGS, "+8613800138000")
    assert caught.value.code.startswith("AuthFailure.")  # type: ignore[union-attr]


async def test_read_timeout_becomes_send_timeout() -> None:
    async with stalled_server() as server:
        settings = make_settings(server.url, read_timeout=0.2)
        async with TencentCloudSms(settings) as vendor:
            with pytest.raises(SendTimeout) as caught:
                await vendor.send("login", ARGS, "+8613800138000")
    assert is_retryable(caught.value)
    assert caught.value.unsent == ("+8613800138000",)


async def test_one_client_reused_across_sends(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud
) -> None:
    for i in range(10):
        await tencent.send("login", {"code": str(i), "minutes": "5"}, "+8613800138000")
    assert len(tencent_server.accepted) == 10
    assert tencent_server.connections == 1


async def test_aclose_is_idempotent(tencent_server: FakeTencentCloud) -> None:
    vendor = TencentCloudSms(make_settings(tencent_server.url))
    async with vendor:
        await vendor.send("login", ARGS, "+8613800138000")
    await vendor.aclose()
    assert vendor.client.closed


def test_settings_keys_defaults_and_validation() -> None:
    assert set(TencentCloudSettings.model_fields) == {
        "secret_id", "secret_key", "sdk_app_id", "sign_name", "region", "templates",
        "endpoint", "connect_timeout", "read_timeout",
    }  # fmt: skip
    default = TencentCloudSettings(secret_id="a", secret_key="b", sdk_app_id="1")  # type: ignore[arg-type]
    assert default.endpoint == "https://sms.tencentcloudapi.com"
    assert default.region == "ap-guangzhou"
    settings = make_settings("http://127.0.0.1:1")
    assert settings.templates["login"].id == "1234"  # type: ignore[union-attr]
    bad: dict[str, Any]
    for bad in (
        {"secret_key": ""},
        {"connect_timeout": -1},
        {"templates": {"login": {"params": ["code"]}}},
        {"extra": "x"},
        {"endpoint": "https://sms.tencentcloudapi.com/v3"},
        {"endpoint": "http://127.0.0.1:99999"},
        {"endpoint": "sms.tencentcloudapi.com"},
    ):
        endpoint = str(bad.pop("endpoint", "http://127.0.0.1:1"))
        with pytest.raises(ValidationError):
            make_settings(endpoint, **bad)


@pytest.mark.parametrize("field", ["secret_id", "secret_key"])
def test_a_credential_with_surrounding_whitespace_is_refused_naming_only_the_field(
    field: str,
) -> None:
    # Tencent's SDK refuses these too; the vendor would answer AuthFailure on every send.
    padded = f" {SECRET_KEY}\n"
    with pytest.raises(ValidationError) as caught:
        make_settings("http://127.0.0.1:1", **{field: padded})
    assert field in str(caught.value) and "whitespace" in str(caught.value)
    assert SECRET_KEY not in str(caught.value)


def test_plugin_loads_through_the_entry_point() -> None:
    assert_plugin_entry_point(
        "tencentcloud", distribution="gocomm-tencentcloud", channels={"sms"}, settings=SPEC.settings
    )


async def test_plugin_registers_the_vendor(tencent_server: FakeTencentCloud) -> None:

    assert_hook_registers(gocomm_register_vendors, SPEC, name="tencentcloud", channels={"sms"})
    vendor: Any = SPEC.factory(make_settings(tencent_server.url))
    async with vendor:
        receipt = await vendor.send("login", ARGS, "+8613800138000")
    assert receipt.vendor == "tencentcloud"
