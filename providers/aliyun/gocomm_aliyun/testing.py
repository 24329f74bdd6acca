"""A fake Aliyun Dysmsapi server on loopback, for testing an application against "Aliyun".

:class:`FakeAliyun` speaks ``SendSms`` as Aliyun does (form-encoded POST, JSON answers with a
``Code``), checks every request's RPC v1 signature itself, and records one
:class:`~gocomm.testing.outbox.Delivery` per number reached::

    from gocomm_aliyun import AliyunSms
    from gocomm_aliyun.testing import FakeAliyun

    async with FakeAliyun().serving() as fake:
        async with AliyunSms(fake.settings(templates={"login": "SMS_123456"})) as sms:
            await sms.send("login", {"code": "1234"}, "+8613800138000")
        assert [d.recipient for d in fake.deliveries] == ["+8613800138000"]

Script failures with ``mode`` (every answer), ``fail_next`` (the next answer only),
``fail_numbers`` (any request holding a number) and ``retry_after``.

The signature is recomputed here from the raw form with code of its own, not with
:mod:`gocomm_aliyun.signing`, so that a bug in the vendor's signing cannot hide itself.
It needs no pytest: ``gocomm fake NAME`` runs it for local development.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote_plus

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

_REQUIRED_FIELDS = frozenset(
    {
        "AccessKeyId", "Action", "Format", "SignatureMethod", "SignatureNonce",
        "SignatureVersion", "Timestamp", "Version", "Signature",
        "PhoneNumbers", "SignName", "TemplateCode",
    }
)  # fmt: skip


def sdk_encode(value: str) -> str:
    """Percent-encoding as Aliyun's own SDKs spell it (independent of the code under test)."""
    return quote_plus(value).replace("+", "%20").replace("*", "%2A").replace("%7E", "~")


def expected_signature(form: dict[str, str], secret: str, method: str) -> str:
    """Recompute the RPC v1 signature from the fields the server received."""
    fields = sorted((k, v) for k, v in form.items() if k != "Signature")
    query = "&".join(f"{sdk_encode(k)}={sdk_encode(v)}" for k, v in fields)
    to_sign = f"{method}&{sdk_encode('/')}&{sdk_encode(query)}"
    mac = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def _e164(number: str) -> str:
    """Aliyun's form back to E.164: 11 digits from 1 are a mainland mobile, the rest carry a code.

    (A North American ``+1`` number looks like a mainland one on the wire; it reads as mainland.)
    """
    return f"+86{number}" if len(number) == 11 and number.startswith("1") else f"+{number}"


@dataclass
class FakeAliyun(FakeVendorServer):
    """Speaks SendSms: verifies the request, then answers as ``mode`` or ``fail_numbers`` say.

    Run it with ``async with FakeAliyun().serving() as fake:`` (a free port on 127.0.0.1);
    ``fake.url`` is the ``endpoint``, ``fake.settings(...)`` whole settings that reach it.

    ``mode``: "ok", or an Aliyun code to answer every request with (HTTP 200 like Aliyun's
    business errors, e.g. :data:`THROTTLED`), or "http500"/"http503" (a bare gateway error).
    ``fail_next`` is a code to answer the next request with, once. ``fail_numbers`` maps a
    number (Aliyun's spelling, ``13800138000``) to a code for any request that contains it.
    ``retry_after`` adds a Retry-After header to failures.

    Records: ``deliveries`` (one ``Delivery`` per number reached, text the template params
    joined by spaces), ``accepted`` (every correctly signed form, answered or failed).
    Wrong credentials, a bad signature, a stale timestamp or a reused nonce are refused as
    Aliyun refuses them and are not recorded.
    """

    access_key_id: str = ACCESS_KEY_ID
    access_key_secret: str = ACCESS_KEY_SECRET
    mode: str = "ok"
    fail_numbers: dict[str, str] = field(default_factory=dict)
    retry_after: str | None = None
    accepted: list[dict[str, str]] = field(default_factory=list)
    nonces: set[str] = field(default_factory=set)
    fail_next: str | None = None

    def settings(self, **overrides: Any) -> AliyunSettings:
        """Settings whose credentials this fake accepts and whose endpoint is its ``url``."""
        values: dict[str, Any] = {
            "access_key_id": self.access_key_id,
            "access_key_secret": self.access_key_secret,
            "sign_name": "gocomm",
            "endpoint": self.url,
        }
        values.update(overrides)
        return AliyunSettings.model_validate(values)

    def _failure(self, status: int, code: str, message: str) -> HttpResponse:
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        body = {"RequestId": "req-err", "Code": code, "Message": message}
        return HttpResponse.json(body, status=status, headers=headers)

    async def handle(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path != "/":
            return HttpResponse(404, b"not found")
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            return self._failure(400, "MissingParameter", "form body expected")
        form = dict(parse_qsl(request.body.decode("ascii"), keep_blank_values=True))
        problem = self._verify(form)
        if problem is not None:
            return problem
        self.accepted.append(form)
        if self.mode in ("http500", "http503"):
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return HttpResponse(int(self.mode[4:]), b"<html>gateway error</html>", headers)
        if self.fail_next is not None:
            code, self.fail_next = self.fail_next, None
            return self._failure(200, code, f"answer {code}")
        if self.mode != "ok":
            return self._failure(200, self.mode, f"answer {self.mode}")
        numbers = form["PhoneNumbers"].split(",")
        for number in numbers:
            if number in self.fail_numbers:
                code = self.fail_numbers[number]
                return self._failure(200, code, f"{code} for {number}")
        text = " ".join(json.loads(form.get("TemplateParam", "{}")).values())
        self.deliveries += [Delivery(_e164(number), text, form) for number in numbers]
        biz_id = f"biz-{len(self.accepted)}"
        return HttpResponse.json(
            {"RequestId": "req-ok", "Code": "OK", "Message": "OK", "BizId": biz_id}
        )

    def _verify(self, form: dict[str, str]) -> HttpResponse | None:
        missing = _REQUIRED_FIELDS - form.keys()
        if missing:
            return self._failure(400, "MissingParameter", f"missing {sorted(missing)}")
        if form["AccessKeyId"] != self.access_key_id:
            return self._failure(
                404, "InvalidAccessKeyId.NotFound", "Specified access key is not found."
            )
        if (form["Action"], form["Version"]) != ("SendSms", "2017-05-25"):
            return self._failure(400, "InvalidAction", "unexpected action/version")
        if (form["SignatureMethod"], form["SignatureVersion"]) != ("HMAC-SHA1", "1.0"):
            return self._failure(400, "InvalidSignatureMethod", "unexpected method")
        stamp = datetime.datetime.strptime(form["Timestamp"], "%Y-%m-%dT%H:%M:%SZ")
        skew = abs(datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - stamp)
        if skew > datetime.timedelta(minutes=15):
            return self._failure(400, "InvalidTimeStamp.Expired", "timestamp too far off")
        if form["SignatureNonce"] in self.nonces:
            return self._failure(400, "SignatureNonceUsed", "nonce used")
        self.nonces.add(form["SignatureNonce"])
        expected = expected_signature(form, self.access_key_secret, "POST")
        if not hmac.compare_digest(form["Signature"].encode(), expected.encode()):
            return self._failure(
                400,
                "SignatureDoesNotMatch",
                f"Specified signature is not matched. AccessKeyId {self.access_key_id}",
            )
        if "TemplateParam" in form:
            json.loads(form["TemplateParam"])
        return None
