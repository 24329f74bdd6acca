"""A fake Aliyun Dysmsapi server on loopback, for testing an application against "Aliyun".

:class:`FakeAliyun` speaks ``SendSms`` as Aliyun does: the parameters in the query string, a
form body or both (the official SDKs put them in the query string), signed with V3
(ACS3-HMAC-SHA256, an ``Authorization`` header) or the RPC HMAC-SHA1 ``Signature`` parameter,
JSON answers with a ``Code``. It checks every request's signature itself and records one
:class:`~gocomm.testing.outbox.Delivery` per number reached::

    from gocomm_aliyun import AliyunSms
    from gocomm_aliyun.testing import FakeAliyun

    async with FakeAliyun().serving() as fake:
        async with AliyunSms(fake.settings(templates={"login": "SMS_123456"})) as sms:
            await sms.send("login", {"code": "1234"}, "+8613800138000")
        assert [d.recipient for d in fake.deliveries] == ["+8613800138000"]

Script failures with ``mode`` (every answer), ``fail_next`` (the next answer only),
``fail_numbers`` (any request holding a number), ``messages`` (the ``Message`` of a code),
``retry_after`` and ``acs_retry_after`` (milliseconds, Aliyun's own header).

Signatures are recomputed here from the raw request with code of its own, not with
:mod:`gocomm_aliyun.signing`, so that a bug in the vendor's signing cannot hide itself.
It needs no pytest: ``gocomm fake NAME`` runs it for local development.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlsplit

from gocomm.testing.httpserver import FakeVendorServer, HttpRequest, HttpResponse
from gocomm.testing.outbox import Delivery
from gocomm_aliyun.settings import AliyunSettings

__all__ = [
    "ACCESS_KEY_ID",
    "ACCESS_KEY_SECRET",
    "THROTTLED",
    "FakeAliyun",
    "expected_signature",
    "sdk_encode",
]

#: The credentials a :class:`FakeAliyun` accepts unless given others.
ACCESS_KEY_ID = "LTAI-test-id"
ACCESS_KEY_SECRET = "s3cr3t-Aliyun-key/+="  # characters that need percent-encoding, on purpose

#: Aliyun's throttling code (a retryable failure), for ``mode`` or ``fail_next``.
THROTTLED = "isv.BUSINESS_LIMIT_CONTROL"

#: What every SendSms needs, whatever the signature.
_SEND_SMS_FIELDS = frozenset({"PhoneNumbers", "SignName", "TemplateCode"})
#: What an RPC HMAC-SHA1 request carries besides.
_RPC_FIELDS = frozenset(
    {
        "AccessKeyId", "Action", "Format", "SignatureMethod", "SignatureNonce",
        "SignatureVersion", "Timestamp", "Version", "Signature",
    }
)  # fmt: skip
#: The headers a V3 request must send and sign.
_V3_HEADERS = frozenset(
    {"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce",
     "x-acs-content-sha256"}
)  # fmt: skip
_V3_ALGORITHM = "ACS3-HMAC-SHA256"
_STAMP = "%Y-%m-%dT%H:%M:%SZ"


def sdk_encode(value: str) -> str:
    """Percent-encoding as Aliyun's own SDKs spell it (independent of the code under test)."""
    return quote_plus(value).replace("+", "%20").replace("*", "%2A").replace("%7E", "~")


def expected_signature(form: Mapping[str, str], secret: str, method: str) -> str:
    """Recompute the RPC HMAC-SHA1 signature from the parameters the server received."""
    fields = sorted((k, v) for k, v in form.items() if k != "Signature")
    query = "&".join(f"{sdk_encode(k)}={sdk_encode(v)}" for k, v in fields)
    to_sign = f"{method}&{sdk_encode('/')}&{sdk_encode(query)}"
    mac = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def expected_v3_signature(request: HttpRequest, signed_headers: list[str], secret: str) -> str:
    """Recompute the ACS3-HMAC-SHA256 signature (hex) of a request as the server received it."""
    raw_query = urlsplit(request.target).query
    pairs = sorted(
        (sdk_encode(k), sdk_encode(v)) for k, v in parse_qsl(raw_query, keep_blank_values=True)
    )
    lines = [
        request.method,
        urlsplit(request.target).path or "/",
        "&".join(f"{k}={v}" for k, v in pairs),
        "".join(f"{name}:{request.headers.get(name, '').strip()}\n" for name in signed_headers),
        ";".join(signed_headers),
        hashlib.sha256(request.body).hexdigest(),
    ]
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    to_sign = f"{_V3_ALGORITHM}\n{digest}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def _e164(number: str) -> str:
    """A ``PhoneNumbers`` entry read as Aliyun reads it, in E.164.

    Domestic: an 11-digit mobile from 1, bare or after ``+``, ``86``, ``+86`` or ``0086``.
    Anything else is country code and number (``85291234567``). A North American ``+1``
    number therefore reads as a mainland one: Aliyun cannot tell them apart.
    """
    digits = number.removeprefix("+")
    digits = digits.removeprefix("00")
    if len(digits) == 11 and digits.startswith("1"):
        return f"+86{digits}"
    return f"+{digits}"


@dataclass
class FakeAliyun(FakeVendorServer):
    """Speaks SendSms: verifies the request, then answers as ``mode`` or ``fail_numbers`` say.

    Run it with ``async with FakeAliyun().serving() as fake:`` (a free port on 127.0.0.1);
    ``fake.url`` is the ``endpoint``, ``fake.settings(...)`` whole settings that reach it.

    ``mode``: "ok", or an Aliyun code to answer every request with (HTTP 200 like Aliyun's
    business errors, e.g. :data:`THROTTLED`), or "http500"/"http503" (a bare gateway error).
    ``fail_next`` is a code to answer the next request with, once. ``fail_numbers`` maps a
    number (Aliyun's spelling, ``13800138000``) to a code for any request that contains it,
    as Aliyun fails a whole request for one number. ``messages`` maps a code to the
    ``Message`` to answer it with (e.g. ``"触发天级流控Permits:10"``). ``retry_after`` adds a
    ``Retry-After`` header to failures, ``acs_retry_after`` an ``x-acs-retry-after`` one.

    Records: ``deliveries`` (one ``Delivery`` per number reached, text the template params
    joined by spaces), ``accepted`` (the parameters of every correctly signed request,
    answered or failed: query string and form body together) and ``signatures`` (``"v3"`` or
    ``"v2"`` for each). Wrong credentials, a bad signature, a stale timestamp or a reused nonce
    are refused as Aliyun refuses them and are not recorded.
    """

    access_key_id: str = ACCESS_KEY_ID
    access_key_secret: str = ACCESS_KEY_SECRET
    mode: str = "ok"
    fail_numbers: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    retry_after: str | None = None
    acs_retry_after: str | None = None
    accepted: list[dict[str, str]] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    nonces: set[str] = field(default_factory=set)
    fail_next: str | None = None

    def settings(self, **overrides: Any) -> AliyunSettings:
        """Settings whose credentials this fake accepts and whose endpoint is its ``url``
        (unless ``endpoint`` is given)."""
        values: dict[str, Any] = {
            "access_key_id": self.access_key_id,
            "access_key_secret": self.access_key_secret,
            "sign_name": "gocomm",
        }
        values.update(overrides)
        if "endpoint" not in values:  # asked for before serving: a given endpoint only
            values["endpoint"] = self.url
        return AliyunSettings.model_validate(values)

    def _failure(self, status: int, code: str, message: str | None = None) -> HttpResponse:
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        if self.acs_retry_after:
            headers["x-acs-retry-after"] = self.acs_retry_after
        text = self.messages.get(code, message or f"answer {code}")
        body = {"RequestId": "req-err", "Code": code, "Message": text}
        return HttpResponse.json(body, status=status, headers=headers)

    async def handle(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path != "/":
            return HttpResponse(404, b"not found")
        params = dict(parse_qsl(urlsplit(request.target).query, keep_blank_values=True))
        if request.body:
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            if content_type != "application/x-www-form-urlencoded":
                return self._failure(400, "InvalidParameter", "form body expected")
            params.update(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        if request.headers.get("authorization", "").startswith(_V3_ALGORITHM + " "):
            version, problem = "v3", self._verify_v3(request)
        else:
            version, problem = "v2", self._verify_rpc(params)
        if problem is not None:
            return problem
        missing = _SEND_SMS_FIELDS - params.keys()
        if missing:
            return self._failure(400, "MissingParameter", f"missing {sorted(missing)}")
        self.accepted.append(params)
        self.signatures.append(version)
        return self._answer(params)

    def _answer(self, params: dict[str, str]) -> HttpResponse:
        if self.mode in ("http500", "http503"):
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return HttpResponse(int(self.mode[4:]), b"<html>gateway error</html>", headers)
        if self.fail_next is not None:
            code, self.fail_next = self.fail_next, None
            return self._failure(200, code)
        if self.mode != "ok":
            return self._failure(200, self.mode)
        numbers = params["PhoneNumbers"].split(",")
        for number in numbers:
            if number in self.fail_numbers:
                code = self.fail_numbers[number]
                return self._failure(200, code, f"{code} for {number}")
            if not number.removeprefix("+").isdigit():
                return self._failure(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        text = " ".join(json.loads(params.get("TemplateParam") or "{}").values())
        self.deliveries += [Delivery(_e164(number), text, params) for number in numbers]
        biz_id = f"biz-{len(self.accepted)}"
        return HttpResponse.json(
            {"RequestId": "req-ok", "Code": "OK", "Message": "OK", "BizId": biz_id}
        )

    def _fresh(self, stamp: str, nonce: str) -> HttpResponse | None:
        """Refuse a timestamp more than 15 minutes off, or a nonce seen before."""
        try:
            when = datetime.datetime.strptime(stamp, _STAMP)
        except ValueError:
            return self._failure(400, "InvalidTimeStamp.Format", "timestamp format")
        skew = abs(datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - when)
        if skew > datetime.timedelta(minutes=15):
            return self._failure(400, "InvalidTimeStamp.Expired", "timestamp too far off")
        if nonce in self.nonces:
            return self._failure(400, "SignatureNonceUsed", "nonce used")
        self.nonces.add(nonce)
        return None

    def _unknown_key(self) -> HttpResponse:
        return self._failure(
            404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
        )

    def _mismatch(self) -> HttpResponse:
        return self._failure(
            400,
            "SignatureDoesNotMatch",
            f"Specified signature is not matched. AccessKeyId {self.access_key_id}",
        )

    def _verify_rpc(self, params: dict[str, str]) -> HttpResponse | None:
        missing = _RPC_FIELDS - params.keys()
        if missing:
            return self._failure(400, "MissingParameter", f"missing {sorted(missing)}")
        if params["AccessKeyId"] != self.access_key_id:
            return self._unknown_key()
        if (params["Action"], params["Version"]) != ("SendSms", "2017-05-25"):
            return self._failure(400, "InvalidAction.NotFound", "unexpected action/version")
        if (params["SignatureMethod"], params["SignatureVersion"]) != ("HMAC-SHA1", "1.0"):
            return self._failure(400, "InvalidSignatureMethod", "unexpected method")
        stale = self._fresh(params["Timestamp"], params["SignatureNonce"])
        if stale is not None:
            return stale
        expected = expected_signature(params, self.access_key_secret, "POST")
        if not hmac.compare_digest(params["Signature"].encode(), expected.encode()):
            return self._mismatch()
        if "TemplateParam" in params:
            json.loads(params["TemplateParam"])
        return None

    def _verify_v3(self, request: HttpRequest) -> HttpResponse | None:
        headers = request.headers
        fields = dict(
            part.strip().partition("=")[::2]
            for part in headers["authorization"].removeprefix(_V3_ALGORITHM).split(",")
        )
        if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
            return self._failure(400, "IncompleteSignature", "malformed Authorization")
        if fields["Credential"] != self.access_key_id:
            return self._unknown_key()
        signed = fields["SignedHeaders"].split(";")
        must_sign = set(_V3_HEADERS) | {n for n in headers if n.startswith("x-acs-")}
        if request.body:
            must_sign.add("content-type")
        sent = set(headers) >= _V3_HEADERS
        if not (sent and must_sign <= set(signed) and signed == sorted(signed)):
            return self._failure(400, "IncompleteSignature", "a required header is not signed")
        if (headers["x-acs-action"], headers["x-acs-version"]) != ("SendSms", "2017-05-25"):
            return self._failure(400, "InvalidAction.NotFound", "unexpected action/version")
        if headers["x-acs-content-sha256"] != hashlib.sha256(request.body).hexdigest():
            return self._failure(400, "InvalidParameter", "x-acs-content-sha256 is not the body's")
        stale = self._fresh(headers["x-acs-date"], headers["x-acs-signature-nonce"])
        if stale is not None:
            return stale
        expected = expected_v3_signature(request, signed, self.access_key_secret)
        if not hmac.compare_digest(fields["Signature"].encode(), expected.encode()):
            return self._mismatch()
        return None
