"""The mailgun vendor against FakeMailgun, a local messages API that checks basic auth."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from gocomm_mailgun import MailgunEmail, MailgunSettings
from gocomm_mailgun.form import FilePart, encode_multipart
from gocomm_mailgun.plugin import SPEC, gocomm_register_vendors
from gocomm_mailgun.testing import API_KEY, FakeMailgun, parse_form
from gocomm_mailgun.vendor import STATUS_CODES
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

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) + b"\r\n--"


class TestMailgunContract(VendorContract, FailureContract):
    channel = "email"
    vendor_name = "mailgun"
    secret_values = (API_KEY,)

    @pytest_asyncio.fixture
    async def outbox(self) -> AsyncIterator[FakeMailgun]:
        async with FakeMailgun().serving() as fake:
            yield fake

    @pytest_asyncio.fixture
    async def vendor(self, outbox: FakeMailgun) -> AsyncIterator[MailgunEmail]:
        async with MailgunEmail(outbox.settings(sender="contract@example.com")) as vendor:
            yield vendor

    async def make_failure(self, outbox: FakeMailgun, kind: FailureKind) -> None:
        if kind == "retryable":
            outbox.fail_next(503, "Service Unavailable")
        else:
            outbox.fail_next(400, "'from' parameter is not a valid address")


def _header(value: str) -> email.headerregistry.Address:
    parsed = email.message_from_string(f"From: {value}\n\n", policy=email.policy.default)
    return parsed["From"].addresses[0]


async def test_every_field_display_names_attachments_and_inline_images(
    mailgun: MailgunEmail, mailgun_server: FakeMailgun
) -> None:
    message = Email(
        subject="Reçu n°42 ✉️",
        text="merci",
        html='<p>merci <img src="cid:logo"></p>',
        sender="Shop Ünïcode <shop@example.com>",
        reply_to=("Aide Ünïcode <help@example.com>", "b@example.com"),
        cc=("carol@example.com",),
        bcc=("audit@example.com",),
        headers={"X-Order": "42"},
        attachments=(
            Attachment("relevé.csv", b"a,b\n1,2\n", "text/csv"),
            Attachment("logo.png", PNG, "image/png", content_id="logo"),
        ),
    )
    receipt = await mailgun.send("receipt", message, "ada@example.com", "bob@example.com")
    assert receipt == Receipt(
        vendor="mailgun", message_ids=("<fake-mailgun-000001@mg.example.com>",)
    )
    (form,) = mailgun_server.accepted
    assert form["to"] == ["ada@example.com", "bob@example.com"]
    assert (form["cc"], form["bcc"]) == (["carol@example.com"], ["audit@example.com"])
    assert (form["subject"], form["text"]) == (["Reçu n°42 ✉️"], ["merci"])
    assert form["h:X-Order"] == ["42"]
    (sender,) = form["from"]
    assert isinstance(sender, str)
    assert _header(sender).display_name == "Shop Ünïcode"
    assert _header(sender).addr_spec == "shop@example.com"
    (reply_to,) = form["h:Reply-To"]
    assert isinstance(reply_to, str)
    parsed = email.message_from_string(f"Reply-To: {reply_to}\n\n", policy=email.policy.default)
    assert [(a.display_name, a.addr_spec) for a in parsed["Reply-To"].addresses] == [
        ("Aide Ünïcode", "help@example.com"),
        ("", "b@example.com"),
    ]
    assert form["attachment"] == [FilePart("relevé.csv", "text/csv", b"a,b\n1,2\n")]
    assert form["inline"] == [FilePart("logo", "image/png", PNG)]
    assert sorted(d.recipient for d in mailgun_server.deliveries) == [
        "ada@example.com",
        "audit@example.com",
        "bob@example.com",
        "carol@example.com",
    ]


async def test_a_mapped_biz_sends_the_template(mailgun_server: FakeMailgun) -> None:
    settings = mailgun_server.settings(
        sender="shop@example.com", templates={"welcome": "welcome-v2"}
    )
    async with MailgunEmail(settings) as mailgun:
        await mailgun.send(
            "welcome", Email(subject="Bienvenue", html="<b>Salut</b>"), "a@example.com"
        )
        await mailgun.send("other", Email(subject="Plain", text="Hi"), "a@example.com")
    template, plain = mailgun_server.accepted
    assert template["template"] == ["welcome-v2"]
    assert "text" not in template and "html" not in template
    (variables,) = template["t:variables"]
    assert isinstance(variables, str)
    assert json.loads(variables) == {"subject": "Bienvenue", "html": "<b>Salut</b>"}
    assert "template" not in plain and plain["text"] == ["Hi"]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [({"api_key": "key-wrong"}, "HTTP401"), ({"domain": "other.example.com"}, "HTTP404")],
    ids=["wrong key", "unknown domain"],
)
async def test_wrong_credentials_or_domain_are_refused_by_the_fake(
    overrides: dict[str, str], code: str, mailgun_server: FakeMailgun
) -> None:
    settings = mailgun_server.settings(sender="shop@example.com", **overrides)
    async with MailgunEmail(settings) as mailgun:
        with pytest.raises(PermanentError) as info:
            await mailgun.send("x", Email(subject="s", text="t"), "ada@example.com")
    assert info.value.code == code
    assert info.value.unsent == ("ada@example.com",)
    assert "key-wrong" not in str(info.value)
    assert ("Forbidden" if code == "HTTP401" else "Domain not found") in str(info.value)
    assert mailgun_server.deliveries == []


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (int(code[4:]), code in STATUS_CODES.retryable)
        for code in sorted(STATUS_CODES.permanent | STATUS_CODES.retryable)
    ]
    + [(418, True), (507, True)],
)
async def test_every_documented_status_is_classified(
    status: int, retryable: bool, mailgun: MailgunEmail, mailgun_server: FakeMailgun
) -> None:
    mailgun_server.fail_next(status, "nope", **{"Retry-After": "7"})
    with pytest.raises(SendError) as info:
        await mailgun.send("x", Email(subject="s", text="t"), "ada@example.com", "b@example.com")
    assert info.value.code == f"HTTP{status}"
    assert is_retryable(info.value) is retryable
    assert isinstance(info.value, PermanentError) is not retryable
    assert info.value.unsent == ("ada@example.com", "b@example.com")
    assert "nope" in str(info.value)
    if retryable:
        assert info.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("message", "to", "limit"),
    [
        (Email(subject="s", text="t"), tuple(f"u{i}@example.com" for i in range(1001)), "1000"),
        (
            Email(subject="s", text="t", cc=tuple(f"c{i}@example.com" for i in range(1000))),
            ("ada@example.com",),
            "1000",
        ),
        (
            Email(subject="s", text="t", attachments=(Attachment("big", b"x" * 18_750_001),)),
            ("ada@example.com",),
            "18750000",
        ),
        (
            Email(subject="s", text="t", headers={"From": "x@example.com"}),
            ("a@example.com",),
            "From",
        ),
    ],
    ids=["1001 to", "1 to + 1000 cc", "attachments over 25 MB encoded", "a header set from fields"],
)
async def test_limits_are_refused_before_any_request(
    message: Email,
    to: tuple[str, ...],
    limit: str,
    mailgun: MailgunEmail,
    mailgun_server: FakeMailgun,
) -> None:
    with pytest.raises(InvalidMessage, match=limit):
        await mailgun.send("x", message, *to)
    assert mailgun_server.server is not None and mailgun_server.server.requests == []


async def test_no_sender_and_bad_addresses_are_refused(mailgun_server: FakeMailgun) -> None:
    async with MailgunEmail(mailgun_server.settings()) as mailgun:
        with pytest.raises(InvalidMessage, match="no sender"):
            await mailgun.send("x", Email(subject="s", text="t"), "ada@example.com")
        with pytest.raises(InvalidRecipient):
            await mailgun.send(
                "x", Email(subject="s", text="t", sender="a@example.com"), "Ada <ada@example.com>"
            )
    assert mailgun_server.server is not None and mailgun_server.server.requests == []


def test_multipart_round_trips_repeated_fields_binary_files_and_unicode_names() -> None:
    fields: list[tuple[str, str | FilePart]] = [
        ("to", "a@example.com"),
        ("to", "b@example.com"),
        ("subject", 'Ünïcode "quoted"\r\nline'),
        ("attachment", FilePart('relevé "1".bin', "application/octet-stream", PNG)),
        ("attachment", FilePart("empty.txt", "text/plain", b"")),
    ]
    body, content_type = encode_multipart(fields)
    assert content_type.startswith("multipart/form-data; boundary=gocomm-")
    form = parse_form(content_type, body)
    assert form == {
        "to": ["a@example.com", "b@example.com"],
        "subject": ['Ünïcode "quoted"\r\nline'],
        "attachment": [
            FilePart('relevé "1".bin', "application/octet-stream", PNG),
            FilePart("empty.txt", "text/plain", b""),
        ],
    }
    # The standard library's own multipart parser reads it too (it leaves the %22 browsers
    # write for a quote).
    parsed = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
    )
    names = [part.get_filename() for part in parsed.iter_parts()]
    assert names == [None, None, None, "relevé %221%22.bin", "empty.txt"]


def test_settings_region_endpoint_domain_and_secrets() -> None:
    us = MailgunSettings(api_key="k", domain="MG.Example.com")
    assert (us.endpoint, us.domain) == ("https://api.mailgun.net", "mg.example.com")
    eu = MailgunSettings(api_key="k", domain="mg.example.com", region="eu")
    assert eu.endpoint == "https://api.eu.mailgun.net"
    with pytest.raises(ValidationError, match="region"):
        MailgunSettings(api_key="k", domain="mg.example.com", region="ap")
    with pytest.raises(ValidationError, match="domain"):
        MailgunSettings(api_key="k", domain="https://mg.example.com/")
    with pytest.raises(ValidationError) as info:
        MailgunSettings(api_key=" key-s3cr3t", domain="mg.example.com")
    assert "whitespace" in str(info.value) and "s3cr3t" not in str(info.value)
    assert API_KEY not in repr(MailgunSettings(api_key=API_KEY, domain="mg.example.com"))


async def test_the_eu_region_is_a_base_url_the_fake_can_stand_for(
    mailgun_server: FakeMailgun,
) -> None:
    # An explicit endpoint wins over the region's public one (how tests reach the fake).
    settings = mailgun_server.settings(region="eu", sender="shop@example.com")
    assert settings.endpoint == mailgun_server.url
    async with MailgunEmail(settings) as mailgun:
        await mailgun.send("x", Email(subject="s", text="t"), "ada@example.com")
    assert [d.recipient for d in mailgun_server.deliveries] == ["ada@example.com"]


def test_plugin_registers_mailgun() -> None:
    assert_hook_registers(gocomm_register_vendors, SPEC, name="mailgun", channels={"email"})
    assert_plugin_entry_point(
        "mailgun", distribution="gocomm-mailgun", channels={"email"}, settings=MailgunSettings
    )


def test_an_unknown_key_in_configuration_names_it() -> None:
    from gocomm.containers import build_container

    with pytest.raises(ConfigError, match="domian"):
        build_container(
            {
                "email": {
                    "vendors": [
                        {
                            "plugin": "mailgun",
                            "api_key": "k",
                            "domain": "mg.example.com",
                            "domian": "x",
                        }
                    ]
                }
            }
        )
