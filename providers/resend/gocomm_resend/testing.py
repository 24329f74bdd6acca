"""A fake Resend ``POST /emails`` on loopback, for testing an application against "Resend".

:class:`FakeResend` answers ``POST /emails`` as Resend does: it checks the ``Authorization:
Bearer <key>`` header (no key: 401 ``missing_api_key``; another key: 403 ``invalid_api_key``),
checks the body the way Resend documents it (``from``, ``to`` as a string or at most 50
addresses, a subject and ``html`` or ``text``, or a ``template``; base64 attachments with a
file name, tags of letters, digits, ``_`` and ``-``), answers ``{"id": ...}`` and records one
:class:`~gocomm.testing.contract.Delivery` per recipient (to, cc and bcc) and every accepted
body in :attr:`FakeResend.accepted`; errors are ``{"statusCode", "name", "message"}``::

    from gocomm.messages import Email
    from gocomm_resend import ResendEmail
    from gocomm_resend.testing import FakeResend

    async with FakeResend().serving() as fake:
        async with ResendEmail(fake.settings(sender="shop@example.com")) as resend:
            await resend.send("receipt", Email(subject="Hi", text="Hello"), "ada@example.com")
        assert [d.recipient for d in fake.deliveries] == ["ada@example.com"]

Script failures with :meth:`FakeResend.fail_next` (a status, an error name, a message and
headers for the next answer). No pytest here: ``gocomm fake`` may serve it outside tests.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from gocomm.testing.httpserver import FakeVendorServer, HttpRequest, HttpResponse
from gocomm.testing.outbox import Delivery
from gocomm_resend.settings import ResendSettings

__all__ = ["API_KEY", "FakeResend"]

#: The API key a :class:`FakeResend` accepts unless given another.
API_KEY = "re_FakeKey_gocomm_fake_resend_secret"

_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _error(status: int, name: str, message: str, **headers: str) -> HttpResponse:
    return HttpResponse.json(
        {"statusCode": status, "name": name, "message": message}, status=status, headers=headers
    )


class _Invalid(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass
class FakeResend(FakeVendorServer):
    """Resend's ``/emails``, checking the bearer key as Resend does; see the module
    docstring."""

    api_key: str = API_KEY
    #: Every body accepted, in order.
    accepted: list[dict[str, Any]] = field(default_factory=list)
    #: Scripted answers for the next requests: (HTTP status, name, message, headers).
    failures: list[tuple[int, str, str, dict[str, str]]] = field(default_factory=list)
    #: Requests refused for their key.
    refused: int = 0

    def settings(self, **overrides: Any) -> ResendSettings:
        """Settings of a ``resend`` vendor pointed at this fake, with its API key."""
        values: dict[str, Any] = {
            "api_key": self.api_key,
            "endpoint": self.url,
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
        }
        values.update(overrides)
        return ResendSettings.model_validate(values)

    def fail_next(
        self,
        status: int = 500,
        name: str = "internal_server_error",
        message: str = "scripted failure",
        **headers: str,
    ) -> None:
        """Answer the next ``/emails`` with this status, error name and message (and headers,
        e.g. ``Retry-After`` or ``ratelimit-reset``) instead of sending."""
        self.failures.append((status, name, message, headers))

    async def handle(self, request: HttpRequest) -> HttpResponse:
        authorization = request.headers.get("authorization", "")
        if not authorization:
            self.refused += 1
            return _error(401, "missing_api_key", "Missing API key in the authorization header.")
        scheme, _, key = authorization.partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            self.refused += 1
            return _error(403, "invalid_api_key", "API key is invalid")
        if request.path != "/emails":
            return _error(404, "not_found", "The requested endpoint does not exist.")
        if request.method != "POST":
            return _error(405, "method_not_allowed", "Method is not allowed.")
        if self.failures:
            status, name, message, headers = self.failures.pop(0)
            return _error(status, name, message, **headers)
        try:
            body = request.json()
            recipients, text = _check(body)
        except _Invalid as exc:
            return _error(422, exc.name, str(exc))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return _error(400, "validation_error", f"Invalid request body: {exc!r}")
        self.accepted.append(body)
        self.deliveries.extend(Delivery(r, text, raw=body) for r in recipients)
        return HttpResponse.json({"id": str(uuid.uuid4())})


def _list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _check(body: dict[str, Any]) -> tuple[list[str], str]:
    """Every recipient and the text of a valid body; raises _Invalid as Resend would."""
    if not body.get("from"):
        raise _Invalid("missing_required_field", "The `from` field is missing.")
    if "<" in body["from"] and not body["from"].rstrip().endswith(">"):
        raise _Invalid("invalid_from_address", "Invalid `from` field.")
    to = _list(body.get("to"))
    if not to:
        raise _Invalid("missing_required_field", "The `to` field is missing.")
    if len(to) > 50:
        raise _Invalid("validation_error", "The `to` field must have at most 50 addresses.")
    for index, attachment in enumerate(body.get("attachments") or ()):
        if not attachment.get("filename"):
            raise _Invalid("invalid_attachment", f"attachments[{index}]: filename is required")
        try:
            base64.b64decode(attachment["content"], validate=True)
        except binascii.Error:
            raise _Invalid("invalid_attachment", f"attachments[{index}]: not base64") from None
    for tag in body.get("tags") or ():
        if not _TAG.fullmatch(tag["name"]) or not _TAG.fullmatch(tag["value"]):
            raise _Invalid("validation_error", "Tags should only contain ASCII letters, ...")
    headers = body.get("headers") or {}
    if not all(isinstance(v, str) for v in headers.values()):
        raise _Invalid("validation_error", "Header values must be strings.")
    recipients = [*to, *_list(body.get("cc")), *_list(body.get("bcc"))]
    template = body.get("template")
    if template is not None:
        if not template.get("id"):
            raise _Invalid("validation_error", "The template `id` is missing.")
        variables = json.dumps(template.get("variables", {}), ensure_ascii=False)
        return recipients, f"{template['id']}\n{variables}"
    if not body.get("subject"):
        raise _Invalid("missing_required_field", "The `subject` field is missing.")
    bodies = [body[k] for k in ("text", "html") if body.get(k)]
    if not bodies:
        raise _Invalid("missing_required_field", "Provide `html` or `text`.")
    return recipients, "\n".join([body["subject"], *bodies])
