"""The ``resend`` email vendor: Resend's ``POST /emails`` with a bearer API key.

One request per send: the Email's ``to`` (at most 50), ``cc``, ``bcc``, ``reply_to``, subject,
``text`` and ``html``, headers, attachments (inline images by ``content_id``) and the
configured ``tags``; or, when ``templates`` maps ``biz``, the stored template with the Email's
``subject``, ``text`` and ``html`` as its ``variables``. Resend accepts or refuses a request as
a whole and answers ``{"id"}``; a failure leaves every ``to`` in ``unsent``.

Resend explains an error as ``{"statusCode", "name", "message"}``; every documented ``name`` is
classified in :data:`ERROR_NAMES`, and an HTTP 5xx is retryable whatever its body says.

No ``Idempotency-Key`` is sent: a key that let Resend drop a repeated send would have to
identify one logical send across retries and failovers, which only the caller knows (the same
Email sent twice on purpose, two one-time codes say, must both go out). gocomm's queue has its
own idempotency for that (DESIGN §12).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from gocomm.errors import InvalidMessage, SendError
from gocomm.httpclient import Response
from gocomm.httpemail import EmailRequest, HttpEmailVendor, format_mailbox
from gocomm.httpvendor import CodeTable, json_object, parse_retry_after
from gocomm.messages import Attachment
from gocomm.sender import Receipt
from gocomm_resend.settings import ResendSettings

__all__ = [
    "ERROR_NAMES",
    "MAX_MESSAGE_BYTES",
    "MAX_TO",
    "PATH",
    "STATUS_CODES",
    "ResendEmail",
    "rate_limit_wait",
]

PATH = "/emails"
#: Addresses of ``to`` one email may carry.
MAX_TO = 50
#: The largest email Resend takes, attachments base64-encoded.
MAX_MESSAGE_BYTES = 40 * 1000 * 1000

#: Resend's documented error ``name`` values, classified.
ERROR_NAMES = CodeTable(
    permanent=frozenset(
        {
            "validation_error",  # a field (the message says which), or a key not valid to send
            "missing_required_field",
            "missing_required_fields",  # the older spelling, still answered
            "invalid_idempotency_key",
            "invalid_idempotent_request",  # the same key with another payload
            "invalid_attachment",
            "invalid_from_address",
            "invalid_access",
            "invalid_parameter",
            "invalid_region",
            "missing_api_key",
            "restricted_api_key",
            "invalid_api_key",
            "not_found",
            "method_not_allowed",
            "security_error",  # 451: Resend found a security issue with the request
        }
    ),
    retryable=frozenset(
        {
            "rate_limit_exceeded",
            "daily_quota_exceeded",  # the account's quota: another vendor, or later
            "monthly_quota_exceeded",
            "concurrent_idempotent_requests",
            "application_error",
            "internal_server_error",
        }
    ),
)

#: HTTP statuses, for an answer without a ``name``.
STATUS_CODES = CodeTable(
    permanent=frozenset(
        {"HTTP400", "HTTP401", "HTTP403", "HTTP404", "HTTP405", "HTTP409", "HTTP422", "HTTP451"}
    ),
    retryable=frozenset({"HTTP429", "HTTP500", "HTTP502", "HTTP503", "HTTP504"}),
)


def rate_limit_wait(response: Response) -> float | None:
    """Seconds to wait after a refusal: ``Retry-After`` when given, else Resend's
    ``ratelimit-reset`` (seconds until the window resets)."""
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if retry_after is not None:
        return retry_after
    return parse_retry_after(response.headers.get("ratelimit-reset"))


class ResendEmail(HttpEmailVendor):
    """Sends :class:`~gocomm.messages.Email` through Resend; see the module docstring."""

    name = "resend"
    permanent_advice = "check the message, the sending domain and the API key"
    max_attachment_bytes = MAX_MESSAGE_BYTES * 3 // 4
    secret_headers = frozenset({"authorization"})

    def __init__(self, settings: ResendSettings) -> None:
        key = settings.api_key.get_secret_value()
        super().__init__(**settings.vendor_options())
        self.settings = settings
        self._headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def check_recipient_count(self, to: int, cc: int, bcc: int) -> None:
        # Resend documents its limit on `to` alone.
        if to > MAX_TO:
            raise InvalidMessage(
                f"resend: {to} addresses in to; Resend takes at most {MAX_TO} per email: "
                "split the send",
                vendor=self.name,
            )

    def payload(self, request: EmailRequest) -> dict[str, Any]:
        """The ``/emails`` JSON body for ``request``."""
        email = request.email
        body: dict[str, Any] = {"from": format_mailbox(*request.sender), "to": list(request.to)}
        if request.cc:
            body["cc"] = list(request.cc)
        if request.bcc:
            body["bcc"] = list(request.bcc)
        if request.reply_to:
            body["reply_to"] = [format_mailbox(*r) for r in request.reply_to]
        if request.template is not None:
            body["template"] = {"id": request.template, "variables": request.template_data}
        else:
            body["subject"] = email.subject
            if email.text is not None:
                body["text"] = email.text
            if email.html is not None:
                body["html"] = email.html
        if email.headers:
            body["headers"] = dict(email.headers)
        if email.attachments:
            body["attachments"] = [_attachment(a) for a in email.attachments]
        if self.settings.tags:
            body["tags"] = [{"name": n, "value": v} for n, v in self.settings.tags.items()]
        return body

    async def _send_request(self, request: EmailRequest) -> Receipt:
        content = json.dumps(self.payload(request), ensure_ascii=False).encode("utf-8")
        if len(content) > MAX_MESSAGE_BYTES:
            raise InvalidMessage(
                f"resend: an email of {len(content)} bytes (attachments base64-encoded); "
                f"Resend takes at most {MAX_MESSAGE_BYTES} bytes (40 MB): send a link instead",
                vendor=self.name,
            )
        response = await self.post(
            PATH, content=content, headers=self._headers, unsent=request.to, what="emails request"
        )
        body = json_object(response)
        if response.status_code == 200 and isinstance(body, dict) and body.get("id"):
            return Receipt(vendor=self.name, message_ids=(str(body["id"]),))
        raise self._error(response, body, request)

    def _error(self, response: Response, body: Any, request: EmailRequest) -> SendError:
        name = body.get("name") if isinstance(body, dict) else None
        message = str(body.get("message") or "") if isinstance(body, dict) else ""
        status = response.status_code
        if status == 200:
            # Sent or not, nobody can tell: retryable (at-least-once, DESIGN §3).
            error = SendError(
                "resend: answered 200 without an email id; retry later",
                vendor=self.name,
                code="HTTP200",
            )
        elif isinstance(name, str) and name and status < 500:
            error = self.vendor_error(
                name, message, table=ERROR_NAMES, retry_after=rate_limit_wait(response)
            )
        else:
            # No name, or a server error whatever the body says: classify by status.
            error = self.vendor_error(
                f"HTTP{status}",
                f"{name}: {message}" if name else message,
                table=STATUS_CODES,
                retry_after=rate_limit_wait(response),
            )
        error.unsent = request.to
        return error


def _attachment(attachment: Attachment) -> dict[str, str]:
    part = {
        "filename": attachment.filename,
        "content": base64.b64encode(attachment.content).decode("ascii"),
        "content_type": attachment.content_type,
    }
    if attachment.content_id is not None:
        part["content_id"] = attachment.content_id
    return part
