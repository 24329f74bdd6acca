"""The ``mailgun`` email vendor: Mailgun v3 ``POST /v3/{domain}/messages`` with basic auth.

One request per send, a ``multipart/form-data`` form (attachments travel as file parts):
``from``, one ``to`` field per address (every ``to`` sees the others, as over SMTP), ``cc``,
``bcc``, ``subject``, ``text``, ``html``, ``h:Reply-To``, ``h:<Name>`` for each custom header,
``attachment`` for each file and ``inline`` for each image with a content id; or, when
``templates`` maps ``biz``, ``template`` with the Email's ``subject``, ``text`` and ``html`` as
``t:variables``. Mailgun accepts or refuses the message as a whole, so a failure leaves every
``to`` unsent; its errors are classified by HTTP status: see :data:`STATUS_CODES`.
"""

from __future__ import annotations

import base64
import json

from gocomm.errors import SendError
from gocomm.httpclient import Response
from gocomm.httpemail import EmailRequest, HttpEmailVendor, format_mailbox
from gocomm.httpvendor import CodeTable, json_object, parse_retry_after
from gocomm.sender import Receipt
from gocomm_mailgun.form import FilePart, encode_multipart
from gocomm_mailgun.settings import MailgunSettings

__all__ = ["STATUS_CODES", "MailgunEmail"]

#: The statuses Mailgun documents for ``messages``, as ``HTTP<status>`` codes, classified.
STATUS_CODES = CodeTable(
    permanent=frozenset(
        {
            "HTTP400",  # the request or the message (Mailgun names the field)
            "HTTP401",  # a wrong API key (or a key of the other region)
            "HTTP402",  # request failed: the account (plan, payment, sending disabled)
            "HTTP403",
            "HTTP404",  # the domain is unknown in this region
            "HTTP413",  # the message is too large
        }
    ),
    retryable=frozenset({"HTTP429", "HTTP500", "HTTP502", "HTTP503", "HTTP504"}),
)

Field = tuple[str, str | FilePart]


class MailgunEmail(HttpEmailVendor):
    """Sends :class:`~gocomm.messages.Email` through Mailgun v3; see the module docstring."""

    name = "mailgun"
    permanent_advice = "check the message, the domain and its region, and the API key"
    max_recipients = 1000
    # 25 MB per message, as Mailgun writes it: attachments base64-encoded (a third larger).
    max_attachment_bytes = 25_000_000 * 3 // 4

    def __init__(self, settings: MailgunSettings) -> None:
        key = settings.api_key.get_secret_value()
        super().__init__(**settings.vendor_options())
        self.settings = settings
        self.path = f"/v3/{settings.domain}/messages"
        self._authorization = "Basic " + base64.b64encode(f"api:{key}".encode()).decode("ascii")

    def fields(self, request: EmailRequest) -> list[Field]:
        """The form fields of the message, in order."""
        email = request.email
        fields: list[Field] = [("from", format_mailbox(*request.sender))]
        fields += [("to", address) for address in request.to]
        fields += [("cc", address) for address in request.cc]
        fields += [("bcc", address) for address in request.bcc]
        fields.append(("subject", email.subject))
        if request.template is not None:
            fields.append(("template", request.template))
            fields.append(("t:variables", json.dumps(request.template_data, ensure_ascii=False)))
        else:
            if email.text is not None:
                fields.append(("text", email.text))
            if email.html is not None:
                fields.append(("html", email.html))
        if request.reply_to:
            fields.append(("h:Reply-To", ", ".join(format_mailbox(*r) for r in request.reply_to)))
        fields += [(f"h:{name}", value) for name, value in email.headers.items()]
        for attachment in email.attachments:
            if attachment.content_id is None:
                part = FilePart(attachment.filename, attachment.content_type, attachment.content)
                fields.append(("attachment", part))
            else:
                # Mailgun gives an inline part its filename as Content-ID: the html's
                # cid:<content_id> then finds it.
                part = FilePart(attachment.content_id, attachment.content_type, attachment.content)
                fields.append(("inline", part))
        return fields

    async def _send_request(self, request: EmailRequest) -> Receipt:
        content, content_type = encode_multipart(self.fields(request))
        response = await self.post(
            self.path,
            content=content,
            headers={"Authorization": self._authorization, "Content-Type": content_type},
            unsent=request.to,
            what="messages request",
        )
        if response.status_code == 200:
            body = json_object(response)
            if isinstance(body, dict) and body.get("id"):
                return Receipt(vendor=self.name, message_ids=(str(body["id"]),))
        raise self._error(response, request)

    def _error(self, response: Response, request: EmailRequest) -> SendError:
        body = json_object(response)
        if isinstance(body, dict):
            message = str(body.get("message") or "")
        else:
            # Mailgun answers 401 with a plain "Forbidden".
            message = response.content[:200].decode("utf-8", "replace").strip()
        status = response.status_code
        if status == 200:
            message = f"an answer without a message id: {message}"
        error = self.vendor_error(
            f"HTTP{status}",
            message,
            table=STATUS_CODES,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
        error.unsent = request.to
        return error
