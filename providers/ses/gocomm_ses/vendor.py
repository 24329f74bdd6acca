"""The ``ses`` email vendor: Amazon SES API v2 ``SendEmail``, signed with AWS Signature V4.

One request per send (SES takes up to 50 recipients in one message). The content is

- ``Template`` when ``templates`` maps ``biz`` (the template's variables are the Email's
  ``subject``, ``text`` and ``html``);
- ``Raw`` MIME when the Email has attachments (inline images included) or custom headers;
- ``Simple`` otherwise (subject, text and html parts, UTF-8).

SES accepts or refuses the message as a whole, so a failure leaves every ``to`` unsent. Errors
are classified from the error type AWS names (``x-amzn-ErrorType``, or ``__type``/``code`` in
the body): see :data:`ERROR_CODES`.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from gocomm.errors import SendError
from gocomm.httpclient import Response
from gocomm.httpemail import EmailRequest, HttpEmailVendor, format_mailbox
from gocomm.httpvendor import CodeTable, json_object, parse_retry_after
from gocomm.mime import build_envelope
from gocomm.sender import Receipt
from gocomm_ses.settings import SesSettings
from gocomm_ses.signing import sigv4_headers

__all__ = ["ERROR_CODES", "PATH", "SesEmail"]

PATH = "/v2/email/outbound-emails"

#: The error types SES v2 and AWS's common layer document for SendEmail, classified.
ERROR_CODES = CodeTable(
    permanent=frozenset(
        {
            # the request or the message
            "BadRequestException",
            "MessageRejected",
            "MailFromDomainNotVerifiedException",
            "NotFoundException",  # template or configuration set
            "InvalidParameterValue",
            "InvalidParameterCombination",
            "MissingParameter",
            "ValidationException",
            "SerializationException",
            # the account
            "AccountSuspendedException",
            "SendingPausedException",
            "OptInRequired",
            # the credentials and the signature
            "AccessDeniedException",
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "InvalidSignatureException",
            "SignatureDoesNotMatch",
            "IncompleteSignature",
            "MissingAuthenticationToken",
            "ExpiredTokenException",
            "RequestExpired",
            "NotAuthorized",
        }
    ),
    retryable=frozenset(
        {
            "TooManyRequestsException",
            "ThrottlingException",
            "Throttling",
            "LimitExceededException",  # sending rate or daily quota: wait, or fail over
            "ConcurrentModificationException",
            "InternalFailure",
            "InternalServerError",
            "ServiceUnavailable",
            "ServiceUnavailableException",
            "RequestTimeout",
            "RequestTimeoutException",
        }
    ),
)


def _error_type(response: Response, body: Any) -> str | None:
    """The AWS error type: ``x-amzn-ErrorType`` (before ``:``), else ``__type`` or ``code``
    in the body (after ``#``)."""
    header = response.headers.get("x-amzn-ErrorType")
    if header:
        return header.split(":", 1)[0]
    if isinstance(body, dict):
        for key in ("__type", "code", "Code"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value.rsplit("#", 1)[-1]
    return None


class SesEmail(HttpEmailVendor):
    """Sends :class:`~gocomm.messages.Email` through SES v2; see the module docstring."""

    name = "ses"
    permanent_advice = "check the message, the verified identities and the credentials"
    max_recipients = 50
    # 40 MB per message after base64 (a third larger than the raw attachments).
    max_attachment_bytes = 30 * 1024 * 1024

    def __init__(self, settings: SesSettings) -> None:
        super().__init__(**settings.vendor_options())  # both the key and the session token
        self.settings = settings
        self.url = self.endpoint + PATH

    def payload(self, request: EmailRequest) -> dict[str, Any]:
        """The SendEmail JSON body for ``request``."""
        email = request.email
        destination: dict[str, list[str]] = {"ToAddresses": list(request.to)}
        if request.cc:
            destination["CcAddresses"] = list(request.cc)
        if request.bcc:
            destination["BccAddresses"] = list(request.bcc)
        body: dict[str, Any] = {
            "FromEmailAddress": format_mailbox(*request.sender),
            "Destination": destination,
        }
        if request.reply_to:
            body["ReplyToAddresses"] = [format_mailbox(*r) for r in request.reply_to]
        if request.template is not None:
            body["Content"] = {
                "Template": {
                    "TemplateName": request.template,
                    "TemplateData": json.dumps(request.template_data, ensure_ascii=False),
                }
            }
        elif email.attachments or email.headers:
            # The sender as written: build_envelope encodes a non-ASCII name itself.
            mime = build_envelope(email, request.to, self.default_sender).data
            body["Content"] = {"Raw": {"Data": base64.b64encode(mime).decode("ascii")}}
        else:
            parts: dict[str, Any] = {}
            if email.text is not None:
                parts["Text"] = {"Data": email.text, "Charset": "UTF-8"}
            if email.html is not None:
                parts["Html"] = {"Data": email.html, "Charset": "UTF-8"}
            body["Content"] = {
                "Simple": {"Subject": {"Data": email.subject, "Charset": "UTF-8"}, "Body": parts}
            }
        if self.settings.configuration_set:
            body["ConfigurationSetName"] = self.settings.configuration_set
        if self.settings.tags:
            body["EmailTags"] = [{"Name": k, "Value": v} for k, v in self.settings.tags.items()]
        return body

    def signed_headers(self, content: bytes, *, now: datetime | None = None) -> dict[str, str]:
        """The request's headers, signed (SigV4, service ``ses``)."""
        headers = {"Content-Type": "application/json"}
        session_token = self.settings.session_token
        headers.update(
            sigv4_headers(
                "POST",
                self.url,
                headers,
                content,
                access_key_id=self.settings.access_key_id,
                secret_access_key=self.settings.secret_access_key.get_secret_value(),
                region=self.settings.region,
                service="ses",
                timestamp=now or datetime.now(UTC),
                session_token=session_token.get_secret_value() if session_token else None,
            )
        )
        return headers

    async def _send_request(self, request: EmailRequest) -> Receipt:
        content = json.dumps(self.payload(request), ensure_ascii=False).encode("utf-8")
        response = await self.post(
            PATH,
            content=content,
            headers=self.signed_headers(content),
            unsent=request.to,
            what="SendEmail request",
        )
        body = json_object(response)
        if response.status_code == 200 and isinstance(body, dict) and body.get("MessageId"):
            return Receipt(vendor=self.name, message_ids=(str(body["MessageId"]),))
        raise self._error(response, body, request)

    def _error(self, response: Response, body: Any, request: EmailRequest) -> SendError:
        code = _error_type(response, body)
        if code is None:
            error = self.status_error(response, what="SendEmail request")
        else:
            message = ""
            if isinstance(body, dict):
                message = str(body.get("message") or body.get("Message") or "")
            error = self.vendor_error(
                code,
                message,
                table=ERROR_CODES,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        error.unsent = request.to
        return error
