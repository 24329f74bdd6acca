"""A fake Amazon SES v2 ``SendEmail`` on loopback, for testing an application against "SES".

:class:`FakeSes` answers ``POST /v2/email/outbound-emails`` as SES does: it checks the AWS
Signature Version 4 of every request with code of its own (not the vendor's signer): the
access key, the credential scope (date, region, service ``ses``), the signed headers (``host``
and ``x-amz-date`` must be among them, and ``x-amz-security-token`` when the credentials are
temporary), a clock skew of at most five minutes, and the signature recomputed from what
arrived. It records one :class:`~gocomm.testing.outbox.Delivery` per recipient (to, cc and
bcc) of every message it accepts, and every accepted body in :attr:`FakeSes.accepted`::

    from gocomm.messages import Email
    from gocomm_ses import SesEmail
    from gocomm_ses.testing import FakeSes

    async with FakeSes().serving() as fake:
        async with SesEmail(fake.settings(sender="shop@example.com")) as ses:
            await ses.send("receipt", Email(subject="Hi", text="Hello"), "ada@example.com")
        assert [d.recipient for d in fake.deliveries] == ["ada@example.com"]

Script failures with :meth:`FakeSes.fail_next` (an AWS error type and HTTP status for the next
answer). It needs no pytest: ``gocomm fake ses`` runs it for local development.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from gocomm.testing.httpserver import FakeVendorServer, HttpRequest, HttpResponse
from gocomm.testing.outbox import Delivery, mime_text
from gocomm_ses.settings import SesSettings

__all__ = ["ACCESS_KEY_ID", "REGION", "SECRET_ACCESS_KEY", "SESSION_TOKEN", "FakeSes"]

#: The credentials a :class:`FakeSes` accepts unless given others.
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLE//session+token="
REGION = "eu-west-1"

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
_MAX_SKEW = 300.0


def _error(status: int, error_type: str, message: str, **headers: str) -> HttpResponse:
    return HttpResponse.json(
        {"message": message},
        status=status,
        headers={"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/", **headers},
    )


@dataclass
class FakeSes(FakeVendorServer):
    """SES v2 SendEmail, checking SigV4 as AWS does; see the module docstring."""

    access_key_id: str = ACCESS_KEY_ID
    secret_access_key: str = SECRET_ACCESS_KEY
    region: str = REGION
    #: When set, requests must carry (and sign) this X-Amz-Security-Token.
    session_token: str | None = None
    #: Every SendEmail body accepted, in order.
    accepted: list[dict[str, Any]] = field(default_factory=list)
    #: Scripted answers for the next requests: (HTTP status, AWS error type, Retry-After).
    failures: list[tuple[int, str, str | None]] = field(default_factory=list)
    #: Requests refused for their signature or credentials.
    refused: int = 0

    def settings(self, **overrides: Any) -> SesSettings:
        """Settings of an ``ses`` vendor pointed at this fake, with its credentials."""
        values: dict[str, Any] = {
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "region": self.region,
            "endpoint": self.url,
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
        }
        if self.session_token is not None:
            values["session_token"] = self.session_token
        values.update(overrides)
        return SesSettings.model_validate(values)

    def fail_next(
        self,
        error_type: str = "ServiceUnavailable",
        status: int = 503,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next SendEmail with this AWS error instead of sending."""
        self.failures.append((status, error_type, retry_after))

    async def handle(self, request: HttpRequest) -> HttpResponse:
        refusal = self._authenticate(request)
        if refusal is not None:
            self.refused += 1
            return refusal
        if request.method != "POST" or request.path != "/v2/email/outbound-emails":
            return _error(404, "NotFoundException", f"no route for {request.method} {request.path}")
        if self.failures:
            status, error_type, retry_after = self.failures.pop(0)
            extra = {"Retry-After": retry_after} if retry_after else {}
            return _error(status, error_type, "scripted failure", **extra)
        try:
            body = request.json()
            to = list(body["Destination"]["ToAddresses"])
            text = self._content_text(body["Content"])
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            return _error(400, "BadRequestException", f"malformed SendEmail body: {exc!r}")
        if not to:
            return _error(400, "BadRequestException", "Destination.ToAddresses is empty")
        destination = body["Destination"]
        recipients = [
            *to,
            *destination.get("CcAddresses", ()),
            *destination.get("BccAddresses", ()),
        ]
        if len(recipients) > 50:
            return _error(400, "BadRequestException", "more than 50 recipients")
        self.accepted.append(body)
        self.deliveries.extend(Delivery(r, text, raw=body) for r in recipients)
        return HttpResponse.json({"MessageId": f"fake-ses-{len(self.accepted):06d}"})

    @staticmethod
    def _content_text(content: dict[str, Any]) -> str:
        if "Simple" in content:
            simple = content["Simple"]
            parts = [simple["Subject"]["Data"]]
            parts += [simple["Body"][k]["Data"] for k in ("Text", "Html") if k in simple["Body"]]
            return "\n".join(parts)
        if "Raw" in content:
            return mime_text(base64.b64decode(content["Raw"]["Data"], validate=True))
        template = content["Template"]
        return f"{template['TemplateName']}\n{template.get('TemplateData', '')}"

    # -- SigV4, checked independently of gocomm_ses.signing ------------------------------------

    def _authenticate(self, request: HttpRequest) -> HttpResponse | None:
        header = request.headers.get("authorization", "")
        match = _AUTH.fullmatch(header)
        if match is None:
            return _error(403, "IncompleteSignature", "Authorization header is not SigV4")
        if match["key"] != self.access_key_id:
            return _error(403, "UnrecognizedClientException", "The security token is invalid")
        amz_date = request.headers.get("x-amz-date", "")
        try:
            signed_at = time.mktime(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")) - time.timezone
        except ValueError:
            return _error(403, "IncompleteSignature", "X-Amz-Date is missing or malformed")
        if abs(time.time() - signed_at) > _MAX_SKEW:
            return _error(403, "InvalidSignatureException", "Signature expired")
        if match["date"] != amz_date[:8] or match["region"] != self.region:
            return _error(403, "InvalidSignatureException", "Credential scope does not match")
        if match["service"] != "ses":
            return _error(403, "InvalidSignatureException", "Credential should be scoped to ses")
        signed = match["signed"].split(";")
        required = {"host", "x-amz-date"}
        if self.session_token is not None:
            required.add("x-amz-security-token")
            if request.headers.get("x-amz-security-token") != self.session_token:
                return _error(403, "UnrecognizedClientException", "The security token is invalid")
        if not required <= set(signed) or any(name not in request.headers for name in signed):
            return _error(403, "InvalidSignatureException", "a required header is not signed")
        expected = self._signature(request, signed, amz_date, match["date"])
        if not hmac.compare_digest(expected, match["signature"]):
            return _error(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided",
            )
        return None

    def _signature(self, request: HttpRequest, signed: list[str], amz_date: str, day: str) -> str:
        target = urlsplit(request.target)
        path = quote(unquote(target.path) or "/", safe="/-_.~")
        pairs = sorted(
            (quote(unquote(k), safe="-_.~"), quote(unquote(v), safe="-_.~"))
            for k, _, v in (p.partition("=") for p in target.query.split("&") if p)
        )
        query = "&".join(f"{k}={v}" for k, v in pairs)
        headers = "".join(f"{n}:{' '.join(request.headers[n].split())}\n" for n in signed)
        canonical = "\n".join(
            [
                request.method,
                path,
                query,
                headers,
                ";".join(signed),
                hashlib.sha256(request.body).hexdigest(),
            ]
        )
        scope = f"{day}/{self.region}/ses/aws4_request"
        string_to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = ("AWS4" + self.secret_access_key).encode()
        for part in (day, self.region, "ses", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
