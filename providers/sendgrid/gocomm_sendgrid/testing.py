"""A fake SendGrid v3 ``mail/send`` on loopback, for testing an application against "SendGrid".

:class:`FakeSendGrid` answers ``POST /v3/mail/send`` as SendGrid does: it checks the
``Authorization: Bearer <key>`` header against its API key (401 otherwise), checks the body
the way SendGrid documents it (personalizations, unique addresses per personalization, at most
1,000 recipients, content or a template id, reserved headers, base64 attachments, an inline
attachment's content id), answers ``202 Accepted`` with an ``X-Message-Id``, and records one
:class:`~gocomm.testing.contract.Delivery` per recipient (to, cc and bcc) and every accepted
body in :attr:`FakeSendGrid.accepted`::

    from gocomm.messages import Email
    from gocomm_sendgrid import SendGridEmail
    from gocomm_sendgrid.testing import FakeSendGrid

    async with FakeSendGrid().serving() as fake:
        async with SendGridEmail(fake.settings(sender="shop@example.com")) as sendgrid:
            await sendgrid.send("receipt", Email(subject="Hi", text="Hello"), "ada@example.com")
        assert [d.recipient for d in fake.deliveries] == ["ada@example.com"]

Script failures with :meth:`FakeSendGrid.fail_next` (an HTTP status, a message and headers for
the next answer). No pytest here: ``gocomm fake`` may serve it outside tests.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from gocomm.testing.httpserver import FakeVendorServer, HttpRequest, HttpResponse
from gocomm.testing.outbox import Delivery
from gocomm_sendgrid.settings import SendGridSettings

__all__ = ["API_KEY", "FakeSendGrid"]

#: The API key a :class:`FakeSendGrid` accepts unless given another.
API_KEY = "SG.fake-key-id.gocomm-fake-sendgrid-secret"

_RESERVED_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    }
)


def _errors(status: int, message: str, field: str | None = None, **headers: str) -> HttpResponse:
    return HttpResponse.json(
        {"errors": [{"message": message, "field": field, "help": None}]},
        status=status,
        headers=headers,
    )


class _Invalid(Exception):
    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class FakeSendGrid(FakeVendorServer):
    """SendGrid v3 mail/send, checking the bearer key as SendGrid does; see the module
    docstring."""

    api_key: str = API_KEY
    #: Every mail/send body accepted, in order.
    accepted: list[dict[str, Any]] = field(default_factory=list)
    #: Scripted answers for the next requests: (HTTP status, message, extra headers).
    failures: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    #: Requests refused for their API key.
    refused: int = 0

    def settings(self, **overrides: Any) -> SendGridSettings:
        """Settings of a ``sendgrid`` vendor pointed at this fake, with its API key."""
        values: dict[str, Any] = {
            "api_key": self.api_key,
            "endpoint": self.url,
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
        }
        values.update(overrides)
        return SendGridSettings.model_validate(values)

    def fail_next(
        self, status: int = 503, message: str = "scripted failure", **headers: str
    ) -> None:
        """Answer the next mail/send with this status (and headers, e.g. ``X-RateLimit-Reset``)
        instead of sending."""
        self.failures.append((status, message, headers))

    async def handle(self, request: HttpRequest) -> HttpResponse:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            self.refused += 1
            return _errors(401, "The provided authorization grant is invalid, expired, or revoked")
        if request.method != "POST" or request.path != "/v3/mail/send":
            return _errors(404, f"no route for {request.method} {request.path}")
        if self.failures:
            status, message, headers = self.failures.pop(0)
            return _errors(status, message, **headers)
        try:
            body = request.json()
            recipients, text = _check(body)
        except (ValueError, KeyError, TypeError) as exc:
            return _errors(400, f"malformed JSON body: {exc!r}")
        except _Invalid as exc:
            return _errors(400, str(exc), exc.field)
        self.accepted.append(body)
        self.deliveries.extend(Delivery(r, text, raw=body) for r in recipients)
        message_id = f"fake-sendgrid-{len(self.accepted):06d}"
        return HttpResponse(202, b"", {"X-Message-Id": message_id})


def _check(body: dict[str, Any]) -> tuple[list[str], str]:
    """Every recipient and the text of a valid mail/send body; raises _Invalid as SendGrid
    would refuse it."""
    personalizations = body["personalizations"]
    if not isinstance(personalizations, list) or not 1 <= len(personalizations) <= 1000:
        raise _Invalid("between 1 and 1000 personalizations are required", "personalizations")
    recipients: list[str] = []
    for index, personalization in enumerate(personalizations):
        addresses = [
            entry["email"]
            for kind in ("to", "cc", "bcc")
            for entry in personalization.get(kind, ())
        ]
        if not personalization.get("to"):
            raise _Invalid("a personalization needs a to", f"personalizations.{index}.to")
        lowered = [a.lower() for a in addresses]
        if len(set(lowered)) != len(lowered):
            raise _Invalid(
                "Each email address in the personalization block should be unique between to, "
                "cc, and bcc",
                f"personalizations.{index}",
            )
        recipients += addresses
    if len(recipients) > 1000:
        raise _Invalid("at most 1000 recipients per request", "personalizations")
    if not body["from"].get("email"):
        raise _Invalid("The from object must be provided", "from.email")
    for name in body.get("headers", {}):
        if name.lower() in _RESERVED_HEADERS:
            raise _Invalid(f"header {name} is reserved", f"headers.{name}")
    for index, attachment in enumerate(body.get("attachments", ())):
        try:
            base64.b64decode(attachment["content"], validate=True)
        except binascii.Error:
            raise _Invalid("attachment content must be base64", f"attachments.{index}") from None
        if attachment.get("disposition") == "inline" and not attachment.get("content_id"):
            raise _Invalid("inline attachments need a content_id", f"attachments.{index}")
    if "template_id" in body:
        data = personalizations[0].get("dynamic_template_data", {})
        text = f"{body['template_id']}\n{json.dumps(data, ensure_ascii=False)}"
    else:
        content = body.get("content")
        if not content or not all(part.get("value") for part in content):
            raise _Invalid("content with a non-empty value is required", "content")
        if not body.get("subject"):
            raise _Invalid("The subject is required", "subject")
        text = "\n".join([body["subject"], *(part["value"] for part in content)])
    return recipients, text
