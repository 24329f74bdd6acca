"""A fake Mailgun v3 ``messages`` on loopback, for testing an application against "Mailgun".

:class:`FakeMailgun` answers ``POST /v3/{domain}/messages`` as Mailgun does: it checks HTTP
basic auth (user ``api``, password the API key; ``401 Forbidden`` otherwise), answers ``404
Domain not found`` for another domain, reads the form (``multipart/form-data`` with its own
parser, or ``application/x-www-form-urlencoded``), checks it as Mailgun documents it (``from``,
at least one ``to``, a subject, a body or a template, at most 1,000 recipients), answers ``200
{"id", "message"}``, and records one :class:`~gocomm.testing.contract.Delivery` per recipient
(to, cc and bcc) and every accepted form in :attr:`FakeMailgun.accepted`::

    from gocomm.messages import Email
    from gocomm_mailgun import MailgunEmail
    from gocomm_mailgun.testing import FakeMailgun

    async with FakeMailgun().serving() as fake:
        async with MailgunEmail(fake.settings(sender="shop@example.com")) as mailgun:
            await mailgun.send("receipt", Email(subject="Hi", text="Hello"), "ada@example.com")
        assert [d.recipient for d in fake.deliveries] == ["ada@example.com"]

Script failures with :meth:`FakeMailgun.fail_next`. No pytest here: ``gocomm fake`` may serve
it outside tests.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import hmac
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from gocomm.testing.httpserver import FakeVendorServer, HttpRequest, HttpResponse
from gocomm.testing.outbox import Delivery
from gocomm_mailgun.form import FilePart
from gocomm_mailgun.settings import MailgunSettings

__all__ = ["API_KEY", "DOMAIN", "FakeMailgun", "Form", "parse_form"]

#: The API key and domain a :class:`FakeMailgun` accepts unless given others.
API_KEY = "key-fake0123456789abcdef0123456789ab"
DOMAIN = "mg.example.com"

#: A received form: each field name with its values in order (text, or a file part).
Form = dict[str, list[str | FilePart]]


def _message(status: int, message: str, **headers: str) -> HttpResponse:
    return HttpResponse.json({"message": message}, status=status, headers=headers)


def parse_form(content_type: str, body: bytes) -> Form:
    """The fields of a ``multipart/form-data`` or urlencoded body; raises ``ValueError`` for a
    body that is neither."""
    header = email.message.Message()
    header["Content-Type"] = content_type
    form: Form = {}
    if header.get_content_type() == "application/x-www-form-urlencoded":
        for key, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
            form.setdefault(key, []).append(value)
        return form
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise ValueError(f"not a form: Content-Type {content_type!r}")
    delimiter = b"\r\n--" + boundary.encode("ascii")
    chunks = (b"\r\n" + body).split(delimiter)
    if chunks[0] or not chunks[-1].startswith(b"--"):
        raise ValueError("multipart body does not start and end with its boundary")
    for chunk in chunks[1:-1]:
        head, separator, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a multipart part without a blank line after its headers")
        headers = {}
        for line in head.decode("utf-8").split("\r\n"):
            key, colon, value = line.partition(":")
            if not colon:
                raise ValueError(f"a malformed part header {line!r}")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        params = dict(_PARAM.findall(disposition))
        if not disposition.startswith("form-data") or "name" not in params:
            raise ValueError(f"a part without a form-data field name: {disposition!r}")
        field: str | FilePart
        if "filename" in params:
            part_type = headers.get("content-type", "application/octet-stream")
            field = FilePart(_unquoted(params["filename"]), part_type, data)
        else:
            field = data.decode("utf-8")
        form.setdefault(_unquoted(params["name"]), []).append(field)
    return form


#: A ``name="value"`` parameter of a part's Content-Disposition (browsers percent-encode '"').
_PARAM = re.compile(r';\s*(name|filename)="([^"]*)"')


def _unquoted(value: str) -> str:
    return value.replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


@dataclass
class FakeMailgun(FakeVendorServer):
    """Mailgun v3 messages, checking basic auth as Mailgun does; see the module docstring."""

    api_key: str = API_KEY
    domain: str = DOMAIN
    #: Every form accepted, in order.
    accepted: list[Form] = field(default_factory=list)
    #: Scripted answers for the next requests: (HTTP status, message, extra headers).
    failures: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    #: Requests refused for their credentials.
    refused: int = 0

    def settings(self, **overrides: Any) -> MailgunSettings:
        """Settings of a ``mailgun`` vendor pointed at this fake, with its key and domain."""
        values: dict[str, Any] = {
            "api_key": self.api_key,
            "domain": self.domain,
            "endpoint": self.url,
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
        }
        values.update(overrides)
        return MailgunSettings.model_validate(values)

    def fail_next(
        self, status: int = 503, message: str = "scripted failure", **headers: str
    ) -> None:
        """Answer the next message with this status (and headers) instead of sending."""
        self.failures.append((status, message, headers))

    def _authorized(self, request: HttpRequest) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme != "Basic":
            return False
        try:
            user, _, key = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == "api" and hmac.compare_digest(key.encode(), self.api_key.encode())

    async def handle(self, request: HttpRequest) -> HttpResponse:
        if not self._authorized(request):
            self.refused += 1
            return HttpResponse(401, b"Forbidden", {"Content-Type": "text/plain"})
        parts = request.path.split("/")
        if request.method != "POST" or len(parts) != 4 or parts[::3] != ["", "messages"]:
            return _message(404, f"no route for {request.method} {request.path}")
        if parts[2] != self.domain:
            return _message(404, f"Domain not found: {parts[2]}")
        if self.failures:
            status, message, headers = self.failures.pop(0)
            return _message(status, message, **headers)
        try:
            form = parse_form(request.headers.get("content-type", ""), request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            return _message(400, f"malformed form: {exc}")
        problem = _problem(form)
        if problem is not None:
            return _message(400, problem)
        self.accepted.append(form)
        text = "\n".join(
            str(v)
            for name in ("subject", "text", "html", "template", "t:variables")
            for v in form.get(name, ())
        )
        recipients = [str(r) for kind in ("to", "cc", "bcc") for r in form.get(kind, ())]
        self.deliveries.extend(Delivery(r, text, raw=form) for r in recipients)
        domain = self.domain
        return HttpResponse.json(
            {
                "id": f"<fake-mailgun-{len(self.accepted):06d}@{domain}>",
                "message": "Queued. Thank you.",
            }
        )


def _problem(form: Form) -> str | None:
    """What Mailgun would answer 400 for, or None."""
    for name in ("from", "to"):
        if not form.get(name):
            return f"'{name}' parameter is missing"
    if not any(form.get(name) for name in ("text", "html", "template")):
        return "Need at least one of 'text', 'html' or 'template' parameters specified"
    if not form.get("subject") and not form.get("template"):
        return "'subject' parameter is missing"
    if sum(len(form.get(kind, ())) for kind in ("to", "cc", "bcc")) > 1000:
        return "Too many recipients: at most 1000 per message"
    for name, values in form.items():
        text_only = name not in ("attachment", "inline")
        if text_only and any(isinstance(v, FilePart) for v in values):
            return f"'{name}' must be a text field"
        if not text_only and any(isinstance(v, str) for v in values):
            return f"'{name}' must be a file"
    return None
