"""The shared HTTP vendor machinery: Retry-After, codes, templates, batching and outcomes."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest
import trustme
from pydantic import Field, SecretStr, ValidationError

from gocomm.errors import (
    InvalidMessage,
    InvalidRecipient,
    PermanentError,
    SendError,
    is_retryable,
)
from gocomm.httpvendor import (
    BatchResult,
    CodeTable,
    HttpSmsVendor,
    HttpVendor,
    HttpVendorSettings,
    chunked,
    parse_retry_after,
    status_is_retryable,
)
from gocomm.sender import Receipt
from gocomm.smstemplates import ResolvedTemplate, SmsTemplate, resolve_template
from gocomm.testing.httpserver import HttpRequest, HttpResponse, LocalHttpServer

NOW = 1_445_412_480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("-3", 0.0),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past
        ("Wednesday, 21-Oct-15 07:28:10 GMT", 10.0),  # RFC 850 form
        ("soon", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (503, True), (429, True), (408, True), (400, False), (404, False)],
)
def test_status_is_retryable(status: int, retryable: bool) -> None:
    assert status_is_retryable(status) is retryable


def test_chunked() -> None:
    assert [list(c) for c in chunked(["a", "b", "c", "d", "e"], 2)] == [
        ["a", "b"],
        ["c", "d"],
        ["e"],
    ]
    assert list(chunked([], 3)) == []
    with pytest.raises(ValueError, match="at least 1"):
        list(chunked(["a"], 0))


def test_code_table_precedence_and_unknown_codes() -> None:
    table = CodeTable(
        permanent=frozenset({"AuthFailure.*", "Bad", "Limit.Hard."}),
        retryable=frozenset({"AuthFailure.Temporary", "Limit."}),
    )
    assert table.is_permanent("AuthFailure.SignatureFailure")
    assert not table.is_permanent("AuthFailure.Temporary")  # exact beats prefix
    assert table.is_permanent("Bad")
    assert not table.is_permanent("Bad.Other")
    assert table.is_permanent("Limit.Hard.X")  # the longer prefix wins
    assert not table.is_permanent("Limit.Soft")
    assert not table.is_permanent("NeverHeardOf")  # unknown: retryable
    assert table.knows("Limit.Soft") and table.knows("Bad") and not table.knows("NeverHeardOf")


def test_code_table_refusing_and_invalid_codes() -> None:
    table = CodeTable(
        permanent=frozenset({"Config.*"}),
        refusing=frozenset({"Blocked"}),
        invalid=frozenset({"BadNumber"}),
    )
    assert table.is_permanent("Blocked") and table.refuses("Blocked")
    assert table.is_permanent("BadNumber") and table.refuses("BadNumber")
    assert table.is_permanent("Config.Template") and not table.refuses("Config.Template")


async def test_vendor_error_refuses_the_recipients_a_refusing_code_concerns() -> None:
    table = CodeTable(refusing=frozenset({"Blocked"}), invalid=frozenset({"BadNumber"}))
    async with Mailer(endpoint="http://127.0.0.1:9", connect_timeout=1, read_timeout=1) as vendor:
        blocked = vendor.vendor_error("Blocked", "", table=table, recipients=["+1555"])
        invalid = vendor.vendor_error("BadNumber", "", table=table, recipients=["+1555"])
        request_wide = vendor.vendor_error("Blocked", "", table=table)
    assert type(blocked) is PermanentError and blocked.refused == ("+1555",)
    assert type(invalid) is InvalidRecipient and invalid.refused == ("+1555",)
    # Without recipients nobody is named: the code cannot refuse anyone.
    assert type(request_wide) is PermanentError and request_wide.refused == ()


@pytest.mark.parametrize(
    "args",
    [{"code": "\ud83d"}, {"\udc00": "1"}, {"code": "ok \udfff then"}],
)
def test_text_that_cannot_be_encoded_is_an_invalid_message(args: dict[str, str]) -> None:
    with pytest.raises(InvalidMessage, match="surrogate") as caught:
        resolve_template({}, "T1", args)
    assert "\\ud" in str(caught.value)  # the bad text is shown escaped
    with pytest.raises(InvalidMessage, match="biz"):
        resolve_template({}, "T\ud800", {})
    # Whole characters, astral ones included, are fine.
    assert resolve_template({}, "T1", {"code": "\U0001f600 ✉️"}).values == ("\U0001f600 ✉️",)


class Credentials(HttpVendorSettings):
    endpoint: str = "https://example.com"
    key_id: str = "id"
    secret: SecretStr = SecretStr("s3cret")
    credential_fields: ClassVar[tuple[str, ...]] = ("key_id",)


@pytest.mark.parametrize("field", ["secret", "key_id"])
@pytest.mark.parametrize("padded", [" s3cret-Value", "s3cret-Value\n", "\ts3cret-Value"])
def test_a_credential_with_surrounding_whitespace_is_refused_naming_the_field(
    field: str, padded: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        Credentials.model_validate({field: padded})
    text = str(caught.value)
    assert field in text and "whitespace" in text
    assert "s3cret-Value" not in text
    assert Credentials.model_validate({field: "inner space ok"})  # only the ends matter


class RequiredSecrets(HttpVendorSettings):
    endpoint: str = "https://example.com"
    token: SecretStr = Field(description="the account's API token")
    key_id: str
    session: SecretStr | None = None
    credential_fields: ClassVar[tuple[str, ...]] = ("key_id",)


@pytest.mark.parametrize(
    ("field", "advice"), [("token", "give the account's API token"), ("key_id", "give key_id")]
)
def test_an_empty_required_credential_is_refused_saying_what_to_give(
    field: str, advice: str
) -> None:
    values = {"token": "t0ken", "key_id": "id", field: ""}
    with pytest.raises(ValidationError, match=f"must not be empty; {advice}") as caught:
        RequiredSecrets.model_validate(values)
    assert field in str(caught.value)
    # An optional secret may be empty (as an unset environment variable reads).
    assert RequiredSecrets.model_validate({"token": "t", "key_id": "i", "session": ""})


def test_vendor_options_name_every_secret_to_keep_out_of_errors() -> None:
    settings = RequiredSecrets.model_validate({"token": "t0ken", "key_id": "id", "session": "s"})
    assert settings.vendor_options() == {
        "endpoint": "https://example.com",
        "connect_timeout": 5.0,
        "read_timeout": 10.0,
        "secrets": ["t0ken", "s"],
    }
    unset = RequiredSecrets.model_validate({"token": "t0ken", "key_id": "id"})
    assert unset.vendor_options()["secrets"] == ["t0ken"]


def test_resolve_template() -> None:
    templates = {"login": SmsTemplate(id="1234", params=("code", "minutes")), "plain": "T9"}
    args = {"minutes": "5", "code": "42", "extra": "x"}
    assert resolve_template(templates, "login", args) == ResolvedTemplate("1234", args, ("42", "5"))
    assert resolve_template(templates, "plain", args).values == ("5", "42", "x")
    assert resolve_template(templates, "SMS_1", {}).id == "SMS_1"  # no entry: biz is the id
    unordered = {"x": SmsTemplate(id="9")}
    assert resolve_template(unordered, "x", {"b": "1", "a": "2"}).values == ("1", "2")
    with pytest.raises(InvalidMessage, match="'minutes'"):
        resolve_template(templates, "login", {"code": "1"})
    with pytest.raises(InvalidMessage, match="str"):
        resolve_template(templates, "plain", {"code": 1})
    with pytest.raises(InvalidMessage, match="mapping"):
        resolve_template(templates, "plain", ["code"])
    with pytest.raises(InvalidMessage, match="biz"):
        resolve_template(templates, "", {})


class Settings(HttpVendorSettings):
    endpoint: str = "https://example.com"
    templates: dict[str, str | SmsTemplate] = Field(default_factory=dict)


def test_settings_endpoint_and_template_entries() -> None:
    assert Settings().endpoint == "https://example.com"
    assert Settings(endpoint="http://127.0.0.1:8080/").endpoint == "http://127.0.0.1:8080"
    parsed = Settings.model_validate({"templates": {"a": "T1", "b": {"id": "T2", "params": ["x"]}}})
    assert parsed.templates == {"a": "T1", "b": SmsTemplate(id="T2", params=("x",))}
    for bad in ("example.com", "ftp://example.com", "https://u:p@example.com", "http://h:99999",
                "https://example.com/?q=1", "https://"):  # fmt: skip
        with pytest.raises(ValidationError, match="endpoint"):
            Settings(endpoint=bad)
    with pytest.raises(ValidationError):
        Settings(connect_timeout=0)


class Scripted(HttpSmsVendor):
    """A vendor whose requests go to a local server; answers are scripted per number."""

    name: ClassVar[str] = "scripted"
    batch_size: ClassVar[int] = 2

    def __init__(self, endpoint: str, outcomes: dict[str, str]) -> None:
        super().__init__(endpoint=endpoint, connect_timeout=1, read_timeout=1, secrets=["k3y"])
        # number -> "ok" | "permanent" | "retryable" | "refused" (for good) | "batch-<kind>"
        self.outcomes = outcomes
        self.batches: list[list[str]] = []

    def _vendor_number(self, e164: str) -> str:
        return e164.lstrip("+")

    async def _send_batch(self, template: ResolvedTemplate, numbers: Sequence[str]) -> BatchResult:
        self.batches.append(list(numbers))
        response = await self.post("/", content=b"x", headers={}, unsent=numbers)
        assert response.status_code == 200
        kinds = {n: self.outcomes.get(n, "ok") for n in numbers}
        for kind in kinds.values():
            if kind.startswith("batch-"):
                code = "P" if kind == "batch-permanent" else "R"
                raise self.vendor_error(code, "k3y echoed", table=TABLE, retry_after=4)
        failed = {
            n: self.vendor_error("P" if k == "permanent" else "R", "", table=TABLE, retry_after=2)
            for n, k in kinds.items()
            if k not in ("ok", "refused")
        }
        failed.update(
            (n, InvalidRecipient(f"{n} is no number", vendor=self.name, code="X", refused=[n]))
            for n, k in kinds.items()
            if k == "refused"
        )
        return BatchResult(tuple(f"id-{n}" for n in numbers if n not in failed), failed)


TABLE = CodeTable(permanent=frozenset({"P"}))


@pytest.fixture
async def server() -> Any:
    async def ok(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200)

    async with LocalHttpServer(ok) as server:
        yield server


async def test_batches_and_receipt(server: LocalHttpServer) -> None:
    async with Scripted(server.url, {}) as vendor:
        receipt = await vendor.send("t", {}, "+111", "+122", "+133", "+1 11")
    assert vendor.batches == [["111", "122"], ["133"]]  # "+1 11" is "+111" again: sent once
    assert receipt == Receipt("scripted", ("id-111", "id-122", "id-133"))
    assert server.connections == 1


async def test_partial_permanent_failure(server: LocalHttpServer) -> None:
    async with Scripted(server.url, {"122": "permanent"}) as vendor:
        with pytest.raises(PermanentError) as caught:
            await vendor.send("t", {}, "+111", "+122", "+133")
    assert caught.value.unsent == ("+122",)
    assert "sent to 2 of 3" in str(caught.value)


async def test_mixed_failure_is_retryable_with_all_unsent(server: LocalHttpServer) -> None:
    outcomes = {"111": "permanent", "133": "retryable", "144": "ok"}
    async with Scripted(server.url, outcomes) as vendor:
        with pytest.raises(SendError) as caught:
            await vendor.send("t", {}, "+111", "+122", "+133", "+144")
    assert not isinstance(caught.value, PermanentError)
    assert caught.value.unsent == ("+111", "+133")
    assert caught.value.retry_after == 2
    assert caught.value.code == "R"


async def test_refused_numbers_are_not_owed(server: LocalHttpServer) -> None:
    # A retryable failure beside a refusal: retryable, unsent holds only the retryable number.
    outcomes = {"111": "refused", "133": "retryable"}
    async with Scripted(server.url, outcomes) as vendor:
        with pytest.raises(SendError) as caught:
            await vendor.send("t", {}, "+111", "+122", "+133")
    assert is_retryable(caught.value)
    assert (caught.value.unsent, caught.value.refused) == (("+133",), ("+111",))
    assert "not sent to 133: R; refused for good: 111: X" in str(caught.value)


async def test_the_others_sent_and_the_rest_refused_is_a_receipt(
    server: LocalHttpServer,
) -> None:
    async with Scripted(server.url, {"122": "refused"}) as vendor:
        receipt = await vendor.send("t", {}, "+111", "+1 22", "+133")
    assert receipt == Receipt("scripted", ("id-111", "id-133"), refused=("+1 22",))


async def test_everyone_refused_is_an_invalid_recipient(server: LocalHttpServer) -> None:
    async with Scripted(server.url, {"111": "refused", "122": "refused"}) as vendor:
        with pytest.raises(InvalidRecipient) as caught:
            await vendor.send("t", {}, "+111", "+122")
    assert (caught.value.unsent, caught.value.refused) == ((), ("+111", "+122"))
    async with Scripted(server.url, {"111": "refused"}) as vendor:
        with pytest.raises(InvalidRecipient) as caught:
            await vendor.send("t", {}, "+111")
    assert (caught.value.unsent, caught.value.refused) == ((), ("+111",))


async def test_failed_batch_leaves_later_batches_unsent(server: LocalHttpServer) -> None:
    async with Scripted(server.url, {"133": "batch-retryable"}) as vendor:
        with pytest.raises(SendError) as caught:
            await vendor.send("t", {}, "+111", "+122", "+133", "+144", "+155")
    assert vendor.batches == [["111", "122"], ["133", "144"]]
    assert caught.value.unsent == ("+133", "+144", "+155")
    assert caught.value.retry_after == 4
    assert "k3y" not in str(caught.value)  # a credential the vendor echoes is masked


async def test_whole_failure_is_raised_as_it_is(server: LocalHttpServer) -> None:
    async with Scripted(server.url, {"111": "batch-permanent"}) as vendor:
        with pytest.raises(PermanentError) as caught:
            await vendor.send("t", {}, "+111", "+1 11", "+122")
    assert caught.value.code == "P"
    assert caught.value.unsent == ("+111", "+1 11", "+122")


async def test_validation_before_any_request(server: LocalHttpServer) -> None:
    async with Scripted(server.url, {}) as vendor:
        with pytest.raises(InvalidRecipient, match="'12'"):
            await vendor.send("t", {}, "+111", "12")
        with pytest.raises(InvalidRecipient):
            await vendor.send("t", {})
    assert server.requests == []
    assert vendor.closed


async def test_a_closed_vendor_refuses_permanently(server: LocalHttpServer) -> None:
    vendor = Scripted(server.url, {})
    await vendor.aclose()
    with pytest.raises(PermanentError, match="closed"):
        await vendor.send("t", {}, "+111")
    assert server.requests == []


class Mailer(HttpVendor):
    """A channel-neutral HTTP vendor (as an email vendor would be): only the base class."""

    name: ClassVar[str] = "mailer"


async def test_http_vendor_base_posts_and_builds_errors() -> None:
    async def answer(request: HttpRequest) -> HttpResponse:
        if request.path == "/busy":
            return HttpResponse(429, b"", {"Retry-After": "7"})
        return HttpResponse.json({"echo": request.body.decode()}, headers={"X-Id": "m-1"})

    async with (
        LocalHttpServer(answer) as server,
        Mailer(
            endpoint=server.url + "/", connect_timeout=1, read_timeout=1, secrets=["s3cret"]
        ) as vendor,
    ):
        assert repr(vendor) == f"Mailer(endpoint={server.url!r})"
        ok = await vendor.post("/send", content=b"hi", headers={"Content-Type": "text/plain"})
        assert ok.json() == {"echo": "hi"}
        assert ok.headers.get("x-id") == "m-1"
        busy = await vendor.post("/busy", content=b"", headers={}, unsent=["a@example.com"])
        error = vendor.status_error(busy, what="Send request")
        assert (type(error), error.retry_after, error.code) == (SendError, 7.0, "HTTP429")
        permanent = vendor.vendor_error(
            "P", "bad key s3cret", table=TABLE, recipients=["a@example.com"]
        )
        assert isinstance(permanent, PermanentError)
        assert "s3cret" not in str(permanent)
        assert "a@example.com" in str(permanent)
        assert "check the request and the credentials" in str(permanent)
    assert vendor.closed


async def test_a_certificate_that_does_not_verify_is_permanent() -> None:
    ca = trustme.CA()  # a CA nobody trusts
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    async def ok(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200)

    async with LocalHttpServer(ok, ssl=context) as server, Scripted(server.url, {}) as vendor:
        with pytest.raises(PermanentError, match="certificate") as caught:
            await vendor.send("t", {}, "+111", "+122")
    assert caught.value.unsent == ("+111", "+122")
    assert server.requests == []


def test_a_vendor_is_built_with_no_loop_and_connects_on_the_loop_that_sends() -> None:
    vendor = Scripted("http://127.0.0.1:9", {})  # no loop runs here: nothing is opened yet

    async def ok(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200)

    async def use() -> Receipt:
        async with LocalHttpServer(ok) as server:
            vendor.endpoint = vendor.client.base_url = server.url
            async with vendor:
                return await vendor.send("t", {}, "+111")

    assert asyncio.run(use()).message_ids == ("id-111",)
    assert vendor.closed and vendor.client.closed
