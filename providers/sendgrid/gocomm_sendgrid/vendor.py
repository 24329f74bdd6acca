"""The ``sendgrid`` email vendor: SendGrid v3 ``POST /v3/mail/send`` with a bearer API key.

One request per send, with one personalization per address of ``to``: each recipient gets a
message addressed to them alone (no one sees the other ``to`` addresses), and SendGrid takes
up to 1,000 personalizations and 1,000 recipients in one request. ``cc`` and ``bcc`` go in the
first personalization only, so that each of them receives one copy (in every personalization
they would receive one per ``to``); they travel with every attempt, as DESIGN §3 says, because
SendGrid accepts or refuses a request as a whole: a failure leaves every ``to`` unsent.

The content is the Email's subject, ``text/plain`` and ``text/html`` parts, headers and
attachments (inline ones with their content id); or, when ``templates`` maps ``biz``, the
dynamic template with the Email's ``subject``, ``text`` and ``html`` as its
``dynamic_template_data``. SendGrid explains an error in ``{"errors": [{"message", "field",
"help"}]}`` and classifies it by HTTP status: see :data:`STATUS_CODES`.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from gocomm.errors import InvalidMessage, SendError
from gocomm.httpclient import Response
from gocomm.httpemail import EmailRequest, HttpEmailVendor
from gocomm.httpvendor import CodeTable, json_object, parse_retry_after
from gocomm.messages import Attachment, Email
from gocomm.sender import Receipt
from gocomm_sendgrid.settings import SendGridSettings

__all__ = ["PATH", "STATUS_CODES", "SendGridEmail", "rate_limit_wait"]

PATH = "/v3/mail/send"

#: The statuses SendGrid documents for mail/send, as ``HTTP<status>`` codes, classified.
STATUS_CODES = CodeTable(
    permanent=frozenset(
        {
            "HTTP400",  # the request or the message (named in errors[].field)
            "HTTP401",  # no or a wrong API key
            "HTTP403",  # the key lacks Mail Send, or the sender is not verified
            "HTTP404",
            "HTTP405",
            "HTTP413",  # payload too large
            "HTTP415",
        }
    ),
    retryable=frozenset({"HTTP429", "HTTP500", "HTTP502", "HTTP503", "HTTP504"}),
)


def rate_limit_wait(response: Response, *, now: float | None = None) -> float | None:
    """Seconds to wait after a refusal: ``Retry-After`` when given, else until SendGrid's
    ``X-RateLimit-Reset`` (a Unix time)."""
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if retry_after is not None:
        return retry_after
    reset = response.headers.get("X-RateLimit-Reset")
    try:
        at = float(reset) if reset is not None else None
    except ValueError:
        return None
    if at is None:
        return None
    return max(0.0, at - (time.time() if now is None else now))


def _address(name: str, address: str) -> dict[str, str]:
    return {"email": address, "name": name} if name else {"email": address}


class SendGridEmail(HttpEmailVendor):
    """Sends :class:`~gocomm.messages.Email` through SendGrid v3; see the module docstring."""

    name = "sendgrid"
    permanent_advice = "check the message, the verified sender and the API key's permissions"
    max_recipients = 1000
    # 30 MB per request, attachments base64-encoded (a third larger than the raw bytes).
    max_attachment_bytes = 30_000_000 * 3 // 4
    refused_headers = frozenset(
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

    def __init__(self, settings: SendGridSettings) -> None:
        super().__init__(**settings.vendor_options())
        self.settings = settings
        self._headers = {
            "Authorization": f"Bearer {settings.api_key.get_secret_value()}",
            "Content-Type": "application/json",
        }

    def check(self, biz: str, args: object, to: tuple[str, ...]) -> EmailRequest:
        request = super().check(biz, args, to)
        # SendGrid refuses an address twice in one personalization (cc and bcc share the first
        # one), and a cc or bcc that is also a `to` would get two copies: refuse both.
        seen = {address.lower() for address in request.to}
        for address in (*request.cc, *request.bcc):
            if address.lower() in seen:
                raise InvalidMessage(
                    f"sendgrid: {address!r} appears twice among to, cc and bcc; SendGrid takes "
                    "each address once per personalization: remove it",
                    vendor=self.name,
                )
            seen.add(address.lower())
        return request

    def payload(self, request: EmailRequest) -> dict[str, Any]:
        """The mail/send JSON body for ``request``."""
        email = request.email
        personalizations: list[dict[str, Any]] = [
            {"to": [{"email": address}]} for address in request.to
        ]
        if request.cc:
            personalizations[0]["cc"] = [{"email": a} for a in request.cc]
        if request.bcc:
            personalizations[0]["bcc"] = [{"email": a} for a in request.bcc]
        body: dict[str, Any] = {
            "personalizations": personalizations,
            "from": _address(*request.sender),
        }
        if len(request.reply_to) == 1:
            body["reply_to"] = _address(*request.reply_to[0])
        elif request.reply_to:
            body["reply_to_list"] = [_address(*r) for r in request.reply_to]
        if request.template is not None:
            body["template_id"] = request.template
            for personalization in personalizations:
                personalization["dynamic_template_data"] = request.template_data
        else:
            body["subject"] = email.subject
            body["content"] = _content(email)
        if email.headers:
            body["headers"] = dict(email.headers)
        if email.attachments:
            body["attachments"] = [_attachment(a) for a in email.attachments]
        return body

    async def _send_request(self, request: EmailRequest) -> Receipt:
        content = json.dumps(self.payload(request), ensure_ascii=False).encode("utf-8")
        response = await self.post(
            PATH,
            content=content,
            headers=self._headers,
            unsent=request.to,
            what="mail/send request",
        )
        if response.status_code in (200, 202):
            message_id = response.headers.get("X-Message-Id")
            return Receipt(vendor=self.name, message_ids=(message_id,) if message_id else ())
        raise self._error(response, request)

    def _error(self, response: Response, request: EmailRequest) -> SendError:
        body = json_object(response)
        messages = []
        errors = body.get("errors") if isinstance(body, dict) else None
        for error in errors if isinstance(errors, list) else ():
            if isinstance(error, dict) and error.get("message"):
                text = str(error["message"])
                if error.get("field"):
                    text += f" (field {error['field']})"
                messages.append(text)
        error = self.vendor_error(
            f"HTTP{response.status_code}",
            "; ".join(messages),
            table=STATUS_CODES,
            retry_after=rate_limit_wait(response),
        )
        error.unsent = request.to
        return error


def _content(email: Email) -> list[dict[str, str]]:
    # SendGrid wants text/plain before text/html.
    content = []
    if email.text is not None:
        content.append({"type": "text/plain", "value": email.text})
    if email.html is not None:
        content.append({"type": "text/html", "value": email.html})
    return content


def _attachment(attachment: Attachment) -> dict[str, str]:
    part = {
        "content": base64.b64encode(attachment.content).decode("ascii"),
        "type": attachment.content_type,
        "filename": attachment.filename,
        "disposition": "attachment",
    }
    if attachment.content_id is not None:
        part["disposition"] = "inline"
        part["content_id"] = attachment.content_id
    return part
