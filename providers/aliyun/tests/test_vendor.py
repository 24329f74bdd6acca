"""The aliyun vendor against a local Dysmsapi server that verifies every signature itself."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from gocomm_aliyun import AliyunSettings, AliyunSms
from gocomm_aliyun.plugin import SPEC, gocomm_register_vendors
from gocomm_aliyun.testing import ACCESS_KEY_SECRET, FakeAliyun
from pydantic import ValidationError

from gocomm.errors import (
    InvalidMessage,
    InvalidRecipient,
    PermanentError,
    SendError,
    SendTimeout,
    is_retryable,
)
from gocomm.sender import Receipt
from gocomm.testing.httpserver import HttpResponse, LocalHttpServer
from gocomm.testing.vendor_checks import (
    assert_hook_registers,
    assert_not_shown,
    assert_plugin_entry_point,
    shown_texts,
    stalled_server,
)

from .conftest import make_settings


async def test_sends_with_a_verified_signature(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    receipt = await aliyun.send("login", {"code": "1234", "product": "短信"}, "+8613800138000")
    assert receipt == Receipt(vendor="aliyun", message_ids=("biz-1",))
    [form] = aliyun_server.accepted
    assert form["PhoneNumbers"] == "13800138000"  # mainland: the 11 national digits
    assert form["TemplateCode"] == "SMS_123456"  # biz mapped through templates
    assert form["SignName"] == "gocomm"
    assert json.loads(form["TemplateParam"]) == {"code": "1234", "product": "短信"}


async def test_unmapped_biz_is_the_template_code(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    await aliyun.send("SMS_999", {"code": "1"}, "+8613800138000")
    await aliyun.send("order", {"code": "2", "extra": "x"}, "+8613800138000")
    assert [f["TemplateCode"] for f in aliyun_server.accepted] == ["SMS_999", "SMS_777"]
    # Aliyun takes named parameters: every arg travels, whatever the order list says.
    assert json.loads(aliyun_server.accepted[1]["TemplateParam"]) == {"code": "2", "extra": "x"}


async def test_numbers_are_normalised_and_comma_joined(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    await aliyun.send("login", {"code": "1"}, "+86 138-0013-8000", "+85291234567", "+861012345678")
    # A mainland mobile is its 11 digits; other numbers, +86 landlines too, keep their code.
    assert aliyun_server.accepted[0]["PhoneNumbers"] == "13800138000,85291234567,861012345678"
    assert [d.recipient for d in aliyun_server.deliveries] == [
        "+8613800138000", "+85291234567", "+861012345678",
    ]  # fmt: skip


async def test_a_number_listed_twice_gets_one_message(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    await aliyun.send("login", {"code": "1"}, "+8613800138000", "+86 13800138000")
    assert aliyun_server.accepted[0]["PhoneNumbers"] == "13800138000"


def numbers(count: int) -> list[str]:
    return [f"+86139{i:08d}" for i in range(count)]


async def test_more_than_1000_numbers_are_split(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    to = numbers(2001)
    receipt = await aliyun.send("login", {"code": "1"}, *to)
    sizes = [len(f["PhoneNumbers"].split(",")) for f in aliyun_server.accepted]
    assert sizes == [1000, 1000, 1]
    assert receipt.message_ids == ("biz-1", "biz-2", "biz-3")
    sent = ",".join(f["PhoneNumbers"] for f in aliyun_server.accepted).split(",")
    assert sent == [n[3:] for n in to]


async def test_a_failed_request_leaves_later_batches_unsent(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    to = numbers(2500)
    aliyun_server.fail_numbers[to[1200][3:]] = "isp.SYSTEM_ERROR"
    with pytest.raises(SendError) as caught:
        await aliyun.send("login", {"code": "1"}, *to)
    assert is_retryable(caught.value)
    # The first request (1,000 numbers) went through; the second failed as a whole, and the
    # third was not tried.
    assert caught.value.unsent == tuple(to[1000:])
    assert "sent to 1000 of 2500" in str(caught.value)
    assert len(aliyun_server.accepted) == 2


async def test_unsent_keeps_the_callers_spelling(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    aliyun_server.mode = "isv.DAY_LIMIT_CONTROL"
    with pytest.raises(SendError) as caught:
        await aliyun.send("login", {"code": "1"}, "+86 138 0013 8000")
    assert caught.value.unsent == ("+86 138 0013 8000",)


async def test_throttling_without_retry_after(aliyun: AliyunSms, aliyun_server: FakeAliyun) -> None:
    aliyun_server.mode = "isv.BUSINESS_LIMIT_CONTROL"
    with pytest.raises(SendError) as caught:
        await aliyun.send("login", {"code": "1"}, "+8613800138000")
    assert caught.value.retry_after is None
    assert "retry later" in str(caught.value)


@pytest.mark.parametrize("mode", ["http500", "http503"])
async def test_gateway_errors_are_retryable_with_retry_after(
    aliyun: AliyunSms, aliyun_server: FakeAliyun, mode: str
) -> None:
    aliyun_server.mode = mode
    aliyun_server.retry_after = "Fri, 01 Jan 2100 00:00:00 GMT"
    with pytest.raises(SendError) as caught:
        await aliyun.send("login", {"code": "1"}, "+8613800138000")
    assert is_retryable(caught.value)
    assert caught.value.code == f"HTTP{mode[4:]}"
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 365 * 24 * 3600


async def test_wrong_secret_is_refused_by_the_server_and_never_shown(
    aliyun_server: FakeAliyun, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "WRONG-secret-value-123"
    settings = make_settings(aliyun_server.url, access_key_secret=wrong)
    async with AliyunSms(settings) as vendor:
        with pytest.raises(PermanentError) as caught:
            await vendor.send("login", {"code": "1"}, "+8613800138000")
        texts = shown_texts(caught.value, vendor, settings, caplog)
    assert caught.value.code == "SignatureDoesNotMatch"
    assert aliyun_server.accepted == []
    assert_not_shown(texts, wrong, ACCESS_KEY_SECRET)


async def test_unknown_access_key_is_permanent(aliyun_server: FakeAliyun) -> None:
    async with AliyunSms(make_settings(aliyun_server.url, access_key_id="nobody")) as vendor:
        with pytest.raises(PermanentError) as caught:
            await vendor.send("login", {"code": "1"}, "+8613800138000")
    assert caught.value.code == "InvalidAccessKeyId.NotFound"


async def test_bad_recipients_and_args_fail_before_any_request(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    with pytest.raises(InvalidRecipient, match="13800138000"):
        await aliyun.send("login", {"code": "1"}, "+8613800138000", "13800138000")
    with pytest.raises(InvalidRecipient, match="no recipient"):
        await aliyun.send("login", {"code": "1"})
    with pytest.raises(InvalidMessage, match="'code'"):
        await aliyun.send("order", {"other": "1"}, "+8613800138000")
    with pytest.raises(InvalidMessage, match="str"):
        await aliyun.send("login", {"code": 1}, "+8613800138000")  # type: ignore[dict-item]
    assert aliyun_server.server is not None
    assert aliyun_server.server.requests == []


async def test_one_client_reused_across_sends(aliyun: AliyunSms, aliyun_server: FakeAliyun) -> None:
    for i in range(5):
        await aliyun.send("login", {"code": str(i)}, "+8613800138000")
    await asyncio.gather(*(aliyun.send("login", {"code": "x"}, "+8613800138000") for _ in range(3)))
    assert len(aliyun_server.accepted) == 8
    assert aliyun_server.connections <= 3  # one for the sequential sends, at most 3 in parallel
    assert {r.connection_id for r in aliyun_server.server.requests[:5]} == {1}  # type: ignore[union-attr]


async def test_read_timeout_becomes_send_timeout() -> None:
    async with stalled_server() as server:
        settings = make_settings(server.url, read_timeout=0.2)
        async with AliyunSms(settings) as vendor:
            with pytest.raises(SendTimeout) as caught:
                await vendor.send("login", {"code": "1"}, "+8613800138000")
    assert isinstance(caught.value, TimeoutError)
    assert is_retryable(caught.value)
    assert caught.value.unsent == ("+8613800138000",)
    assert isinstance(caught.value.__cause__, TimeoutError)  # the client's own timeout


async def test_connection_refused_is_retryable() -> None:
    async with LocalHttpServer(lambda r: asyncio.sleep(0, HttpResponse(200))) as server:
        url = server.url
    async with AliyunSms(make_settings(url)) as vendor:
        with pytest.raises(SendError) as caught:
            await vendor.send("login", {"code": "1"}, "+8613800138000")
    assert type(caught.value) is SendError
    assert is_retryable(caught.value)
    assert caught.value.code == "ClientConnectorError"


async def test_cancellation_propagates(aliyun_server: FakeAliyun) -> None:
    async with stalled_server() as server, AliyunSms(make_settings(server.url)) as vendor:
        task = asyncio.create_task(vendor.send("login", {"code": "1"}, "+8613800138000"))
        await server.entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_aclose_is_idempotent_and_closes_the_client(aliyun_server: FakeAliyun) -> None:
    vendor = AliyunSms(make_settings(aliyun_server.url))
    await vendor.send("login", {"code": "1"}, "+8613800138000")
    await vendor.aclose()
    await vendor.aclose()
    assert vendor.client.closed
    with pytest.raises(SendError, match="closed"):
        await vendor.send("login", {"code": "1"}, "+8613800138000")


def test_settings_keys_and_secret_masking() -> None:
    settings = make_settings("http://127.0.0.1:1")
    assert set(AliyunSettings.model_fields) == {
        "access_key_id", "access_key_secret", "sign_name", "templates",
        "endpoint", "connect_timeout", "read_timeout", "signature",
    }  # fmt: skip
    assert ACCESS_KEY_SECRET not in repr(settings)
    assert ACCESS_KEY_SECRET not in settings.model_dump_json()
    default = AliyunSettings(access_key_id="a", access_key_secret="b", sign_name="c")  # type: ignore[arg-type]
    assert default.endpoint == "https://dysmsapi.aliyuncs.com"
    bad: dict[str, Any]
    for bad in (
        {"endpoint": "ftp://example.com"},
        {"endpoint": "https://user:pw@example.com"},
        {"read_timeout": 0},
        {"access_key_secret": ""},
        {"unknown_key": 1},
        {"templates": {"login": {"id": "x", "order": []}}},
    ):
        endpoint = str(bad.pop("endpoint", "http://127.0.0.1:1"))
        with pytest.raises(ValidationError):
            make_settings(endpoint, **bad)


def test_plugin_loads_through_the_entry_point() -> None:
    assert_plugin_entry_point(
        "aliyun", distribution="gocomm-aliyun", channels={"sms"}, settings=SPEC.settings
    )


async def test_plugin_registers_the_vendor(aliyun_server: FakeAliyun) -> None:

    assert_hook_registers(gocomm_register_vendors, SPEC, name="aliyun", channels={"sms"})
    vendor: Any = SPEC.factory(
        SPEC.settings.model_validate(make_settings(aliyun_server.url).model_dump())
    )
    async with vendor:
        assert isinstance(vendor, AliyunSms)
        assert await vendor.send("login", {"code": "1"}, "+8613800138000") == Receipt(
            vendor="aliyun", message_ids=("biz-1",)
        )


async def test_text_that_cannot_be_encoded_fails_before_any_request(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    with pytest.raises(InvalidMessage, match="surrogate"):
        await aliyun.send("login", {"code": "\ud83d"}, "+8613800138000")
    assert aliyun_server.server is not None
    assert aliyun_server.server.requests == []


@pytest.mark.parametrize("field", ["access_key_secret", "access_key_id"])
@pytest.mark.parametrize("value", [" padded-value", "padded-value\n", "\tpadded-value "])
def test_credentials_with_surrounding_whitespace_are_refused(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        make_settings("http://127.0.0.1:1", **{field: value})
    message = str(caught.value)
    assert field in message and "whitespace" in message
    assert "padded-value" not in message


async def test_signature_v3_is_the_default_and_v2_is_selectable(aliyun_server: FakeAliyun) -> None:
    assert make_settings(aliyun_server.url).signature == "v3"
    for signature in ("v3", "v2"):
        async with AliyunSms(make_settings(aliyun_server.url, signature=signature)) as vendor:
            await vendor.send("login", {"code": "1", "name": "张三 ~*/+ & 100%"}, "+8613800138000")
    assert aliyun_server.signatures == ["v3", "v2"]
    v3, v2 = aliyun_server.accepted
    assert "Signature" not in v3 and v2["SignatureVersion"] == "1.0"
    assert json.loads(v3["TemplateParam"]) == json.loads(v2["TemplateParam"])
    [v3_request, v2_request] = aliyun_server.server.requests  # type: ignore[union-attr]
    assert v3_request.headers["authorization"].startswith("ACS3-HMAC-SHA256 Credential=")
    assert "authorization" not in v2_request.headers
    with pytest.raises(ValidationError, match="signature"):
        make_settings(aliyun_server.url, signature="v1")


async def test_v3_with_a_wrong_secret_does_not_match(aliyun_server: FakeAliyun) -> None:
    settings = make_settings(aliyun_server.url, access_key_secret="not-the-secret")
    async with AliyunSms(settings) as vendor:
        with pytest.raises(PermanentError) as caught:
            await vendor.send("login", {"code": "1"}, "+8613800138000")
    assert caught.value.code == "SignatureDoesNotMatch"
    assert aliyun_server.accepted == []
