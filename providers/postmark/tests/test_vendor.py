"""The postmark vendor against FakePostmark, a local Postmark that checks the server token."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from email.header import decode_header, make_header

import pytest
import pytest_asyncio
from gocomm_postmark import PostmarkEmail, PostmarkSettings
from gocomm_postmark.plugin import SPEC, gocomm_register_vendors
from gocomm_postmark.testing import SERVER_TOKEN, FakePostmark
from gocomm_postmark.vendor import ERROR_CODES, inactive_addresses
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
from gocomm.testing.contract import FailureContract, FailureKind, VendorContract
from gocomm.testing.httpserver import HttpRequest, HttpResponse, LocalHttpServer
from gocomm.testing.vendor_checks import assert_hook_registers, assert_plugin_entry_point

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


class TestPostmarkContract(VendorContract, FailureContract):
    channel = "email"
    vendor_name = "postmark"
    secret_values = (SERVER_TOKEN,)

    @pytest_asyncio.fixture
    async def outbox(self) -> AsyncIterator[FakePostmark]:
        async with FakePostmark().serving() as fake:
            yield fake

    @pytest_asyncio.fixture
    async def vendor(self, outbox: FakePostmark) -> AsyncIterator[PostmarkEmail]:
        async with PostmarkEmail(outbox.settings(sender="contract@example.com")) as vendor:
            yield vendor

    async def make_failure(self, outbox: FakePostmark, kind: FailureKind) -> None:
        if kind == "retryable":
            outbox.fail_next(503, 0, "Service Unavailable")
        else:
            outbox.fail_next(422, 400, "The 'From' address you supplied is not a Sender Signature")


async def test_one_message_per_to_cc_and_bcc_once_display_names(
    postmark: PostmarkEmail, postmark_server: FakePostmark
) -> None:
    message = Email(
        subject="Reçu n°42",
        text="merci",
        html="<p>merci</p>",
        sender="Shop Ünïcode <shop@example.com>",
        reply_to=("Aide <help@example.com>", "b@example.com"),
        cc=("carol@example.com",),
        bcc=("audit@example.com",),
        headers={"X-Order": "42"},
    )
    receipt = await postmark.send("receipt", message, "ada@example.com", "bob@example.com")
    assert receipt.vendor == "postmark" and len(receipt.message_ids) == 2
    first, second = postmark_server.accepted
    assert str(make_header(decode_header(first["From"]))) == "Shop Ünïcode <shop@example.com>"
    assert first["From"].isascii()
    assert (first["To"], first["Cc"], first["Bcc"]) == (
        "ada@example.com",
        "carol@example.com",
        "audit@example.com",
    )
    assert second["To"] == "bob@example.com" and "Cc" not in second and "Bcc" not in second
    assert first["ReplyTo"] == "Aide <help@example.com>, b@example.com"
    assert (first["Subject"], first["TextBody"], first["HtmlBody"]) == (
        "Reçu n°42",
        "merci",
        "<p>merci</p>",
    )
    assert first["Headers"] == [{"Name": "X-Order", "Value": "42"}]
    assert "MessageStream" not in first
    # Everyone gets exactly one copy.
    assert sorted(d.recipient for d in postmark_server.deliveries) == [
        "ada@example.com",
        "audit@example.com",
        "bob@example.com",
        "carol@example.com",
    ]


async def test_one_to_uses_email_several_use_the_batch(
    postmark: PostmarkEmail, postmark_server: FakePostmark
) -> None:
    await postmark.send("x", Email(subject="s", text="t"), "ada@example.com")
    await postmark.send("x", Email(subject="s", text="t"), "ada@example.com", "bob@example.com")
    assert postmark_server.server is not None
    assert [r.path for r in postmark_server.server.requests] == ["/email", "/email/batch"]


async def test_attachments_inline_images_and_the_message_stream(
    postmark_server: FakePostmark,
) -> None:
    settings = postmark_server.settings(sender="shop@example.com", message_stream="broadcast")
    message = Email(
        subject="s",
        html='<img src="cid:logo">',
        attachments=(
            Attachment("relevé.csv", b"a,b\n", "text/csv"),
            Attachment("logo.png", PNG, "image/png", content_id="logo"),
        ),
    )
    async with PostmarkEmail(settings) as postmark:
        await postmark.send("x", message, "ada@example.com")
    (body,) = postmark_server.accepted
    csv, logo = body["Attachments"]
    assert csv == {
        "Name": "relevé.csv",
        "Content": base64.b64encode(b"a,b\n").decode(),
        "ContentType": "text/csv",
    }
    assert base64.b64decode(logo["Content"]) == PNG
    assert logo["ContentID"] == "cid:logo"
    assert body["MessageStream"] == "broadcast"


@pytest.mark.parametrize(
    ("template", "field", "value"),
    [("welcome-v2", "TemplateAlias", "welcome-v2"), ("3141592", "TemplateId", 3141592)],
)
async def test_a_mapped_biz_sends_the_template(
    template: str, field: str, value: object, postmark_server: FakePostmark
) -> None:
    settings = postmark_server.settings(sender="shop@example.com", templates={"welcome": template})
    async with PostmarkEmail(settings) as postmark:
        await postmark.send("welcome", Email(subject="Bienvenue", text="Salut"), "ada@example.com")
        await postmark.send(
            "welcome",
            Email(subject="Bienvenue", html="<b>Hi</b>"),
            "a@example.com",
            "b@example.com",
        )
        await postmark.send("other", Email(subject="Plain", text="Hi"), "ada@example.com")
    assert postmark_server.server is not None
    assert [r.path for r in postmark_server.server.requests] == [
        "/email/withTemplate",
        "/email/batchWithTemplates",
        "/email",
    ]
    one, two, three, plain = postmark_server.accepted
    assert one[field] == value and one["TemplateModel"] == {"subject": "Bienvenue", "text": "Salut"}
    assert "Subject" not in one and "TextBody" not in one
    assert (
        two["TemplateModel"]
        == three["TemplateModel"]
        == {
            "subject": "Bienvenue",
            "html": "<b>Hi</b>",
        }
    )
    assert "TemplateAlias" not in plain and plain["Subject"] == "Plain"


async def test_inactive_to_is_refused_and_the_others_sent(
    postmark: PostmarkEmail, postmark_server: FakePostmark
) -> None:
    postmark_server.inactive.add("bounced@example.com")
    receipt = await postmark.send(
        "x", Email(subject="s", text="t"), "ada@example.com", "bounced@example.com"
    )
    assert receipt.refused == ("bounced@example.com",)
    assert len(receipt.message_ids) == 1
    assert [d.recipient for d in postmark_server.deliveries] == ["ada@example.com"]


async def test_inactive_only_recipient_raises_with_it_refused(
    postmark: PostmarkEmail, postmark_server: FakePostmark
) -> None:
    postmark_server.inactive.add("bounced@example.com")
    with pytest.raises(PermanentError) as info:
        await postmark.send("x", Email(subject="s", text="t"), "bounced@example.com")
    assert info.value.code == "406"
    assert info.value.refused == ("bounced@example.com",)
    assert not is_retryable(info.value)


async def test_an_inactive_cc_is_named_in_the_receipt(
    postmark: PostmarkEmail, postmark_server: FakePostmark
) -> None:
    postmark_server.inactive.add("gone@example.com")
    message = Email(subject="s", text="t", cc=("gone@example.com",))
    receipt = await postmark.send("x", message, "ada@example.com")
    assert receipt.refused == ("gone@example.com",)
    assert [d.recipient for d in postmark_server.deliveries] == ["ada@example.com"]


async def test_per_message_results_make_unsent_and_refused_exact(
    postmark: PostmarkEmail, postmark_server: FakePostmark
) -> None:
    postmark_server.inactive.add("bounced@example.com")
    postmark_server.fail_recipient("busy@example.com", 429, "Rate limit exceeded")
    to = ("ada@example.com", "busy@example.com", "bounced@example.com", "bob@example.com")
    with pytest.raises(SendError) as info:
        await postmark.send("x", Email(subject="s", text="t"), *to)
    assert is_retryable(info.value)
    assert info.value.unsent == ("busy@example.com",)
    assert info.value.refused == ("bounced@example.com",)
    assert "sent to 2 of 4 addresses" in str(info.value)
    assert sorted(d.recipient for d in postmark_server.deliveries) == [
        "ada@example.com",
        "bob@example.com",
    ]
    # Retrying the unsent address completes the send; nobody gets a second message.
    postmark_server.recipient_failures.clear()
    await postmark.send("x", Email(subject="s", text="t"), *info.value.unsent)
    assert sorted(d.recipient for d in postmark_server.deliveries) == [
        "ada@example.com",
        "bob@example.com",
        "busy@example.com",
    ]


async def test_a_wrong_token_is_refused_by_the_fake(postmark_server: FakePostmark) -> None:
    settings = postmark_server.settings(sender="shop@example.com", server_token="wrong-token-1")
    async with PostmarkEmail(settings) as postmark:
        for to in (("ada@example.com",), ("ada@example.com", "bob@example.com")):
            with pytest.raises(PermanentError) as info:
                await postmark.send("x", Email(subject="s", text="t"), *to)
            assert info.value.code == "10"
            assert info.value.unsent == to
            assert "wrong-token-1" not in str(info.value)
    assert postmark_server.refused == 2 and postmark_server.deliveries == []


_SENDING_CODES = (
    [(406, False)]
    + [
        (int(code), code in ERROR_CODES.retryable)
        for code in sorted(ERROR_CODES.permanent, key=int)
    ]
    + [(100, True), (429, True), (99999, True)]
)


@pytest.mark.parametrize(("error_code", "retryable"), _SENDING_CODES)
async def test_every_documented_error_code_is_classified(
    error_code: int, retryable: bool, postmark: PostmarkEmail, postmark_server: FakePostmark
) -> None:
    # As the answer to a whole batch (HTTP 422) and as one message's result inside it.
    postmark_server.fail_next(422, error_code, "nope", **{"Retry-After": "7"})
    with pytest.raises(SendError) as info:
        await postmark.send("x", Email(subject="s", text="t"), "ada@example.com", "b@example.com")
    assert info.value.code == str(error_code)
    assert is_retryable(info.value) is retryable
    assert info.value.unsent == ("ada@example.com", "b@example.com")
    if retryable:
        assert info.value.retry_after == 7.0
    postmark_server.fail_recipient("b@example.com", error_code, "nope")
    to = ("ada@example.com", "b@example.com")
    if error_code == 406:
        # An inactive recipient is refused for good; the others got the message.
        receipt = await postmark.send("x", Email(subject="s", text="t"), *to)
        assert receipt.refused == ("b@example.com",)
        return
    with pytest.raises(SendError) as info:
        await postmark.send("x", Email(subject="s", text="t"), *to)
    assert info.value.code == str(error_code)
    assert is_retryable(info.value) is retryable
    assert (info.value.unsent, info.value.refused) == (("b@example.com",), ())


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (401, False),
        (404, False),
        (413, False),
        (415, False),
        (422, False),
        (429, True),
        (500, True),
        (503, True),
        (418, True),
    ],
)
async def test_statuses_without_an_error_code_are_classified(status: int, retryable: bool) -> None:
    async def answer(request: HttpRequest) -> HttpResponse:
        return HttpResponse(status, b"<html>nope</html>", {"Content-Type": "text/html"})

    async with LocalHttpServer(answer) as server:
        settings = PostmarkSettings(server_token="t", endpoint=server.url, sender="s@example.com")
        async with PostmarkEmail(settings) as postmark:
            with pytest.raises(SendError) as info:
                await postmark.send("x", Email(subject="s", text="t"), "ada@example.com")
    assert info.value.code == f"HTTP{status}"
    assert is_retryable(info.value) is retryable
    assert info.value.unsent == ("ada@example.com",)


async def test_a_server_error_is_retryable_whatever_its_error_code(
    postmark: PostmarkEmail, postmark_server: FakePostmark
) -> None:
    postmark_server.fail_next(500, 10, "internal")
    with pytest.raises(SendError) as info:
        await postmark.send("x", Email(subject="s", text="t"), "ada@example.com")
    assert is_retryable(info.value) and info.value.code == "HTTP500"


def test_inactive_addresses_reads_both_wordings() -> None:
    assert inactive_addresses(
        "You tried to send to recipient(s) that have been marked as inactive. Found inactive "
        "addresses: A@example.com, b@example.com. Inactive recipients are ones that ..."
    ) == {"a@example.com", "b@example.com"}
    assert inactive_addresses(
        "Message OK, but will not deliver to these inactive addresses: c@example.com."
    ) == {"c@example.com"}
    assert inactive_addresses("Rate limit exceeded") == frozenset()


@pytest.mark.parametrize(
    ("message", "to", "limit"),
    [
        (
            Email(subject="s", text="t", bcc=tuple(f"c{i}@example.com" for i in range(50))),
            ("ada@example.com",),
            "at most 50",
        ),
        (
            Email(subject="s", text="t", attachments=(Attachment("big", b"x" * 7_600_000),)),
            ("ada@example.com",),
            "10 MB",
        ),
        (
            Email(subject="s", text="t", attachments=(Attachment("big", b"x" * 10_000_001),)),
            ("ada@example.com",),
            "10000000",
        ),
        *[
            (Email(subject="s", text="t", attachments=(Attachment(name, b"MZ"),)), ("a@b.c",), ext)
            for name, ext in (("setup.EXE", ".exe"), ("run.bat", ".bat"), ("x.vbs", ".vbs"))
        ],
        (Email(subject="s", text="t", headers={"Reply-To": "x@example.com"}), ("a@b.c",), "Reply"),
    ],
    ids=["1 to + 50 bcc", "over 10 MB encoded", "over 10 MB raw", "exe", "bat", "vbs", "reply-to"],
)
async def test_limits_are_refused_before_any_request(
    message: Email,
    to: tuple[str, ...],
    limit: str,
    postmark: PostmarkEmail,
    postmark_server: FakePostmark,
) -> None:
    with pytest.raises(InvalidMessage, match=limit):
        await postmark.send("x", message, *to)
    assert postmark_server.server is not None and postmark_server.server.requests == []


async def test_a_long_send_takes_several_batches_of_500(
    postmark: PostmarkEmail, postmark_server: FakePostmark
) -> None:
    to = [f"u{i}@example.com" for i in range(1001)]
    receipt = await postmark.send("x", Email(subject="s", text="t"), *to)
    assert len(receipt.message_ids) == 1001
    assert postmark_server.server is not None
    assert [r.path for r in postmark_server.server.requests] == ["/email/batch"] * 3
    assert len(postmark_server.deliveries) == 1001


async def test_a_failed_batch_leaves_it_and_later_ones_unsent(
    postmark_server: FakePostmark,
) -> None:
    calls = 0

    async def second_fails(request: HttpRequest) -> HttpResponse:
        nonlocal calls
        calls += 1
        if calls == 2:
            return HttpResponse.json({"ErrorCode": 0, "Message": "unavailable"}, status=503)
        return await postmark_server.handle(request)

    to = [f"u{i}@example.com" for i in range(600)]
    async with LocalHttpServer(second_fails) as server:
        settings = postmark_server.settings(endpoint=server.url, sender="shop@example.com")
        async with PostmarkEmail(settings) as postmark:
            with pytest.raises(SendError) as info:
                await postmark.send("x", Email(subject="s", text="t"), *to)
    assert is_retryable(info.value)
    assert info.value.unsent == tuple(to[500:])
    assert len(postmark_server.deliveries) == 500
    assert "sent to 500 of 600 addresses" in str(info.value)


async def test_no_sender_and_bad_addresses_are_refused(postmark_server: FakePostmark) -> None:
    async with PostmarkEmail(postmark_server.settings()) as postmark:
        with pytest.raises(InvalidMessage, match="no sender"):
            await postmark.send("x", Email(subject="s", text="t"), "ada@example.com")
        with pytest.raises(InvalidRecipient):
            await postmark.send(
                "x", Email(subject="s", text="t", sender="a@example.com"), "Ada <ada@example.com>"
            )
    assert postmark_server.server is not None and postmark_server.server.requests == []


def test_settings_endpoint_stream_and_secrets() -> None:
    assert PostmarkSettings(server_token="t").endpoint == "https://api.postmarkapp.com"
    with pytest.raises(ValidationError, match="message stream"):
        PostmarkSettings(server_token="t", message_stream="Not A Stream")
    with pytest.raises(ValidationError) as info:
        PostmarkSettings(server_token=" s3cr3t-token ")
    assert "whitespace" in str(info.value) and "s3cr3t" not in str(info.value)
    assert SERVER_TOKEN not in repr(PostmarkSettings(server_token=SERVER_TOKEN))


def test_plugin_registers_postmark() -> None:
    assert_hook_registers(gocomm_register_vendors, SPEC, name="postmark", channels={"email"})
    assert_plugin_entry_point(
        "postmark", distribution="gocomm-postmark", channels={"email"}, settings=PostmarkSettings
    )


def test_an_unknown_key_in_configuration_names_it() -> None:
    from gocomm.containers import build_container

    with pytest.raises(ConfigError, match="server_tokn"):
        build_container(
            {
                "email": {
                    "vendors": [{"plugin": "postmark", "server_token": "t", "server_tokn": "x"}]
                }
            }
        )
