"""A fake Twilio Messages API on loopback, for testing an application against "Twilio".

:class:`FakeTwilio` speaks ``POST /2010-04-01/Accounts/{sid}/Messages.json`` as Twilio does
(form-encoded, HTTP Basic auth, a message resource or a Twilio error as JSON), checks the
credentials and the form itself, and records one :class:`~gocomm.testing.outbox.Delivery` per
message created::

    from gocomm_twilio import TwilioSms
    from gocomm_twilio.testing import FakeTwilio

    async with FakeTwilio().serving() as fake:
        async with TwilioSms(fake.settings(templates={"login": "Your code is {code}"})) as sms:
            await sms.send("login", {"code": "1234"}, "+14155550100")
        assert [d.text for d in fake.deliveries] == ["Your code is 1234"]

Script failures with ``fail_next`` (the next answer only), ``number_codes`` (a number's
error code, every time), ``number_status`` / ``number_failures`` (a message created ``failed``,
with its error code), ``mode`` (bare
gateway errors) and ``retry_after``; hold requests with ``gate`` to observe concurrency.

The Authorization header is decoded here with code of its own, not the vendor's.
It needs no pytest: ``gocomm fake NAME`` runs it for local development.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from gocomm.testing.httpserver import FakeVendorServer, HttpRequest, HttpResponse
from gocomm.testing.outbox import Delivery
from gocomm_twilio.settings import TwilioSettings

__all__ = [
    "ACCOUNT_SID",
    "AUTH_TOKEN",
    "CODE_STATUS",
    "FROM_NUMBER",
    "SERVICE_SID",
    "THROTTLED",
    "FakeTwilio",
    "basic_credentials",
]

#: The credentials and sender a :class:`FakeTwilio` accepts unless given others.
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "twilio-s3cr3t-Auth-token"
FROM_NUMBER = "+15005550006"
SERVICE_SID = "MG" + "fedcba9876543210" * 2

#: Twilio's throttling code (HTTP 429, retryable), for ``fail_next`` or ``number_codes``.
THROTTLED = 20429
#: The HTTP status Twilio answers each error code with (400 for the rest).
CODE_STATUS = {20003: 401, 20404: 404, 20429: 429, 20500: 500, 20503: 503}


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(username, password) of a Basic Authorization header, decoded independently."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


@dataclass
class FakeTwilio(FakeVendorServer):
    """Speaks the Messages API: checks auth, path and form, then answers as configured.

    Run it with ``async with FakeTwilio().serving() as fake:`` (a free port on 127.0.0.1);
    ``fake.url`` is the ``endpoint``, ``fake.settings(...)`` whole settings that reach it.
    ``sender`` is the sender field the form must carry (``{"From": ...}`` or
    ``{"MessagingServiceSid": ...}``); wrong credentials are refused with 20003 (HTTP 401).

    ``number_codes`` maps a ``To`` number to a Twilio error code to answer with, every time;
    ``number_status`` maps one to a message status to create it with (``failed``: with
    ``error_code`` 30007); ``number_failures`` maps one to the delivery error code (30xxx) of
    a message created ``failed``.
    ``fail_next`` is an error code for the next request only; ``mode`` "http500"/"http503"
    answers a bare (non-JSON) gateway error; ``retry_after`` adds a Retry-After header to
    failures. ``deliveries`` holds one contract ``Delivery`` per message created (the suite's
    ``Outbox``); ``forms`` every accepted form; ``gate`` (when set) holds each request (but
    those to the ``ungated`` numbers) until it is set, and ``in_flight``/``max_in_flight``
    count requests being answered.
    """

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    sender: dict[str, str] = field(default_factory=lambda: {"From": FROM_NUMBER})
    number_codes: dict[str, int] = field(default_factory=dict)
    number_status: dict[str, str] = field(default_factory=dict)
    number_failures: dict[str, int] = field(default_factory=dict)
    fail_next: int | None = None
    mode: str = "ok"
    retry_after: str | None = None
    forms: list[dict[str, str]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    ungated: set[str] = field(default_factory=set)
    in_flight: int = 0
    max_in_flight: int = 0
    in_flight_events: dict[int, asyncio.Event] = field(default_factory=dict)
    serial: int = 0

    @property
    def messages_path(self) -> str:
        """The path of the account's Messages resource, where messages are created."""
        return f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def settings(self, **overrides: Any) -> TwilioSettings:
        """Settings whose credentials and sender this fake accepts, endpoint its ``url``
        (unless ``endpoint`` is given)."""
        values: dict[str, Any] = {
            "account_sid": self.account_sid,
            "auth_token": self.auth_token,
            "from_number": self.sender.get("From"),
            "messaging_service_sid": self.sender.get("MessagingServiceSid"),
        }
        values.update(overrides)
        if "endpoint" not in values:  # asked for before serving: a given endpoint only
            values["endpoint"] = self.url
        return TwilioSettings.model_validate(values)

    def when_in_flight(self, count: int) -> asyncio.Event:
        """An event set once ``count`` requests are being answered at the same time."""
        return self.in_flight_events.setdefault(count, asyncio.Event())

    def _headers(self) -> dict[str, str]:
        return {"Retry-After": self.retry_after} if self.retry_after else {}

    def error(self, code: int, message: str, headers: dict[str, str] | None = None) -> HttpResponse:
        status = CODE_STATUS.get(code, 400)
        body = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        return HttpResponse.json(
            body, status=status, headers={**self._headers(), **(headers or {})}
        )

    async def handle(self, request: HttpRequest) -> HttpResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.in_flight in self.in_flight_events:
            self.in_flight_events[self.in_flight].set()
        try:
            if self.gate is not None and request.form().get("To") not in self.ungated:
                await self.gate.wait()
            return self._answer(request)
        finally:
            self.in_flight -= 1

    def _answer(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path != self.messages_path:
            return self.error(20404, f"The requested resource {request.path} was not found")
        credentials = basic_credentials(request.headers.get("authorization", ""))
        if credentials != (self.account_sid, self.auth_token):
            return self.error(
                20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'}
            )
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            return self.error(21602, "Message body is required.")
        form = request.form()
        if not form.get("To"):
            return self.error(21604, "A 'To' phone number is required.")
        if not form.get("Body"):
            return self.error(21602, "Message body is required.")
        sender = {k: v for k, v in form.items() if k in ("From", "MessagingServiceSid")}
        if sender != self.sender:
            return self.error(21603, f"A 'From' phone number is required, got {sender}")
        if set(form) != {"To", "Body", *self.sender}:
            return self.error(21659, f"unexpected fields {sorted(form)}")
        if not form["To"].startswith("+") or not form["To"][1:].isdigit():
            return self.error(21211, f"The 'To' number {form['To']} is not a valid phone number.")
        self.forms.append(form)
        if self.mode.startswith("http"):
            return HttpResponse(int(self.mode[4:]), b"<html>bad gateway</html>", self._headers())
        if self.fail_next is not None:
            code, self.fail_next = self.fail_next, None
            return self.error(code, f"error {code}")
        to = form["To"]
        if to in self.number_codes:
            code = self.number_codes[to]
            return self.error(code, f"error {code} for {to}")
        self.serial += 1
        sid = f"SM{self.serial:032x}"
        status = "failed" if to in self.number_failures else self.number_status.get(to, "queued")
        if status == "queued":
            self.deliveries.append(Delivery(to, form["Body"], form))
        return HttpResponse.json(self.message_resource(sid, form, status), status=201)

    def message_resource(self, sid: str, form: dict[str, str], status: str) -> dict[str, Any]:
        failed = status in ("failed", "undelivered")
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": form["Body"],
            "direction": "outbound-api",
            "error_code": self.number_failures.get(form["To"], 30007) if failed else None,
            "error_message": "Message filtered" if failed else None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_segments": "1",
            "price": None,
            "sid": sid,
            "status": status,
            "to": form["To"],
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
