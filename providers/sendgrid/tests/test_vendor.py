"""The sendgrid vendor against FakeSendGrid, a local mail/send that checks the bearer key."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from gocomm_sendgrid import SendGridEmail, SendGridSettings
from gocomm_sendgrid.plugin import SPEC, gocomm_register_vendors
from gocomm_sendgrid.testing import API_KEY, FakeSendGrid
from gocomm_sendgrid.vendor import STATUS_CODES, rate_limit_wait
from pydantic import ValidationError

from gocomm.errors import (
    ConfigError,
    InvalidMessage,
    InvalidRecipient,
    PermanentError,
    SendError,
    is_retryable,
)
from gocomm.httpclient import Response
from gocomm.messages import Attachment, Email
from gocomm.sender import Receipt
from gocomm.testing.contract import FailureContract, FailureKind, VendorContract
from gocomm.testing.vendor_checks import assert_hook_registers, assert_plugin_entry_point

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


class TestSendGridContract(VendorContract, FailureContract):
    channel = "email"
    vendor_name = "sendgrid"
    secret_values = (API_KEY,)

    @pytest_asyncio.fixture
    async def outbox(self) -> AsyncIterator[FakeSendGrid]:
        async with FakeSendGrid().serving() as fake:
            yield fake

    @pytest_asyncio.fixture
    async def vendor(self, outbox: FakeSendGrid) -> AsyncIterator[SendGridEmail]:
        async with SendGridEmail(outbox.settings(sender="contract@example.com")) as vendor:
            yield vendor

    async def make_failure(self, outbox: FakeSendGrid, kind: FailureKind) -> None:
        if kind == "retryable":
            outbox.fail_next(503, "Service Unavailable")
        else:
            outbox.fail_next(400, "The from address does not match a verified Sender Identity")


async def test_one_personalization_per_to_cc_and_bcc_once_display_names(
    sendgrid: SendGridEmail, sendgrid_server: FakeSendGrid
) -> None:
    message = Email(
        subject="Reçu n°42",
        text="merci",
        html="<p>merci</p>",
        sender="Shop Ünïcode <shop@example.com>",
        reply_to=("Aide Ünïcode <help@example.com>",),
        cc=("carol@example.com",),
        bcc=("audit@example.com",),
        headers={"X-Order": "42"},
    )
    receipt = await sendgrid.send("receipt", message, "ada@example.com", "bob@example.com")
    assert receipt == Receipt(vendor="sendgrid", message_ids=("fake-sendgrid-000001",))
    (body,) = sendgrid_server.accepted
    assert body["personalizations"] == [
        {
            "to": [{"email": "ada@example.com"}],
            "cc": [{"email": "carol@example.com"}],
            "bcc": [{"email": "audit@example.com"}],
        },
        {"to": [{"email": "bob@example.com"}]},
    ]
    assert body["from"] == {"email": "shop@example.com", "name": "Shop Ünïcode"}
    assert body["reply_to"] == {"email": "help@example.com", "name": "Aide Ünïcode"}
    assert body["subject"] == "Reçu n°42"
    assert body["content"] == [
        {"type": "text/plain", "value": "merci"},
        {"type": "text/html", "value": "<p>merci</p>"},
    ]
    assert body["headers"] == {"X-Order": "42"}
    # Everyone gets exactly one copy.
    assert sorted(d.recipient for d in sendgrid_server.deliveries) == [
        "ada@example.com",
        "audit@example.com",
        "bob@example.com",
        "carol@example.com",
    ]


async def test_several_reply_tos_attachments_and_inline_images(
    sendgrid: SendGridEmail, sendgrid_server: FakeSendGrid
) -> None:
    message = Email(
        subject="s",
        html='<img src="cid:logo">',
        reply_to=("a@example.com", "B <b@example.com>"),
        attachments=(
            Attachment("relevé.csv", b"a,b\n", "text/csv"),
            Attachment("logo.png", PNG, "image/png", content_id="logo"),
        ),
    )
    await sendgrid.send("x", message, "ada@example.com")
    (body,) = sendgrid_server.accepted
    assert "reply_to" not in body
    assert body["reply_to_list"] == [
        {"email": "a@example.com"},
        {"email": "b@example.com", "name": "B"},
    ]
    csv, logo = body["attachments"]
    assert csv == {
        "content": base64.b64encode(b"a,b\n").decode(),
        "type": "text/csv",
        "filename": "relevé.csv",
        "disposition": "attachment",
    }
    assert base64.b64decode(logo["content"]) == PNG
    assert (logo["disposition"], logo["content_id"]) == ("inline", "logo")


async def test_a_mapped_biz_sends_the_dynamic_template(sendgrid_server: FakeSendGrid) -> None:
    settings = sendgrid_server.settings(
        sender="shop@example.com", templates={"welcome": "d-0123456789abcdef"}
    )
    async with SendGridEmail(settings) as sendgrid:
        await sendgrid.send(
            "welcome", Email(subject="Bienvenue", text="Salut"), "ada@example.com", "b@example.com"
        )
        await sendgrid.send("other", Email(subject="Plain", text="Hi"), "ada@example.com")
    template, plain = sendgrid_server.accepted
    assert template["template_id"] == "d-0123456789abcdef"
    assert "content" not in template and "subject" not in template
    for personalization in template["personalizations"]:
        assert personalization["dynamic_template_data"] == {"subject": "Bienvenue", "text": "Salut"}
    assert "template_id" not in plain and plain["subject"] == "Plain"


async def test_a_wrong_key_is_refused_by_the_fake(sendgrid_server: FakeSendGrid) -> None:
    settings = sendgrid_server.settings(sender="shop@example.com", api_key="SG.wrong.key")
    async with SendGridEmail(settings) as sendgrid:
        with pytest.raises(PermanentError) as info:
            await sendgrid.send("x", Email(subject="s", text="t"), "ada@example.com")
    assert info.value.code == "HTTP401"
    assert "authorization grant is invalid" in str(info.value)
    assert info.value.unsent == ("ada@example.com",)
    assert "SG.wrong.key" not in str(info.value)
    assert sendgrid_server.refused == 1 and sendgrid_server.deliveries == []


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (int(code[4:]), code in STATUS_CODES.retryable)
        for code in sorted(STATUS_CODES.permanent | STATUS_CODES.retryable)
    ]
    + [(418, True), (507, True)],
)
async def test_every_documented_status_is_classified(
    status: int, retryable: bool, sendgrid: SendGridEmail, sendgrid_server: FakeSendGrid
) -> None:
    sendgrid_server.fail_next(status, "nope", **{"Retry-After": "7"})
    with pytest.raises(SendError) as info:
        await sendgrid.send("x", Email(subject="s", text="t"), "ada@example.com", "b@example.com")
    assert info.value.code == f"HTTP{status}"
    assert is_retryable(info.value) is retryable
    assert isinstance(info.value, PermanentError) is not retryable
    assert info.value.unsent == ("ada@example.com", "b@example.com")
    assert "nope" in str(info.value)
    if retryable:
        assert info.value.retry_after == 7.0


async def test_429_waits_until_the_rate_limit_resets(
    sendgrid: SendGridEmail, sendgrid_server: FakeSendGrid
) -> None:
    import time

    sendgrid_server.fail_next(429, "too many", **{"X-RateLimit-Reset": str(int(time.time()) + 60)})
    with pytest.raises(SendError) as info:
        await sendgrid.send("x", Email(subject="s", text="t"), "ada@example.com")
    assert is_retryable(info.value)
    assert info.value.retry_after is not None and 55 <= info.value.retry_after <= 60


def test_rate_limit_wait_reads_retry_after_then_the_reset_time() -> None:
    def answer(**headers: str) -> Response:
        return Response(429, headers, b"")

    assert rate_limit_wait(answer(**{"X-RateLimit-Reset": "1030"}), now=1000.0) == 30.0
    assert rate_limit_wait(answer(**{"X-RateLimit-Reset": "900"}), now=1000.0) == 0.0
    assert rate_limit_wait(answer(**{"Retry-After": "5", "X-RateLimit-Reset": "1030"})) == 5.0
    assert rate_limit_wait(answer(**{"X-RateLimit-Reset": "soon"})) is None
    assert rate_limit_wait(answer()) is None


@pytest.mark.parametrize(
    ("message", "to", "limit"),
    [
        (Email(subject="s", text="t"), tuple(f"u{i}@example.com" for i in range(1001)), "1000"),
        (
            Email(subject="s", text="t", bcc=tuple(f"c{i}@example.com" for i in range(1000))),
            ("ada@example.com",),
            "1000",
        ),
        (
            Email(subject="s", text="t", attachments=(Attachment("big", b"x" * 22_500_001),)),
            ("ada@example.com",),
            "22500000",
        ),
        *[
            (Email(subject="s", text="t", headers={name: "v"}), ("a@example.com",), name)
            for name in ("X-SG-ID", "x-sg-eid", "Received", "DKIM-Signature", "Reply-To")
        ],
        (Email(subject="s", text="t", cc=("a@example.com",)), ("a@example.com",), "twice"),
        (
            Email(subject="s", text="t", bcc=("B@example.com",)),
            ("a@example.com", "b@example.com"),
            "twice",
        ),
        (
            Email(subject="s", text="t", cc=("c@example.com",), bcc=("c@example.com",)),
            ("a@example.com",),
            "twice",
        ),
    ],
    ids=[
        "1001 to",
        "1 to + 1000 bcc",
        "attachments over 30 MB encoded",
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "reply-to",
        "to also in cc",
        "second to also in bcc",
        "cc also in bcc",
    ],
)
async def test_limits_are_refused_before_any_request(
    message: Email,
    to: tuple[str, ...],
    limit: str,
    sendgrid: SendGridEmail,
    sendgrid_server: FakeSendGrid,
) -> None:
    with pytest.raises(InvalidMessage, match=limit):
        await sendgrid.send("x", message, *to)
    assert sendgrid_server.server is not None and sendgrid_server.server.requests == []


async def test_no_sender_and_bad_addresses_are_refused(sendgrid_server: FakeSendGrid) -> None:
    async with SendGridEmail(sendgrid_server.settings()) as sendgrid:
        with pytest.raises(InvalidMessage, match="no sender"):
            await sendgrid.send("x", Email(subject="s", text="t"), "ada@example.com")
        with pytest.raises(InvalidRecipient):
            await sendgrid.send(
                "x", Email(subject="s", text="t", sender="a@example.com"), "Ada <ada@example.com>"
            )
    assert sendgrid_server.server is not None and sendgrid_server.server.requests == []


def test_settings_region_endpoint_and_secrets() -> None:
    assert SendGridSettings(api_key="k").endpoint == "https://api.sendgrid.com"
    assert SendGridSettings(api_key="k", region="eu").endpoint == "https://api.eu.sendgrid.com"
    with pytest.raises(ValidationError, match="region"):
        SendGridSettings(api_key="k", region="us")
    with pytest.raises(ValidationError) as info:
        SendGridSettings(api_key=" SG.s3cr3t ")
    assert "whitespace" in str(info.value) and "s3cr3t" not in str(info.value)
    assert API_KEY not in repr(SendGridSettings(api_key=API_KEY))


def test_plugin_registers_sendgrid() -> None:
    assert_hook_registers(gocomm_register_vendors, SPEC, name="sendgrid", channels={"email"})
    assert_plugin_entry_point(
        "sendgrid", distribution="gocomm-sendgrid", channels={"email"}, settings=SendGridSettings
    )


def test_an_unknown_key_in_configuration_names_it() -> None:
    from gocomm.containers import build_container

    with pytest.raises(ConfigError, match="api_kye"):
        build_container(
            {"email": {"vendors": [{"plugin": "sendgrid", "api_key": "k", "api_kye": "x"}]}}
        )
