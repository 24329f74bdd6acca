"""The ``postmark`` email vendor: Postmark's ``/email`` and ``/email/batch`` APIs.

**One message per address of ``to``.** Postmark accepts or refuses one message as a whole, but
answers a batch message by message (``ErrorCode`` and ``Message`` for each). So a send to one
address is one ``POST /email``, and a send to several is ``POST /email/batch`` with one message
per address (at most 500 per request, 50 MB per request: a longer send takes several requests,
one after another). Each recipient gets a message addressed to them alone, and the outcome is
exact per recipient: an address Postmark marks inactive (hard bounce, spam complaint,
suppression: code 406) is refused for good and named in ``refused``; one whose message failed
for a retryable reason is named in ``unsent``; the others got their message and are never sent
it again. ``cc`` and ``bcc`` go with the first message only, so that each of them gets one
copy. When ``templates`` maps ``biz`` the same holds with ``/email/withTemplate`` and
``/email/batchWithTemplates``, the template's model being the Email's ``subject``, ``text`` and
``html``.

Every documented Postmark error code is classified in :data:`ERROR_CODES`; an HTTP 5xx is
retryable whatever its body says.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from gocomm.errors import InvalidMessage, SendError
from gocomm.httpclient import Response
from gocomm.httpemail import EmailRequest, HttpEmailVendor, format_mailbox
from gocomm.httpvendor import parse_retry_after
from gocomm.messages import Attachment
from gocomm.sender import Receipt, merge_refused
from gocomm_postmark.codes import ERROR_CODES, STATUS_CODES
from gocomm_postmark.settings import PostmarkSettings

__all__ = [
    "ERROR_CODES",
    "FORBIDDEN_EXTENSIONS",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_MESSAGES",
    "MAX_MESSAGE_BYTES",
    "PostmarkEmail",
    "inactive_addresses",
]

#: Messages one batch request may carry, and its largest body.
MAX_BATCH_MESSAGES = 500
MAX_BATCH_BYTES = 50 * 1000 * 1000
#: The largest message (JSON, attachments base64-encoded) Postmark takes.
MAX_MESSAGE_BYTES = 10 * 1000 * 1000

#: Attachment file name extensions Postmark refuses (its "forbidden file types").
FORBIDDEN_EXTENSIONS = frozenset(
    [
        "vbs",
        "exe",
        "bin",
        "bat",
        "chm",
        "com",
        "cpl",
        "crt",
        "hlp",
        "hta",
        "inf",
        "ins",
        "isp",
        "jse",
        "lnk",
        "mdb",
        "pcd",
        "pif",
        "reg",
        "scr",
        "sct",
        "shs",
        "vbe",
        "vba",
        "wsf",
        "wsh",
        "wsl",
        "msc",
        "msi",
        "msp",
        "mst",
    ]
)

_INACTIVE = re.compile(r"inactive addresses:\s*(.+?)(?:\.\s|\.?$)", re.IGNORECASE)


def inactive_addresses(message: str) -> frozenset[str]:
    """The addresses (lower case) a code 406 message names as inactive, either form Postmark
    writes: "Found inactive addresses: a, b. Inactive recipients are ..." (nobody was sent the
    message) or "Message OK, but will not deliver to these inactive addresses: a, b." (the
    others were)."""
    found = _INACTIVE.search(message)
    if found is None:
        return frozenset()
    return frozenset(a.strip().lower() for a in found.group(1).split(",") if a.strip())


@dataclasses.dataclass(frozen=True, slots=True)
class _Message:
    to: str
    body: bytes


class PostmarkEmail(HttpEmailVendor):
    """Sends :class:`~gocomm.messages.Email` through Postmark; see the module docstring."""

    name = "postmark"
    recipient_noun = "addresses"
    permanent_advice = "check the message, the sender signature and the server token"
    #: Recipients of one message: its one ``to`` and the ``cc`` and ``bcc``.
    max_recipients = 50
    max_attachment_bytes = MAX_MESSAGE_BYTES
    secret_headers = frozenset({"x-postmark-server-token"})

    def __init__(self, settings: PostmarkSettings) -> None:
        token = settings.server_token.get_secret_value()
        super().__init__(**settings.vendor_options())
        self.settings = settings
        self._headers = {
            "X-Postmark-Server-Token": token,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    def check_recipient_count(self, to: int, cc: int, bcc: int) -> None:
        # One message per `to`: the limit is per message, the first carrying cc and bcc.
        if 1 + cc + bcc > self.max_recipients:
            raise InvalidMessage(
                f"postmark: {cc + bcc} cc and bcc plus a to make {1 + cc + bcc} recipients of "
                f"one message; Postmark takes at most {self.max_recipients}: split the send",
                vendor=self.name,
            )

    def check(self, biz: str, args: object, to: tuple[str, ...]) -> EmailRequest:
        request = super().check(biz, args, to)
        for attachment in request.email.attachments:
            extension = attachment.filename.rpartition(".")[2].lower()
            if "." in attachment.filename and extension in FORBIDDEN_EXTENSIONS:
                raise InvalidMessage(
                    f"postmark: attachment {attachment.filename!r}: Postmark forbids .{extension} "
                    "files (its forbidden file types); zip it or send a link",
                    vendor=self.name,
                )
        return request

    def message(self, request: EmailRequest, to: str, *, first: bool) -> dict[str, Any]:
        """The Postmark message for the ``to`` address ``to`` (``first``: with cc and bcc)."""
        email = request.email
        message: dict[str, Any] = {"From": format_mailbox(*request.sender), "To": to}
        if first and request.cc:
            message["Cc"] = ", ".join(request.cc)
        if first and request.bcc:
            message["Bcc"] = ", ".join(request.bcc)
        if request.reply_to:
            message["ReplyTo"] = ", ".join(format_mailbox(*r) for r in request.reply_to)
        if request.template is not None:
            if request.template.isdigit():
                message["TemplateId"] = int(request.template)
            else:
                message["TemplateAlias"] = request.template
            message["TemplateModel"] = request.template_data
        else:
            message["Subject"] = email.subject
            if email.text is not None:
                message["TextBody"] = email.text
            if email.html is not None:
                message["HtmlBody"] = email.html
        if email.headers:
            message["Headers"] = [{"Name": n, "Value": v} for n, v in email.headers.items()]
        if email.attachments:
            message["Attachments"] = [_attachment(a) for a in email.attachments]
        if self.settings.message_stream is not None:
            message["MessageStream"] = self.settings.message_stream
        return message

    def _messages(self, request: EmailRequest) -> list[_Message]:
        messages = []
        for index, to in enumerate(request.to):
            body = json.dumps(self.message(request, to, first=index == 0), ensure_ascii=False)
            messages.append(_Message(to, body.encode("utf-8")))
            if len(messages[-1].body) > MAX_MESSAGE_BYTES:
                raise InvalidMessage(
                    f"postmark: a message of {len(messages[-1].body)} bytes (attachments "
                    f"base64-encoded); Postmark takes at most {MAX_MESSAGE_BYTES} bytes (10 MB): "
                    "send a link instead",
                    vendor=self.name,
                )
        return messages

    async def _send_request(self, request: EmailRequest) -> Receipt:
        messages = self._messages(request)  # raises on an oversized message, before any request
        templated = request.template is not None
        message_ids: list[str] = []
        failed: dict[str, SendError] = {}
        cc_refused: set[str] = set()
        errors: dict[tuple[str, str], SendError] = {}  # one error per distinct failure
        for start, batch in _batches(messages):
            try:
                results = await self._post(batch, templated=templated, single=len(messages) == 1)
            except SendError as exc:
                # The request failed as a whole: this batch and every later one stay unsent.
                failed.update((m.to, exc) for m in messages[start:])
                break
            for message, result in zip(batch, results, strict=True):
                message_id, error, inactive = self._result(result, message.to, errors)
                if message_id is not None:
                    message_ids.append(message_id)
                if error is not None:
                    failed[message.to] = error
                cc_refused |= inactive - {message.to.lower()}
        receipt = self.outcome([(to, to) for to in request.to], message_ids, failed)
        refused_copies = [a for a in (*request.cc, *request.bcc) if a.lower() in cc_refused]
        if refused_copies:
            self.logger.warning("postmark: inactive cc/bcc not sent: %s", ", ".join(refused_copies))
            receipt = dataclasses.replace(
                receipt, refused=merge_refused(receipt.refused, tuple(refused_copies))
            )
        return receipt

    async def _post(self, batch: Sequence[_Message], *, templated: bool, single: bool) -> list[Any]:
        """POST the one message of a send (``/email``) or a batch; the per-message results,
        in order."""
        unsent = [m.to for m in batch]
        if single:
            path = "/email/withTemplate" if templated else "/email"
            content = batch[0].body
        elif templated:
            path = "/email/batchWithTemplates"
            content = b'{"Messages":[' + b",".join(m.body for m in batch) + b"]}"
        else:
            path = "/email/batch"
            content = b"[" + b",".join(m.body for m in batch) + b"]"
        response = await self.post(
            path, content=content, headers=self._headers, unsent=unsent, what=f"{path} request"
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200:
            results = [body] if single else body
            if isinstance(results, list) and len(results) == len(batch):
                return results
            # Sent or not, nobody can tell: retryable (at-least-once, DESIGN §3).
            raise SendError(
                f"postmark: {path} answered 200 with a body that does not list one result per "
                "message; retry later",
                vendor=self.name,
                code="HTTP200",
                unsent=unsent,
            )
        if (
            single
            and isinstance(body, dict)
            and isinstance(body.get("ErrorCode"), int)
            and response.status_code < 500
        ):
            return [{**body, "_status": response.status_code, "_wait": _wait(response)}]
        raise self._request_error(response, body, unsent)

    def _result(
        self, result: Any, to: str, errors: dict[tuple[str, str], SendError]
    ) -> tuple[str | None, SendError | None, frozenset[str]]:
        """(message id, error for ``to``, addresses named inactive) of one message's result."""
        if not isinstance(result, Mapping) or not isinstance(result.get("ErrorCode"), int):
            error = SendError(
                f"postmark: unreadable result for {to}: {self.redact(str(result))}; retry later",
                vendor=self.name,
                code="unreadable",
            )
            return None, error, frozenset()
        code = str(result["ErrorCode"])
        message = str(result.get("Message") or "")
        message_id = result.get("MessageID") or None
        if code == "0":
            return str(message_id) if message_id else None, None, frozenset()
        inactive = inactive_addresses(message) if code == "406" else frozenset()
        if (
            code == "406"
            and to.lower() not in inactive
            and message.lower().startswith("message ok")
        ):
            # Sent to `to`; only a cc or bcc was inactive.
            return str(message_id) if message_id else None, None, inactive
        key = (code, message)
        if key not in errors:
            errors[key] = self.vendor_error(
                code,
                message,
                table=ERROR_CODES,
                retry_after=result.get("_wait"),
                recipients=[to] if code == "406" else None,
            )
        error = errors[key]
        if code == "406" and to not in error.refused:
            error.refused = (*error.refused, to)
        return None, error, inactive

    def _request_error(self, response: Response, body: Any, unsent: list[str]) -> SendError:
        code = body.get("ErrorCode") if isinstance(body, dict) else None
        message = str(body.get("Message") or "") if isinstance(body, dict) else ""
        if isinstance(code, int) and response.status_code < 500:
            error = self.vendor_error(
                str(code), message, table=ERROR_CODES, retry_after=_wait(response)
            )
        else:
            # No ErrorCode, or a server error whatever the body says: classify by status.
            error = self.vendor_error(
                f"HTTP{response.status_code}",
                message,
                table=STATUS_CODES,
                retry_after=_wait(response),
            )
        error.unsent = tuple(unsent)
        return error


def _wait(response: Response) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"))


def _batches(messages: Sequence[_Message]) -> Iterator[tuple[int, Sequence[_Message]]]:
    """(start index, messages) of consecutive batches within Postmark's count and size."""
    start = 0
    while start < len(messages):
        end, size = start, 2
        while end < len(messages) and end - start < MAX_BATCH_MESSAGES:
            size += len(messages[end].body) + 1
            if end > start and size > MAX_BATCH_BYTES:
                break
            end += 1
        yield start, messages[start:end]
        start = end


def _attachment(attachment: Attachment) -> dict[str, str]:
    part = {
        "Name": attachment.filename,
        "Content": base64.b64encode(attachment.content).decode("ascii"),
        "ContentType": attachment.content_type,
    }
    if attachment.content_id is not None:
        part["ContentID"] = f"cid:{attachment.content_id}"
    return part
