"""The ses vendor against FakeSes, a local SendEmail that checks SigV4 with its own code."""

from __future__ import annotations

import base64
import email
import email.policy
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from gocomm_ses import SesEmail, SesSettings
from gocomm_ses.plugin import SPEC, gocomm_register_vendors
from gocomm_ses.testing import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN, FakeSes
from gocomm_ses.vendor import ERROR_CODES
from pydantic import ValidationError

from gocomm.errors import (
    ConfigError,
    InvalidMessage,
    InvalidRecipient,
    PermanentError,
    SendError,
    is_retryable,
)
from gocomm.messages import Attachment, Email
from gocomm.sender import Receipt
from gocomm.testing.contract import FailureContract, FailureKind, VendorContract
from gocomm.testing.vendor_checks import assert_hook_registers, assert_plugin_entry_point

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


class TestSesContract(VendorContract, FailureContract):
    channel = "email"
    vendor_name = "ses"
    secret_values = (SECRET_ACCESS_KEY,)

    @pytest_asyncio.fixture
    async def outbox(self) -> AsyncIterator[FakeSes]:
        async with FakeSes().serving() as fake:
            yield fake

    @pytest_asyncio.fixture
    async def vendor(self, outbox: FakeSes) -> AsyncIterator[SesEmail]:
        async with SesEmail(outbox.settings(sender="contract@example.com")) as vendor:
            yield vendor

    async def make_failure(self, outbox: FakeSes, kind: FailureKind) -> None:
        if kind == "retryable":
            outbox.fail_next("ServiceUnavailable", 503)
        else:
            outbox.fail_next("MessageRejected", 400)


async def test_simple_content_with_display_names_cc_bcc_and_reply_to(
    ses: SesEmail, ses_server: FakeSes
) -> None:
    message = Email(
        subject="Reçu n°42",
        text="merci",
        html="<p>merci</p>",
        sender="Shop Ünïcode <shop@example.com>",
        reply_to=("Help <help@example.com>",),
        cc=("carol@example.com",),
        bcc=("audit@example.com",),
    )
    receipt = await ses.send("receipt", message, "ada@example.com", "bob@example.com")
    assert receipt == Receipt(vendor="ses", message_ids=("fake-ses-000001",))
    (body,) = ses_server.accepted
    assert body["Destination"] == {
        "ToAddresses": ["ada@example.com", "bob@example.com"],
        "CcAddresses": ["carol@example.com"],
        "BccAddresses": ["audit@example.com"],
    }
    from_header = email.message_from_string(
        f"From: {body['FromEmailAddress']}\n\n", policy=email.policy.default
    )["From"]
    assert from_header.addresses[0].display_name == "Shop Ünïcode"
    assert from_header.addresses[0].addr_spec == "shop@example.com"
    assert body["ReplyToAddresses"] == ["Help <help@example.com>"]
    assert body["Content"] == {
        "Simple": {
            "Subject": {"Data": "Reçu n°42", "Charset": "UTF-8"},
            "Body": {
                "Text": {"Data": "merci", "Charset": "UTF-8"},
                "Html": {"Data": "<p>merci</p>", "Charset": "UTF-8"},
            },
        }
    }
    assert sorted(d.recipient for d in ses_server.deliveries) == [
        "ada@example.com",
        "audit@example.com",
        "bob@example.com",
        "carol@example.com",
    ]


async def test_attachments_and_headers_go_as_raw_mime(ses: SesEmail, ses_server: FakeSes) -> None:
    message = Email(
        subject="[12] 验证码 Ünïcödé ✉️ — naïve café",
        sender="Boutique Ünïcode <shop@example.com>",
        text="see attached",
        html='<p><img src="cid:logo"></p>',
        headers={"X-Order": "42", "X-Note": "naïve café"},
        attachments=(
            Attachment("relevé.csv", b"a,b\n1,2\n", "text/csv"),
            Attachment("logo.png", PNG, "image/png", content_id="logo"),
        ),
    )
    await ses.send("receipt", message, "ada@example.com")
    raw = base64.b64decode(ses_server.accepted[0]["Content"]["Raw"]["Data"])
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "[12] 验证码 Ünïcödé ✉️ — naïve café"
    assert parsed["X-Order"] == "42"
    assert parsed["X-Note"] == "naïve café"
    assert parsed["To"] == "ada@example.com"
    assert parsed["From"].addresses[0].display_name == "Boutique Ünïcode"
    assert "Bcc" not in parsed
    files = {p.get_filename(): p for p in parsed.walk() if p.get_filename()}
    assert files["relevé.csv"].get_payload(decode=True) == b"a,b\n1,2\n"
    assert files["logo.png"].get_payload(decode=True) == PNG
    assert files["logo.png"]["Content-ID"] == "<logo>"
    assert files["logo.png"].get_content_disposition() == "inline"
    html = parsed.get_body(("html",))
    assert html is not None and "cid:logo" in html.get_content()


async def test_a_mapped_biz_sends_the_template_with_the_emails_fields(
    ses_server: FakeSes,
) -> None:
    settings = ses_server.settings(sender="shop@example.com", templates={"welcome": "Welcome-v2"})
    async with SesEmail(settings) as ses:
        await ses.send("welcome", Email(subject="Bienvenue", text="Salut"), "ada@example.com")
        await ses.send("other", Email(subject="Plain", text="Hi"), "ada@example.com")
    template, plain = ses_server.accepted
    assert template["Content"]["Template"]["TemplateName"] == "Welcome-v2"
    assert json.loads(template["Content"]["Template"]["TemplateData"]) == {
        "subject": "Bienvenue",
        "text": "Salut",
    }
    assert "Simple" in plain["Content"]  # an unmapped biz sends the Email itself


async def test_configuration_set_tags_and_session_token() -> None:
    async with FakeSes(session_token=SESSION_TOKEN).serving() as fake:
        settings = fake.settings(
            sender="shop@example.com", configuration_set="tracking", tags={"campaign": "spring"}
        )
        async with SesEmail(settings) as ses:
            await ses.send("x", Email(subject="s", text="t"), "ada@example.com")
        assert fake.accepted[0]["ConfigurationSetName"] == "tracking"
        assert fake.accepted[0]["EmailTags"] == [{"Name": "campaign", "Value": "spring"}]
        # Without the token, temporary credentials are refused.
        async with SesEmail(fake.settings(session_token=None, sender="shop@example.com")) as ses:
            with pytest.raises(PermanentError) as info:
                await ses.send("x", Email(subject="s", text="t"), "ada@example.com")
        assert info.value.code == "UnrecognizedClientException"


async def test_a_wrong_secret_is_refused_by_the_fakes_own_check(ses_server: FakeSes) -> None:
    settings = ses_server.settings(sender="shop@example.com", secret_access_key="not-the-secret")
    async with SesEmail(settings) as ses:
        with pytest.raises(PermanentError) as info:
            await ses.send("x", Email(subject="s", text="t"), "ada@example.com")
    assert info.value.code == "InvalidSignatureException"
    assert info.value.unsent == ("ada@example.com",)
    assert "not-the-secret" not in str(info.value)
    assert ses_server.refused == 1 and ses_server.deliveries == []


@pytest.mark.parametrize("code", sorted(ERROR_CODES.permanent | ERROR_CODES.retryable))
async def test_every_documented_error_type_is_classified(
    code: str, ses: SesEmail, ses_server: FakeSes
) -> None:
    retryable = code in ERROR_CODES.retryable
    ses_server.fail_next(code, 503 if retryable else 400, retry_after="7")
    with pytest.raises(SendError) as info:
        await ses.send("x", Email(subject="s", text="t"), "ada@example.com", "bob@example.com")
    assert info.value.code == code
    assert is_retryable(info.value) is retryable
    assert isinstance(info.value, PermanentError) is not retryable
    assert info.value.unsent == ("ada@example.com", "bob@example.com")
    if retryable:
        assert info.value.retry_after == 7.0


async def test_an_unknown_error_type_is_retryable(ses: SesEmail, ses_server: FakeSes) -> None:
    ses_server.fail_next("SomethingNewException", 400)
    with pytest.raises(SendError) as info:
        await ses.send("x", Email(subject="s", text="t"), "ada@example.com")
    assert is_retryable(info.value)


@pytest.mark.parametrize(
    ("message", "to", "limit"),
    [
        (Email(subject="s", text="t"), tuple(f"u{i}@example.com" for i in range(51)), "50"),
        (
            Email(subject="s", text="t", cc=tuple(f"c{i}@example.com" for i in range(50))),
            ("ada@example.com",),
            "50",
        ),
        (
            Email(
                subject="s", text="t", attachments=(Attachment("big.bin", b"x" * (30 * 2**20 + 1)),)
            ),
            ("ada@example.com",),
            str(30 * 2**20),
        ),
        (
            Email(subject="s", text="t", headers={"Reply-To": "x@example.com"}),
            ("a@example.com",),
            "Reply-To",
        ),
    ],
    ids=["51 to", "1 to + 50 cc", "attachments over 30 MiB", "a header set from fields"],
)
async def test_limits_are_refused_before_any_request(
    message: Email, to: tuple[str, ...], limit: str, ses: SesEmail, ses_server: FakeSes
) -> None:
    with pytest.raises(InvalidMessage, match=limit):
        await ses.send("x", message, *to)
    assert ses_server.server is not None and ses_server.server.requests == []


async def test_no_sender_and_bad_sender_are_refused(ses_server: FakeSes) -> None:
    async with SesEmail(ses_server.settings()) as ses:
        with pytest.raises(InvalidMessage, match="no sender"):
            await ses.send("x", Email(subject="s", text="t"), "ada@example.com")
        with pytest.raises(InvalidMessage, match="sender"):
            await ses.send("x", Email(subject="s", text="t", sender="Shop <nope>"), "a@example.com")
        with pytest.raises(InvalidRecipient):
            await ses.send(
                "x", Email(subject="s", text="t", sender="a@example.com"), "Ada <ada@example.com>"
            )


def test_settings_default_endpoint_from_region_and_refuse_bad_values() -> None:
    settings = SesSettings(access_key_id=ACCESS_KEY_ID, secret_access_key="x", region="eu-west-1")
    assert settings.endpoint == "https://email.eu-west-1.amazonaws.com"
    with pytest.raises(ValidationError, match="region"):
        SesSettings(access_key_id=ACCESS_KEY_ID, secret_access_key="x", region="Paris")
    with pytest.raises(ValidationError) as info:
        SesSettings(access_key_id=ACCESS_KEY_ID, secret_access_key=" s3cr3t ", region="eu-west-1")
    assert "whitespace" in str(info.value) and "s3cr3t" not in str(info.value)
    assert SECRET_ACCESS_KEY not in repr(
        SesSettings(
            access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY, region="us-east-1"
        )
    )


def test_plugin_registers_ses() -> None:
    assert_hook_registers(gocomm_register_vendors, SPEC, name="ses", channels={"email"})
    assert_plugin_entry_point(
        "ses", distribution="gocomm-ses", channels={"email"}, settings=SesSettings
    )


def test_an_unknown_key_in_configuration_names_it() -> None:
    from gocomm.containers import build_container

    with pytest.raises(ConfigError, match="regoin"):
        build_container(
            {
                "email": {
                    "vendors": [
                        {
                            "plugin": "ses",
                            "access_key_id": "A",
                            "secret_access_key": "s",
                            "region": "us-east-1",
                            "regoin": "x",
                        }
                    ]
                }
            }
        )
