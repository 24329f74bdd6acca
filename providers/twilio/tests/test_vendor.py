"""The twilio vendor against a local Messages API server that checks Basic auth and the form."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from gocomm_twilio import TwilioSettings, TwilioSms
from gocomm_twilio.plugin import SPEC, gocomm_register_vendors
from gocomm_twilio.testing import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, SERVICE_SID, FakeTwilio
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
from gocomm.retryable import RetrySender
from gocomm.sender import Receipt
from gocomm.testing.httpserver import HttpRequest, HttpResponse, LocalHttpServer
from gocomm.testing.vendor_checks import (
    assert_hook_registers,
    assert_not_shown,
    assert_plugin_entry_point,
    shown_texts,
    stalled_server,
)

from .conftest import MESSAGES_PATH, make_settings

ARGS = {"code": "4321", "minutes": "10"}
BODY = "Your code is 4321, valid 10 minutes."


def numbers(count: int) -> list[str]:
    return [f"+1415555{i:04d}" for i in range(count)]


def sid_by_number(server: FakeTwilio) -> dict[str, str]:
    """The sid the server gave each delivered number (deliveries are created in sid order)."""
    return {d.recipient: f"SM{i + 1:032x}" for i, d in enumerate(server.deliveries)}


async def test_one_request_per_recipient_with_basic_auth_and_the_form(
    twilio: TwilioSms, twilio_server: FakeTwilio
) -> None:
    receipt = await twilio.send("login", ARGS, "+14155550100", "+44 20 7946 0958")
    assert receipt == Receipt(vendor="twilio", message_ids=(f"SM{1:032x}", f"SM{2:032x}"))
    assert twilio_server.forms == [
        {"To": "+14155550100", "From": FROM_NUMBER, "Body": BODY},
        {"To": "+442079460958", "From": FROM_NUMBER, "Body": BODY},  # normalised E.164
    ]
    assert twilio_server.server is not None
    assert {r.path for r in twilio_server.server.requests} == {MESSAGES_PATH}


async def test_messaging_service_sid_replaces_from(twilio_server: FakeTwilio) -> None:
    twilio_server.sender = {"MessagingServiceSid": SERVICE_SID}
    settings = make_settings(twilio_server.url, from_number=None, messaging_service_sid=SERVICE_SID)
    async with TwilioSms(settings) as vendor:
        await vendor.send("contract", {"code": "1"}, "+14155550100")
    assert twilio_server.forms == [
        {"To": "+14155550100", "MessagingServiceSid": SERVICE_SID, "Body": "Your code is 1"}
    ]


async def test_body_rendering_is_literal(twilio: TwilioSms, twilio_server: FakeTwilio) -> None:
    # {{ }} are literal braces; a value that looks like a field is not formatted again; extra
    # args (meant for other vendors) are ignored.
    await twilio.send("braces", {"code": "{minutes} {0.__class__}", "extra": "x"}, "+14155550100")
    assert twilio_server.forms[0]["Body"] == "{literal} {minutes} {0.__class__}"


async def test_template_and_recipient_errors_come_before_any_request(
    twilio: TwilioSms, twilio_server: FakeTwilio
) -> None:
    with pytest.raises(PermanentError, match="'signup'") as unmapped:
        await twilio.send("signup", ARGS, "+14155550100")
    assert unmapped.value.vendor == "twilio"
    assert "'login'" in str(unmapped.value)  # the known names help fix the configuration
    with pytest.raises(InvalidMessage, match="'minutes'") as missing:
        await twilio.send("login", {"code": "1"}, "+14155550100")
    assert "'code'" not in str(missing.value).split("given")[0]  # only the missing one named
    with pytest.raises(InvalidMessage, match="'code'"):
        await twilio.send("login", {"code": 1, "minutes": "5"}, "+14155550100")  # type: ignore[dict-item]
    with pytest.raises(InvalidMessage, match="1600"):
        await twilio.send("contract", {"code": "x" * 1590}, "+14155550100")
    with pytest.raises(InvalidMessage, match="empty body"):
        await twilio.send("bare", {"code": " "}, "+14155550100")
    with pytest.raises(InvalidRecipient, match="'4155550100'"):
        await twilio.send("login", ARGS, "+14155550101", "4155550100")
    # Text that cannot be encoded (a lone surrogate) is refused before any request.
    with pytest.raises(InvalidMessage, match=r"'code'.*surrogate"):
        await twilio.send("login", {"code": "\ud83d", "minutes": "5"}, "+14155550100")
    assert twilio_server.server is not None
    assert twilio_server.server.requests == []
    assert twilio_server.server.connections == 0


async def test_a_number_written_twice_gets_one_message(
    twilio: TwilioSms, twilio_server: FakeTwilio
) -> None:
    receipt = await twilio.send("login", ARGS, "+14155550100", "+1 (415) 555-0100")
    assert len(receipt.message_ids) == 1
    assert [d.recipient for d in twilio_server.deliveries] == ["+14155550100"]


async def test_per_recipient_refusals_refuse_those_numbers_only(
    twilio: TwilioSms, twilio_server: FakeTwilio
) -> None:
    to = numbers(6)
    twilio_server.number_codes[to[1]] = 21211
    twilio_server.number_codes[to[4]] = 21610
    receipt = await twilio.send("login", ARGS, *to)
    assert receipt.refused == (to[1], to[4])
    assert sorted(d.recipient for d in twilio_server.deliveries) == sorted(set(to) - {to[1], to[4]})
    assert len(twilio_server.forms) == 6  # a refused number does not stop the others
    assert len(receipt.message_ids) == 4


@pytest.mark.parametrize("code", [21635, 21265, 21266, 21610])
async def test_a_refusal_about_one_recipient_refuses_it_and_the_send_goes_on(
    twilio: TwilioSms, twilio_server: FakeTwilio, code: int
) -> None:
    to = numbers(3)
    twilio_server.number_codes[to[0]] = code
    receipt = await twilio.send("login", ARGS, *to)
    assert receipt.refused == (to[0],)
    assert sorted(d.recipient for d in twilio_server.deliveries) == to[1:]


async def test_a_country_this_account_cannot_reach_stays_owed_and_the_send_goes_on(
    twilio: TwilioSms, twilio_server: FakeTwilio
) -> None:
    # 21408 concerns one recipient, but another vendor may reach that country: not refused.
    to = numbers(3)
    twilio_server.number_codes[to[0]] = 21408
    with pytest.raises(PermanentError) as caught:
        await twilio.send("login", ARGS, *to)
    assert (caught.value.unsent, caught.value.refused) == ((to[0],), ())
    assert sorted(d.recipient for d in twilio_server.deliveries) == to[1:]


async def test_mixed_refusal_and_throttling_owes_only_the_throttled(
    twilio_server: FakeTwilio,
) -> None:
    to = numbers(4)
    twilio_server.number_codes[to[0]] = 21211
    twilio_server.number_codes[to[2]] = 20429
    twilio_server.retry_after = "30"
    async with TwilioSms(make_settings(twilio_server.url), max_concurrency=1) as vendor:
        with pytest.raises(SendError) as caught:
            await vendor.send("login", ARGS, *to)
    error = caught.value
    assert is_retryable(error)
    # to[0] was refused, to[2] throttled, and to[3] never tried: throttling stops the send.
    assert error.unsent == (to[2], to[3])
    assert error.refused == (to[0],)
    assert [f["To"] for f in twilio_server.forms] == to[:3]
    assert [d.recipient for d in twilio_server.deliveries] == [to[1]]
    assert error.retry_after == 30.0
    assert error.code == "20429"


async def test_a_retry_never_resends_a_refused_number(twilio_server: FakeTwilio) -> None:
    to = numbers(3)
    twilio_server.number_codes[to[0]] = 21610
    twilio_server.number_codes[to[1]] = 20503
    async with TwilioSms(make_settings(twilio_server.url), max_concurrency=1) as vendor:
        with pytest.raises(RetryExhausted) as caught:
            await RetrySender(vendor, 3).send("login", ARGS, *to)
    tried = [f["To"] for f in twilio_server.forms]
    assert tried == [to[0], to[1], to[1], to[1]]  # 503 stops each attempt; to[0] never again
    assert (caught.value.unsent, caught.value.refused) == ((to[1], to[2]), (to[0],))


async def test_a_message_created_failed_is_a_failure(
    twilio: TwilioSms, twilio_server: FakeTwilio
) -> None:
    to = numbers(3)
    twilio_server.number_status[to[1]] = "failed"
    with pytest.raises(PermanentError) as caught:
        await twilio.send("login", ARGS, *to)
    assert caught.value.unsent == (to[1],)
    assert caught.value.code == "30007"  # the message's error_code: filtered content
    assert sorted(d.recipient for d in twilio_server.deliveries) == [to[0], to[2]]


async def test_a_code_names_where_to_read_more(
    twilio: TwilioSms, twilio_server: FakeTwilio
) -> None:
    twilio_server.number_codes["+14155550100"] = 21606
    with pytest.raises(PermanentError) as caught:
        await twilio.send("login", ARGS, "+14155550100")
    assert "https://www.twilio.com/docs/errors/21606" in str(caught.value)
    assert caught.value.retry_after is None


@pytest.mark.parametrize(("status", "retryable"), [(500, True), (503, True), (429, True)])
async def test_bare_http_errors_are_classified_by_status(
    twilio: TwilioSms, twilio_server: FakeTwilio, status: int, retryable: bool
) -> None:
    twilio_server.mode = f"http{status}"
    twilio_server.retry_after = "2.5"
    with pytest.raises(SendError) as caught:
        await twilio.send("login", ARGS, "+14155550100")
    assert is_retryable(caught.value) is retryable
    assert caught.value.code == f"HTTP{status}"
    assert caught.value.retry_after == 2.5
    assert caught.value.unsent == ("+14155550100",)


async def test_the_status_overrides_a_code_on_401_and_429() -> None:
    async def answer(request: HttpRequest) -> HttpResponse:
        # A permanent code under 429 and an unknown code under 401.
        to = request.form()["To"]
        if to.endswith("0"):
            return HttpResponse.json({"code": 21211, "message": "m", "status": 429}, status=429)
        return HttpResponse.json({"code": 12345, "message": "m", "status": 401}, status=401)

    async with LocalHttpServer(answer) as server, TwilioSms(make_settings(server.url)) as vendor:
        with pytest.raises(SendError) as throttled:
            await vendor.send("login", ARGS, "+14155550100")
        with pytest.raises(PermanentError) as refused:
            await vendor.send("login", ARGS, "+14155550101")
    assert is_retryable(throttled.value)
    assert "auth_token" in str(refused.value)


async def test_wrong_token_fails_the_servers_check_and_no_token_is_ever_shown(
    twilio_server: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "WRONG-twilio-token-42"
    settings = make_settings(twilio_server.url, auth_token=wrong)
    async with TwilioSms(settings, max_concurrency=1) as vendor:
        with pytest.raises(PermanentError) as caught:
            await vendor.send("login", ARGS, *numbers(3))
        texts = shown_texts(caught.value, vendor, settings, caplog)
    assert caught.value.code == "20003"
    assert caught.value.unsent == tuple(numbers(3))
    assert twilio_server.forms == []
    assert twilio_server.server is not None
    assert len(twilio_server.server.requests) == 1  # bad credentials stop the send at once
    assert_not_shown(texts, wrong, AUTH_TOKEN)


async def test_a_token_echoed_by_the_server_is_masked(twilio_server: FakeTwilio) -> None:
    twilio_server.fail_next = 20500
    original = twilio_server.error

    def echo(code: int, message: str, headers: dict[str, str] | None = None) -> HttpResponse:
        return original(code, f"{message}: token {AUTH_TOKEN}", headers)

    twilio_server.error = echo  # type: ignore[method-assign]
    async with TwilioSms(make_settings(twilio_server.url)) as vendor:
        with pytest.raises(SendError) as caught:
            await vendor.send("login", ARGS, "+14155550100")
    assert "token ***" in str(caught.value)
    assert AUTH_TOKEN not in str(caught.value)


async def test_read_timeout_becomes_send_timeout() -> None:
    async with stalled_server() as server:
        settings = make_settings(server.url, read_timeout=0.2)
        async with TwilioSms(settings) as vendor:
            with pytest.raises(SendTimeout) as caught:
                await vendor.send("login", ARGS, *numbers(3))
    assert is_retryable(caught.value)
    assert set(caught.value.unsent or ()) == set(numbers(3))


async def test_a_success_without_sid_counts_as_unsent() -> None:
    async def no_sid(request: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"status": "queued"}, status=201)

    async with LocalHttpServer(no_sid) as server, TwilioSms(make_settings(server.url)) as vendor:
        with pytest.raises(SendError) as caught:
            await vendor.send("login", ARGS, "+14155550100")
    assert is_retryable(caught.value)
    assert caught.value.code == "MissingSid"


async def test_requests_are_bounded_concurrent_and_sids_follow_to(
    twilio_server: FakeTwilio,
) -> None:
    gate = asyncio.Event()
    twilio_server.gate = gate
    to = numbers(10)
    async with TwilioSms(make_settings(twilio_server.url), max_concurrency=3) as vendor:
        send = asyncio.create_task(vendor.send("login", ARGS, *to))
        await asyncio.wait_for(twilio_server.when_in_flight(3).wait(), 10)
        for _ in range(20):  # give a fourth request every chance to start: none may
            await asyncio.sleep(0)
        assert twilio_server.in_flight == 3
        gate.set()
        receipt = await send
    assert twilio_server.max_in_flight == 3
    assert twilio_server.server is not None
    assert twilio_server.server.connections == 3  # one keep-alive connection per worker
    assert sorted(d.recipient for d in twilio_server.deliveries) == sorted(to)
    by_number = sid_by_number(twilio_server)
    assert receipt.message_ids == tuple(by_number[n] for n in to)


class _OnRecord(logging.Handler):
    """Sets an event when a record is logged: the vendor's one line when it stops a send."""

    def __init__(self, event: asyncio.Event) -> None:
        super().__init__(logging.DEBUG)
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()


async def test_a_stop_under_concurrency_starts_no_new_request(twilio_server: FakeTwilio) -> None:
    to = numbers(12)
    # The three workers take to[0], to[1], to[2]; to[0] is throttled at once while the other
    # two are held, so the stop happens with two requests in flight.
    twilio_server.gate = asyncio.Event()
    twilio_server.ungated = {to[0]}
    twilio_server.number_codes[to[0]] = 20429
    stopped = asyncio.Event()
    logger = logging.getLogger("tests.twilio.stop")
    logger.setLevel(logging.DEBUG)
    handler = _OnRecord(stopped)
    logger.addHandler(handler)
    try:
        settings = make_settings(twilio_server.url)
        async with TwilioSms(settings, max_concurrency=3, logger=logger) as vendor:
            send = asyncio.create_task(vendor.send("login", ARGS, *to))
            await asyncio.wait_for(stopped.wait(), 10)
            twilio_server.gate.set()  # the two requests in flight finish and count as sent
            with pytest.raises(SendError) as caught:
                await send
            assert sorted(f["To"] for f in twilio_server.forms) == to[:3]
            assert caught.value.unsent == (to[0], *to[3:])
            assert is_retryable(caught.value)
            assert sorted(d.recipient for d in twilio_server.deliveries) == to[1:3]
            # A retry of the unsent numbers completes the send; nobody gets a second message.
            twilio_server.number_codes.clear()
            await vendor.send("login", ARGS, *(caught.value.unsent or ()))
    finally:
        logger.removeHandler(handler)
    assert sorted(d.recipient for d in twilio_server.deliveries) == sorted(to)


async def test_cancelling_a_send_in_flight_cancels_its_requests(
    twilio_server: FakeTwilio,
) -> None:
    twilio_server.gate = asyncio.Event()
    async with TwilioSms(make_settings(twilio_server.url), max_concurrency=3) as vendor:
        send = asyncio.create_task(vendor.send("login", ARGS, *numbers(5)))
        await asyncio.wait_for(twilio_server.when_in_flight(3).wait(), 10)
        send.cancel()
        with pytest.raises(asyncio.CancelledError):
            await send
        # The three requests already written may still be delivered (at-least-once); the
        # other two numbers were never asked for.
        assert twilio_server.in_flight == 3
        twilio_server.gate.set()
        receipt = await vendor.send("login", ARGS, "+14155550199")
    assert receipt.vendor == "twilio"
    assert [f["To"] for f in twilio_server.forms] == [*numbers(3), "+14155550199"]


async def test_one_client_reused_across_sends(twilio: TwilioSms, twilio_server: FakeTwilio) -> None:
    for i in range(10):
        await twilio.send("contract", {"code": str(i)}, "+14155550100")
    assert len(twilio_server.forms) == 10
    assert twilio_server.server is not None
    assert twilio_server.server.connections == 1


async def test_aclose_is_idempotent_and_a_closed_vendor_refuses(
    twilio_server: FakeTwilio,
) -> None:
    vendor = TwilioSms(make_settings(twilio_server.url))
    async with vendor:
        await vendor.send("login", ARGS, "+14155550100")
    await vendor.aclose()
    assert vendor.client.closed
    with pytest.raises(SendError, match="closed"):
        await vendor.send("login", ARGS, "+14155550100")
    with pytest.raises(ValueError, match="max_concurrency"):
        TwilioSms(make_settings(twilio_server.url), max_concurrency=0)


def test_settings_keys_defaults_and_normalisation() -> None:
    assert set(TwilioSettings.model_fields) == {
        "account_sid", "auth_token", "from_number", "messaging_service_sid", "templates",
        "endpoint", "connect_timeout", "read_timeout",
    }  # fmt: skip
    settings = TwilioSettings(
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,  # type: ignore[arg-type]
        from_number="+1 (500) 555-0006",
    )
    assert settings.endpoint == "https://api.twilio.com"
    assert settings.from_number == "+15005550006"
    assert settings.templates == {}
    for sender in ("Gocomm", "ACME 2024", "12345"):  # alphanumeric sender IDs, short codes
        assert make_settings("http://127.0.0.1:1", from_number=sender).from_number == sender


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"from_number": None}, "exactly one of from_number or messaging_service_sid"),
        ({"from_number": ""}, "neither is given"),
        ({"messaging_service_sid": SERVICE_SID}, "both are given"),
        ({"messaging_service_sid": "MG123", "from_number": None}, "'MG' and 32 hex"),
        ({"account_sid": "AC123"}, "'AC' and 32 hex"),
        ({"account_sid": ACCOUNT_SID + "/../x"}, "'AC' and 32 hex"),
        ({"auth_token": ""}, "Auth Token"),
        ({"from_number": "+1-call-me"}, "E.164"),
        ({"templates": {"login": "code {0}"}}, "not a plain name"),
        ({"templates": {"login": "code {}"}}, "not a plain name"),
        ({"templates": {"login": "{code.__class__}"}}, "not a plain name"),
        ({"templates": {"login": "{code[0]}"}}, "not a plain name"),
        ({"templates": {"login": "{code!r}"}}, "conversion or format spec"),
        ({"templates": {"login": "{code:>9}"}}, "conversion or format spec"),
        ({"templates": {"login": "code {code"}}, "literal brace"),
        ({"templates": {"login": "code }"}}, "literal brace"),
        ({"templates": {"login": ""}}, "empty"),
        ({"endpoint": "api.twilio.com"}, "http"),
        ({"read_timeout": 0}, "greater than 0"),
        ({"region": "us1"}, "Extra inputs"),
    ],
)
def test_settings_refuse_bad_values_clearly(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        make_settings(str(bad.pop("endpoint", "http://127.0.0.1:1")), **bad)
    assert AUTH_TOKEN not in str(caught.value)


@pytest.mark.parametrize("field", ["account_sid", "auth_token"])
def test_a_credential_with_surrounding_whitespace_is_refused_naming_only_the_field(
    field: str,
) -> None:
    value = {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}[field]
    with pytest.raises(ValidationError) as caught:
        make_settings("http://127.0.0.1:1", **{field: f"{value}\n"})
    assert field in str(caught.value) and "whitespace" in str(caught.value)
    assert value not in str(caught.value)


def test_plugin_loads_through_the_entry_point() -> None:
    assert_plugin_entry_point(
        "twilio", distribution="gocomm-twilio", channels={"sms"}, settings=TwilioSettings
    )


async def test_plugin_registers_a_working_vendor(twilio_server: FakeTwilio) -> None:
    assert_hook_registers(gocomm_register_vendors, SPEC, name="twilio", channels={"sms"})
    vendor: Any = SPEC.factory(make_settings(twilio_server.url))
    async with vendor:
        receipt = await vendor.send("login", ARGS, "+14155550100")
    assert receipt.vendor == "twilio"
    assert [d.text for d in twilio_server.deliveries] == [BODY]
