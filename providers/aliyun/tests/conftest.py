"""A local Aliyun Dysmsapi server that checks RPC v1 signatures itself, and fixtures."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote_plus

import pytest
from gocomm_aliyun import AliyunSettings, AliyunSms

from gocomm.testing.contract import Delivery
from gocomm.testing.httpserver import FakeVendorServer, HttpRequest, HttpResponse

ACCESS_KEY_ID = "LTAI-test-id"
ACCESS_KEY_SECRET = "s3cr3t-Aliyun-key/+="


def sdk_encode(value: str) -> str:
    """Percent-encoding as Aliyun's own SDKs spell it (independent of the code under test)."""
    return quote_plus(value).replace("+", "%20").replace("*", "%2A").replace("%7E", "~")


def e164(number: str) -> str:
    """Aliyun's form back to E.164: 11 digits are a mainland number, the rest carry a code."""
    return f"+86{number}" if len(number) == 11 else f"+{number}"


def expected_signature(form: dict[str, str], secret: str, method: str) -> str:
    """Recompute the RPC v1 signature from the fields the server received."""
    fields = sorted((k, v) for k, v in form.items() if k != "Signature")
    query = "&".join(f"{sdk_encode(k)}={sdk_encode(v)}" for k, v in fields)
    to_sign = f"{method}&{sdk_encode('/')}&{sdk_encode(query)}"
    mac = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


@dataclass
class FakeAliyun(FakeVendorServer):
    """Speaks SendSms: verifies the request, then answers as ``mode`` or ``fail_numbers`` say.

    ``mode``: "ok", or an Aliyun code to answer with (HTTP 200 like Aliyun's business errors),
    or "http500"/"http503" (a bare gateway error). ``fail_numbers`` maps a number to a code for
    any request that contains it. ``retry_after`` adds a Retry-After header to failures.
    """

    mode: str = "ok"
    fail_numbers: dict[str, str] = field(default_factory=dict)
    retry_after: str | None = None
    accepted: list[dict[str, str]] = field(default_factory=list)
    nonces: set[str] = field(default_factory=set)
    fail_next: str | None = None

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
        self.deliveries += [Delivery(e164(number), text, form) for number in numbers]
        biz_id = f"biz-{len(self.accepted)}"
        return HttpResponse.json(
            {"RequestId": "req-ok", "Code": "OK", "Message": "OK", "BizId": biz_id}
        )

    def _verify(self, form: dict[str, str]) -> HttpResponse | None:
        required = {
            "AccessKeyId", "Action", "Format", "SignatureMethod", "SignatureNonce",
            "SignatureVersion", "Timestamp", "Version", "Signature",
            "PhoneNumbers", "SignName", "TemplateCode",
        }  # fmt: skip
        missing = required - form.keys()
        if missing:
            return self._failure(400, "MissingParameter", f"missing {sorted(missing)}")
        if form["AccessKeyId"] != ACCESS_KEY_ID:
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
        if form["Signature"] != expected_signature(form, ACCESS_KEY_SECRET, "POST"):
            return self._failure(
                400,
                "SignatureDoesNotMatch",
                f"Specified signature is not matched. AccessKeyId {ACCESS_KEY_ID}",
            )
        if "TemplateParam" in form:
            json.loads(form["TemplateParam"])
        return None


@pytest.fixture
async def aliyun_server() -> AsyncIterator[FakeAliyun]:
    async with FakeAliyun().serving() as fake:
        yield fake


def make_settings(endpoint: str, **overrides: object) -> AliyunSettings:
    values: dict[str, object] = {
        "access_key_id": ACCESS_KEY_ID,
        "access_key_secret": ACCESS_KEY_SECRET,
        "sign_name": "gocomm",
        "templates": {"login": "SMS_123456", "order": {"id": "SMS_777", "params": ["code"]}},
        "endpoint": endpoint,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
    }
    values.update(overrides)
    return AliyunSettings.model_validate(values)


@pytest.fixture
async def aliyun(aliyun_server: FakeAliyun) -> AsyncIterator[AliyunSms]:
    async with AliyunSms(make_settings(aliyun_server.url)) as vendor:
        yield vendor
