"""A local Tencent Cloud SMS server that checks TC3 signatures itself, and fixtures."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from gocomm_tencentcloud import TencentCloudSettings, TencentCloudSms

from gocomm.testing.contract import Delivery
from gocomm.testing.httpserver import FakeVendorServer, HttpRequest, HttpResponse

SECRET_ID = "AKID-test-id"
SECRET_KEY = "tc-s3cr3t-Key-value"
SDK_APP_ID = "1400000000"


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def verify_tc3(request: HttpRequest, secret_key: str) -> str | None:
    """Recompute TC3-HMAC-SHA256 from the raw request; return the error code, or None if valid."""
    auth = request.headers.get("authorization", "")
    algorithm, _, rest = auth.partition(" ")
    if algorithm != "TC3-HMAC-SHA256":
        return "AuthFailure.InvalidAuthorization"
    parts = dict(part.strip().split("=", 1) for part in rest.split(","))
    credential = parts.get("Credential", "").split("/")
    if len(credential) != 4 or credential[3] != "tc3_request":
        return "AuthFailure.InvalidAuthorization"
    secret_id, date, service, _ = credential
    if secret_id != SECRET_ID:
        return "AuthFailure.SecretIdNotFound"
    timestamp = int(request.headers.get("x-tc-timestamp", "0"))
    if abs(time.time() - timestamp) > 300:
        return "AuthFailure.SignatureExpire"
    if date != datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d") or service != "sms":
        return "AuthFailure.InvalidAuthorization"
    signed = parts.get("SignedHeaders", "")
    names = signed.split(";")
    if not {"content-type", "host"} <= set(names):
        return "AuthFailure.InvalidAuthorization"

    def header(name: str) -> str:
        value = request.headers.get(name, "").strip()
        return value.lower() if name == "x-tc-action" else value  # the action is lower-cased

    canonical_headers = "".join(f"{name}:{header(name)}\n" for name in names)
    canonical = "\n".join(
        [
            request.method,
            request.path,
            "",
            canonical_headers,
            signed,
            hashlib.sha256(request.body).hexdigest(),
        ]
    )
    to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            str(timestamp),
            f"{date}/{service}/tc3_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _sign(_sign(_sign(("TC3" + secret_key).encode(), date), service), "tc3_request")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, parts.get("Signature", "")):
        return "AuthFailure.SignatureFailure"
    return None


@dataclass
class FakeTencent(FakeVendorServer):
    """Speaks SendSms 2021-01-11: verifies the request, then answers as configured.

    ``mode``: "ok", or a request-level error code (``Response.Error``), or "http500"/"http502".
    ``number_codes`` maps a number to its per-number ``SendStatusSet`` code ("-": no item).
    ``retry_after`` adds a Retry-After header to every non-"ok" answer; ``fail_next`` is a
    request-level code to answer the next request with, once. ``deliveries`` holds one contract
    ``Delivery`` per number reached (the suite's ``Outbox``).
    """

    mode: str = "ok"
    number_codes: dict[str, str] = field(default_factory=dict)
    retry_after: str | None = None
    accepted: list[dict[str, Any]] = field(default_factory=list)
    serial: int = 0
    fail_next: str | None = None

    def _headers(self) -> dict[str, str]:
        return {"Retry-After": self.retry_after} if self.retry_after else {}

    def _error(self, code: str, message: str) -> HttpResponse:
        body = {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "req"}}
        return HttpResponse.json(body, headers=self._headers())  # Tencent answers HTTP 200

    async def handle(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path != "/":
            return HttpResponse(404, b"not found")
        if request.headers.get("content-type") != "application/json; charset=utf-8":
            return self._error("InvalidParameter", "content type")
        if (request.headers.get("x-tc-action"), request.headers.get("x-tc-version")) != (
            "SendSms",
            "2021-01-11",
        ):
            return self._error("InvalidAction", "action or version")
        if request.headers.get("host") != f"127.0.0.1:{self.server.port if self.server else 0}":
            return self._error("AuthFailure.InvalidAuthorization", "host")
        problem = verify_tc3(request, SECRET_KEY)
        if problem is not None:
            return self._error(problem, f"{problem}: check your SecretId {SECRET_ID}")
        body = request.json()
        self.accepted.append(body)
        if body.get("SmsSdkAppId") != SDK_APP_ID:
            return self._error("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId")
        if self.mode.startswith("http"):
            return HttpResponse(int(self.mode[4:]), b"upstream failed", self._headers())
        if self.fail_next is not None:
            code, self.fail_next = self.fail_next, None
            return self._error(code, f"answer {code}")
        if self.mode != "ok":
            return self._error(self.mode, f"answer {self.mode}")
        statuses = []
        for number in body["PhoneNumberSet"]:
            self.serial += 1
            code = self.number_codes.get(number, "Ok")
            if code == "-":  # answer with no status for this number
                continue
            if code == "Ok":
                text = " ".join(body["TemplateParamSet"])
                self.deliveries.append(Delivery(number, text, body))
            statuses.append(
                {
                    "SerialNo": f"serial-{self.serial}",
                    "PhoneNumber": number,
                    "Fee": 1 if code == "Ok" else 0,
                    "SessionContext": "",
                    "Code": code,
                    "Message": "send success" if code == "Ok" else f"{code} for {number}",
                    "IsoCode": "CN",
                }
            )
        headers = self._headers() if any(s["Code"] != "Ok" for s in statuses) else {}
        return HttpResponse.json(
            {"Response": {"SendStatusSet": statuses, "RequestId": "req"}}, headers=headers
        )


@pytest.fixture
async def tencent_server() -> AsyncIterator[FakeTencent]:
    async with FakeTencent().serving() as fake:
        yield fake


def make_settings(endpoint: str, **overrides: object) -> TencentCloudSettings:
    values: dict[str, object] = {
        "secret_id": SECRET_ID,
        "secret_key": SECRET_KEY,
        "sdk_app_id": SDK_APP_ID,
        "sign_name": "gocomm",
        "templates": {"login": {"id": "1234", "params": ["code", "minutes"]}, "plain": "5678"},
        "endpoint": endpoint,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
    }
    values.update(overrides)
    return TencentCloudSettings.model_validate(values)


@pytest.fixture
async def tencent(tencent_server: FakeTencent) -> AsyncIterator[TencentCloudSms]:
    async with TencentCloudSms(make_settings(tencent_server.url)) as vendor:
        yield vendor
