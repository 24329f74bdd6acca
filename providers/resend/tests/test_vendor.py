"""The resend vendor against FakeResend, a local /emails that checks the bearer key."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from email.header import decode_header, make_header

import pytest
import pytest_asyncio
from gocomm_resend import ResendEmail, ResendSettings
from gocomm_resend.plugin import SPEC, gocomm_register_vendors
from gocomm_resend.testing import API_KEY, FakeResend
from gocomm_resend.vendor import ERROR_NAMES, rate_limit_wait
from pydantic import ValidationError

from gocomm.errors import (
    ConfigError,
    InvalidMessage,
    InvalidRecipient,
    PermanentError,
    SendError,
    is_retryable,
)
from gocomm.httpclient import HttpClient, Response
from gocomm.messages import Attachment, Email
from gocomm.sender import Receipt
from gocomm.testing.contract import FailureContract, FailureKind, VendorContract
from gocomm.testing.httpserver import HttpRequest, HttpResponse, LocalHttpServer
from gocomm.testing.vendor_checks import assert_hook_registers, assert_plugin_entry_point

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


class TestResendContract(VendorContract, FailureContract):
    channel = "email"
    vendor_name = "resend"
    secret_values = (API_KEY,)

    @pytest_asyncio.fixture
    async def outbox(self) -> AsyncIterator[FakeResend]:
        async with FakeResend().serving() as fake:
            yield fake

    @pytest_asyncio.fixture
    async def vendor(self, outbox: FakeResend) -> AsyncIterator[ResendEmail]:
        async with ResendEmail(outbox.settings(sender="contract@example.com")) as vendor:
            yield vendor

    async def make_failure(self, outbox: FakeResend, kind: FailureKind) -> None:
        if kind == "retryable":
            outbox.fail_next(429, "rate_limit_exceeded", "Too many requests")
        else:
            outbox.fail_next(403, "validation_error", "The example.com domain is not verified")


async def test_the_whole_email_is_mapped(resend: ResendEmail, resend_server: FakeResend) -> None:
    message = Email(
        subject="Reçu n°42",
        text="merci",
        html='<p>merci</p><img src="cid:logo">',
        sender="Shop Ünïcode <shop@example.com>",
        reply_to=("Aide <help@example.com>", "b@example.com"),
        cc=("carol@example.com",),
        bcc=("audit@example.com",),
        headers={"X-Order": "42"},
        attachments=(
            Attachment("relevé.csv", b"a,b\n", "text/csv"),
            Attachment("logo.png", PNG, "image/png", content_id="logo"),
        ),
    )
    receipt = await resend.send("receipt", message, "ada@example.com", "bob@example.com")
    assert receipt.vendor == "resend" and len(receipt.message_ids) == 1
    (body,) = resend_server.accepted
    assert str(make_header(decode_header(body["from"]))) == "Shop Ünïcode <shop@example.com>"
    assert body["from"].isascii()
    assert body["to"] == ["ada@example.com", "bob@example.com"]
    assert (body["cc"], body["bcc"]) == (["carol@example.com"], ["audit@example.com"])
    assert body["reply_to"] == ["Aide <help@example.com>", "b@example.com"]
    assert (body["subject"], body["text"]) == ("Reçu n°42", "merci")
    assert body["headers"] == {"X-Order": "42"}
    csv, logo = body["attachments"]
    assert csv == {
        "filename": "relevé.csv",
        "content": base64.b64encode(b"a,b\n").decode(),
        "content_type": "text/csv",
    }
    assert base64.b64decode(logo["content"]) == PNG and logo["content_id"] == "logo"
    assert "tags" not in body and "template" not in body
    assert sorted(d.recipient for d in resend_server.deliveries) == [
        "ada@example.com",
        "audit@example.com",
        "bob@example.com",
        "carol@example.com",
    ]
    assert resend_server.server is not None
    (request,) = resend_server.server.requests
    assert "idempotency-key" not in request.headers


async def test_a_mapped_biz_sends_the_template_and_tags_go_along(
    resend_server: FakeResend,
) -> None:
    settings = resend_server.settings(
        sender="shop@example.com",
        templates={"welcome": "welcome-v2"},
        tags={"category": "onboarding"},
    )
    async with ResendEmail(settings) as resend:
        await resend.send("welcome", Email(subject="Bienvenue", text="Salut"), "ada@example.com")
        await resend.send("other", Email(subject="Plain", text="Hi"), "ada@example.com")
    template, plain = resend_server.accepted
    assert template["template"] == {
        "id": "welcome-v2",
        "variables": {"subject": "Bienvenue", "text": "Salut"},
    }
    assert "subject" not in template and "text" not in template
    assert template["tags"] == [{"name": "category", "value": "onboarding"}]
    assert "template" not in plain and plain["subject"] == "Plain"


async def test_a_wrong_key_is_refused_by_the_fake(resend_server: FakeResend) -> None:
    settings = resend_server.settings(sender="shop@example.com", api_key="re_wrong_key")
    async with ResendEmail(settings) as resend:
        with pytest.raises(PermanentError) as info:
            await resend.send("x", Email(subject="s", text="t"), "ada@example.com")
    assert info.value.code == "invalid_api_key"
    assert info.value.unsent == ("ada@example.com",)
    assert "re_wrong_key" not in str(info.value)
    assert resend_server.refused == 1 and resend_server.deliveries == []


async def test_a_request_without_a_key_is_refused_by_the_fake(resend_server: FakeResend) -> None:
    client = HttpClient(resend_server.url, connect_timeout=2, read_timeout=5)
    try:
        response = await client.post(
            "/emails", content=b"{}", headers={"Content-Type": "application/json"}
        )
    finally:
        await client.aclose()
    assert (response.status_code, response.json()["name"]) == (401, "missing_api_key")
    assert resend_server.refused == 1


@pytest.mark.parametrize(
    ("name", "retryable"),
    [(name, False) for name in sorted(ERROR_NAMES.permanent)]
    + [(name, True) for name in sorted(ERROR_NAMES.retryable)]
    + [("something_new", True)],
)
async def test_every_documented_error_name_is_classified(
    name: str, retryable: bool, resend: ResendEmail, resend_server: FakeResend
) -> None:
    status = 429 if retryable else 422
    resend_server.fail_next(status, name, "nope", **{"Retry-After": "7"})
    with pytest.raises(SendError) as info:
        await resend.send("x", Email(subject="s", text="t"), "ada@example.com", "b@example.com")
    assert info.value.code == name
    assert is_retryable(info.value) is retryable
    assert isinstance(info.value, PermanentError) is not retryable
    assert info.value.unsent == ("ada@example.com", "b@example.com")
    assert "nope" in str(info.value)
    if retryable:
        assert info.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *[(status, False) for status in (400, 401, 403, 404, 422, 451)],
        *[(status, True) for status in (429, 500, 503, 418)],
    ],
)
async def test_statuses_without_a_name_are_classified(status: int, retryable: bool) -> None:
    async def answer(request: HttpRequest) -> HttpResponse:
        return HttpResponse(status, b"<html>nope</html>", {"Content-Type": "text/html"})

    async with LocalHttpServer(answer) as server:
        settings = ResendSettings(api_key="re_k", endpoint=server.url, sender="s@example.com")
        async with ResendEmail(settings) as resend:
            with pytest.raises(SendError) as info:
                await resend.send("x", Email(subject="s", text="t"), "ada@example.com")
    assert info.value.code == f"HTTP{status}"
    assert is_retryable(info.value) is retryable


async def test_a_server_error_is_retryable_whatever_its_name(
    resend: ResendEmail, resend_server: FakeResend
) -> None:
    resend_server.fail_next(502, "validation_error", "bad gateway")
    with pytest.raises(SendError) as info:
        await resend.send("x", Email(subject="s", text="t"), "ada@example.com")
    assert is_retryable(info.value) and info.value.code == "HTTP502"


async def test_429_waits_until_the_rate_limit_resets(
    resend: ResendEmail, resend_server: FakeResend
) -> None:
    resend_server.fail_next(429, "rate_limit_exceeded", "too many", **{"ratelimit-reset": "3"})
    with pytest.raises(SendError) as info:
        await resend.send("x", Email(subject="s", text="t"), "ada@example.com")
    assert is_retryable(info.value) and info.value.retry_after == 3.0


def test_rate_limit_wait_reads_retry_after_then_the_reset() -> None:
    def answer(**headers: str) -> Response:
        return Response(429, headers, b"")

    assert rate_limit_wait(answer(**{"ratelimit-reset": "2"})) == 2.0
    assert rate_limit_wait(answer(**{"Retry-After": "5", "ratelimit-reset": "2"})) == 5.0
    assert rate_limit_wait(answer(**{"ratelimit-reset": "soon"})) is None
    assert rate_limit_wait(answer()) is None


@pytest.mark.parametrize(
    ("message", "to", "limit"),
    [
        (Email(subject="s", text="t"), tuple(f"u{i}@example.com" for i in range(51)), "at most 50"),
        (
            Email(subject="s", text="t", attachments=(Attachment("big", b"x" * 30_000_000),)),
            ("ada@example.com",),
            "40 MB",
        ),
        (
            Email(subject="s", text="t", attachments=(Attachment("big", b"x" * 30_000_001),)),
            ("ada@example.com",),
            "30000000",
        ),
        (Email(subject="s", text="t", headers={"Reply-To": "x@example.com"}), ("a@b.c",), "Reply"),
    ],
    ids=["51 to", "over 40 MB encoded", "over 40 MB raw", "reply-to header"],
)
async def test_limits_are_refused_before_any_request(
    message: Email, to: tuple[str, ...], limit: str, resend: ResendEmail, resend_server: FakeResend
) -> None:
    with pytest.raises(InvalidMessage, match=limit):
        await resend.send("x", message, *to)
    assert resend_server.server is not None and resend_server.server.requests == []


async def test_50_to_and_more_cc_are_one_request(
    resend: ResendEmail, resend_server: FakeResend
) -> None:
    to = [f"u{i}@example.com" for i in range(50)]
    receipt = await resend.send("x", Email(subject="s", text="t", cc=("c@example.com",)), *to)
    assert isinstance(receipt, Receipt) and len(resend_server.deliveries) == 51


async def test_no_sender_and_bad_addresses_are_refused(resend_server: FakeResend) -> None:
    async with ResendEmail(resend_server.settings()) as resend:
        with pytest.raises(InvalidMessage, match="no sender"):
            await resend.send("x", Email(subject="s", text="t"), "ada@example.com")
        with pytest.raises(InvalidRecipient):
            await resend.send(
                "x", Email(subject="s", text="t", sender="a@example.com"), "Ada <ada@example.com>"
            )
    assert resend_server.server is not None and resend_server.server.requests == []


def test_settings_endpoint_tags_and_secrets() -> None:
    assert ResendSettings(api_key="re_k").endpoint == "https://api.resend.com"
    with pytest.raises(ValidationError, match="tag"):
        ResendSettings(api_key="re_k", tags={"bad tag": "x"})
    with pytest.raises(ValidationError) as info:
        ResendSettings(api_key=" re_s3cr3t ")
    assert "whitespace" in str(info.value) and "s3cr3t" not in str(info.value)
    assert API_KEY not in repr(ResendSettings(api_key=API_KEY))


def test_plugin_registers_resend() -> None:
    assert_hook_registers(gocomm_register_vendors, SPEC, name="resend", channels={"email"})
    assert_plugin_entry_point(
        "resend", distribution="gocomm-resend", channels={"email"}, settings=ResendSettings
    )


def test_an_unknown_key_in_configuration_names_it() -> None:
    from gocomm.containers import build_container

    with pytest.raises(ConfigError, match="api_kye"):
        build_container(
            {"email": {"vendors": [{"plugin": "resend", "api_key": "re_k", "api_kye": "x"}]}}
        )
