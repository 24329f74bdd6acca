"""A fake Postmark on loopback, for testing an application against "Postmark".

:class:`FakePostmark` answers ``POST /email``, ``/email/batch``, ``/email/withTemplate`` and
``/email/batchWithTemplates`` as Postmark does: it checks the ``X-Postmark-Server-Token``
header against its token (HTTP 401, ``ErrorCode`` 10 otherwise) and the JSON ``Accept`` and
``Content-Type`` (409), checks each message the way Postmark documents it (From, To, at most
50 recipients, a subject and a body or a template, base64 attachments of allowed types, at
most 500 messages a batch), and answers each message with its ``ErrorCode``, ``MessageID``,
``To`` and ``SubmittedAt``. An address in :attr:`FakePostmark.inactive` is not delivered to
and answered with code 406 as Postmark words it. What it accepted is recorded: one
:class:`~gocomm.testing.contract.Delivery` per recipient (to, cc and bcc) and every accepted
message in :attr:`FakePostmark.accepted`::

    from gocomm.messages import Email
    from gocomm_postmark import PostmarkEmail
    from gocomm_postmark.testing import FakePostmark

    async with FakePostmark().serving() as fake:
        async with PostmarkEmail(fake.settings(sender="shop@example.com")) as postmark:
            await postmark.send("receipt", Email(subject="Hi", text="Hello"), "ada@example.com")
        assert [d.recipient for d in fake.deliveries] == ["ada@example.com"]

Script failures with :meth:`FakePostmark.fail_next` (the next request as a whole) and
:meth:`FakePostmark.fail_recipient` (the message to one address). No pytest here: ``gocomm
fake`` may serve it outside tests.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gocomm.testing.httpserver import FakeVendorServer, HttpRequest, HttpResponse
from gocomm.testing.outbox import Delivery
from gocomm_postmark.settings import PostmarkSettings
from gocomm_postmark.vendor import FORBIDDEN_EXTENSIONS

__all__ = ["SERVER_TOKEN", "FakePostmark"]

#: The server token a :class:`FakePostmark` accepts unless given another.
SERVER_TOKEN = "00000000-fake-4000-8000-postmark0000"

_ROUTES = {
    "/email": (False, False),
    "/email/withTemplate": (False, True),
    "/email/batch": (True, False),
    "/email/batchWithTemplates": (True, True),
}


def _error(status: int, code: int, message: str, **headers: str) -> HttpResponse:
    return HttpResponse.json(
        {"ErrorCode": code, "Message": message}, status=status, headers=headers
    )


class _Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class FakePostmark(FakeVendorServer):
    """Postmark's sending API, checking the server token as Postmark does; see the module
    docstring."""

    server_token: str = SERVER_TOKEN
    #: Addresses marked inactive (hard bounce, spam complaint, suppression): never delivered to.
    inactive: set[str] = field(default_factory=set)
    #: Every message accepted (sent to at least one recipient), in order.
    accepted: list[dict[str, Any]] = field(default_factory=list)
    #: Scripted answers for the next requests: (HTTP status, ErrorCode, message, headers).
    failures: list[tuple[int, int, str, dict[str, str]]] = field(default_factory=list)
    #: Scripted results for the message to an address: (ErrorCode, message).
    recipient_failures: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: Requests refused for their token.
    refused: int = 0

    def settings(self, **overrides: Any) -> PostmarkSettings:
        """Settings of a ``postmark`` vendor pointed at this fake, with its server token."""
        values: dict[str, Any] = {
            "server_token": self.server_token,
            "endpoint": self.url,
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
        }
        values.update(overrides)
        return PostmarkSettings.model_validate(values)

    def fail_next(
        self,
        status: int = 500,
        error_code: int = 0,
        message: str = "scripted failure",
        **headers: str,
    ) -> None:
        """Answer the next request with this HTTP status, ``ErrorCode`` and message (and
        headers, e.g. ``Retry-After``) instead of sending."""
        self.failures.append((status, error_code, message, headers))

    def fail_recipient(self, address: str, error_code: int, message: str = "scripted") -> None:
        """Answer every message to ``address`` with this ``ErrorCode`` (not sent)."""
        self.recipient_failures[address.lower()] = (error_code, message)

    async def handle(self, request: HttpRequest) -> HttpResponse:
        token = request.headers.get("x-postmark-server-token", "")
        if not hmac.compare_digest(token.encode(), self.server_token.encode()):
            self.refused += 1
            return _error(
                401,
                10,
                "Request does not contain a valid Server token. Please check that the "
                "X-Postmark-Server-Token header is set and matches your server's API token.",
            )
        route = _ROUTES.get(request.path)
        if request.method != "POST" or route is None:
            return _error(404, 0, f"no route for {request.method} {request.path}")
        if not (
            request.headers.get("accept", "").startswith("application/json")
            and request.headers.get("content-type", "").startswith("application/json")
        ):
            return _error(422, 409, "JSON required: set Accept and Content-Type")
        if self.failures:
            status, code, message, headers = self.failures.pop(0)
            return _error(status, code, message, **headers)
        batch, templated = route
        try:
            body = request.json()
        except ValueError:
            return _error(422, 402, "Invalid JSON")
        if batch:
            messages = body.get("Messages") if templated and isinstance(body, dict) else body
            if not isinstance(messages, list):
                return _error(422, 403, "Incompatible JSON: a list of messages is expected")
            if len(messages) > 500:
                return _error(422, 410, "Too many batch messages (at most 500)")
            return HttpResponse.json([self._send(m, templated) for m in messages])
        result = self._send(body, templated)
        ok = result["ErrorCode"] == 0 or result["Message"].startswith("Message OK")
        return HttpResponse.json(result, status=200 if ok else 422)

    def _send(self, message: Any, templated: bool) -> dict[str, Any]:
        """Check and deliver one message; its result as Postmark writes it."""
        try:
            recipients, text = _check(message, templated)
        except _Refused as exc:
            return {"ErrorCode": exc.code, "Message": str(exc)}
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            return {"ErrorCode": 403, "Message": f"Incompatible JSON: {exc!r}"}
        to = str(message["To"])
        scripted = self.recipient_failures.get(to.lower())
        if scripted is not None:
            return {"ErrorCode": scripted[0], "Message": scripted[1], "To": to}
        inactive = [r for r in recipients if r.lower() in self.inactive]
        active = [r for r in recipients if r.lower() not in self.inactive]
        if not active:
            return {
                "ErrorCode": 406,
                "Message": f"You tried to send to recipient(s) that have been marked as "
                f"inactive. Found inactive addresses: {', '.join(inactive)}. Inactive "
                "recipients are ones that have generated a hard bounce, a spam complaint, "
                "or a manual suppression.",
            }
        self.accepted.append(message)
        self.deliveries.extend(Delivery(r, text, raw=message) for r in active)
        result = {
            "To": to,
            "SubmittedAt": datetime.now(UTC).isoformat(),
            "MessageID": str(uuid.uuid4()),
            "ErrorCode": 0,
            "Message": "OK",
        }
        if inactive:
            result["ErrorCode"] = 406
            result["Message"] = (
                "Message OK, but will not deliver to these inactive addresses: "
                f"{', '.join(inactive)}."
            )
        return result


def _addresses(field_value: Any) -> list[str]:
    if field_value is None:
        return []
    return [a.strip() for a in str(field_value).split(",") if a.strip()]


def _check(message: Any, templated: bool) -> tuple[list[str], str]:
    """Every recipient and the text of a valid message; raises _Refused as Postmark would."""
    if not isinstance(message, dict):
        raise _Refused(403, "Incompatible JSON: a message is an object")
    if not message.get("From"):
        raise _Refused(300, "Invalid 'From' address: ''.")
    recipients = [
        *_addresses(message.get("To")),
        *_addresses(message.get("Cc")),
        *_addresses(message.get("Bcc")),
    ]
    if not _addresses(message.get("To")):
        raise _Refused(300, "Zero recipients specified")
    if len(recipients) > 50:
        raise _Refused(300, "Too many recipients: at most 50 (To, Cc and Bcc)")
    for header in message.get("Headers") or ():
        if set(header) != {"Name", "Value"}:
            raise _Refused(300, "Headers are {Name, Value} objects")
    for attachment in message.get("Attachments") or ():
        name = str(attachment["Name"])
        if "." in name and name.rpartition(".")[2].lower() in FORBIDDEN_EXTENSIONS:
            raise _Refused(411, f"Forbidden attachment type: {name}")
        try:
            base64.b64decode(attachment["Content"], validate=True)
        except binascii.Error:
            raise _Refused(300, f"Attachment {name}: Content must be base64") from None
        content_id = attachment.get("ContentID")
        if content_id is not None and not str(content_id).startswith("cid:"):
            raise _Refused(300, f"Attachment {name}: ContentID must start with cid:")
    if templated:
        template = message.get("TemplateId", message.get("TemplateAlias"))
        if template is None:
            raise _Refused(1101, "Template not found: give TemplateId or TemplateAlias")
        model = message.get("TemplateModel")
        if not isinstance(model, dict):
            raise _Refused(1109, "TemplateModel is required")
        return recipients, f"{template}\n{json.dumps(model, ensure_ascii=False)}"
    if not message.get("Subject"):
        raise _Refused(300, "Provide a subject")
    bodies = [message[k] for k in ("TextBody", "HtmlBody") if message.get(k)]
    if not bodies:
        raise _Refused(300, "Provide either email TextBody or HtmlBody or both.")
    return recipients, "\n".join([message["Subject"], *bodies])
