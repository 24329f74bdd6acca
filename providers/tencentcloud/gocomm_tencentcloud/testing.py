"""A fake Tencent Cloud SMS server on loopback, for testing an application against "Tencent".

:class:`FakeTencentCloud` speaks ``SendSms`` (API 2021-01-11) as Tencent Cloud does (JSON POST,
HTTP 200 answers with ``Response.Error`` or one ``SendStatusSet`` item per number), checks every
request's TC3-HMAC-SHA256 signature itself, and records one
:class:`~gocomm.testing.outbox.Delivery` per number reached::

    from gocomm_tencentcloud import TencentCloudSms
    from gocomm_tencentcloud.testing import FakeTencentCloud

    async with FakeTencentCloud().serving() as fake:
        settings = fake.settings(templates={"login": {"id": "1234", "params": ["code"]}})
        async with TencentCloudSms(settings) as sms:
            await sms.send("login", {"code": "1234"}, "+8613800138000")
        assert [d.recipient for d in fake.deliveries] == ["+8613800138000"]

Script failures with ``mode`` (every answer), ``fail_next`` (the next answer only),
``number_codes`` (one number's own status), ``request_codes`` (a request holding a number fails
as a whole) and ``retry_after``. Requests are accepted as Tencent accepts them: JSON with or
without ``; charset=utf-8``, signed over any headers that include ``content-type`` and ``host``
(the official SDKs sign those two; gocomm adds ``x-tc-action``).

The signature is recomputed here from the raw request with code of its own, not with
:mod:`gocomm_tencentcloud.signing`, so that a bug in the vendor's signing cannot hide itself.
It needs no pytest: ``gocomm fake NAME`` runs it for local development.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gocomm.testing.httpserver import FakeVendorServer, HttpRequest, HttpResponse
from gocomm.testing.outbox import Delivery
from gocomm_tencentcloud.settings import TencentCloudSettings

__all__ = ["SDK_APP_ID", "SECRET_ID", "SECRET_KEY", "THROTTLED", "FakeTencentCloud", "verify_tc3"]

#: The credentials a :class:`FakeTencentCloud` accepts unless given others.
SECRET_ID = "AKID-test-id"
SECRET_KEY = "tc-s3cr3t-Key-value"
SDK_APP_ID = "1400000000"

#: Tencent Cloud's per-number throttling code, for ``number_codes`` (a retryable failure).
THROTTLED = "LimitExceeded.PhoneNumberThirtySecondLimit"


def _sign(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def verify_tc3(request: HttpRequest, secret_id: str, secret_key: str) -> str | None:
    """Recompute TC3-HMAC-SHA256 from the raw request; return the error code, or None if valid."""
    auth = request.headers.get("authorization", "")
    algorithm, _, rest = auth.partition(" ")
    if algorithm != "TC3-HMAC-SHA256":
        return "AuthFailure.InvalidAuthorization"
    parts = dict(part.strip().split("=", 1) for part in rest.split(","))
    credential = parts.get("Credential", "").split("/")
    if len(credential) != 4 or credential[3] != "tc3_request":
        return "AuthFailure.InvalidAuthorization"
    _, date, service, _ = credential
    if credential[0] != secret_id:
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
class FakeTencentCloud(FakeVendorServer):
    """Speaks SendSms 2021-01-11: verifies the request, then answers as configured.

    Run it with ``async with FakeTencentCloud().serving() as fake:`` (a free port on
    127.0.0.1); ``fake.url`` is the ``endpoint``, ``fake.settings(...)`` whole settings that
    reach it. A wrong SecretId, signature, Host, stale timestamp or SdkAppId is refused with
    Tencent's ``AuthFailure.*`` / ``InvalidParameterValue`` codes.

    ``mode``: "ok", or a request-level error code (``Response.Error``), or "http500"/"http502".
    ``number_codes`` maps a number to its per-number ``SendStatusSet`` code ("-": no item);
    ``request_codes`` maps a number to a code that fails every request holding it as a whole
    (``Response.Error``, as Tencent answers a malformed number), naming the number in the
    message unless ``name_numbers`` is False.
    ``retry_after`` adds a Retry-After header to every non-"ok" answer; ``fail_next`` is a
    request-level code to answer the next request with, once. ``deliveries`` holds one contract
    ``Delivery`` per number reached (the suite's ``Outbox``); ``accepted`` every correctly
    signed request body.
    """

    secret_id: str = SECRET_ID
    secret_key: str = SECRET_KEY
    sdk_app_id: str = SDK_APP_ID
    mode: str = "ok"
    number_codes: dict[str, str] = field(default_factory=dict)
    retry_after: str | None = None
    accepted: list[dict[str, Any]] = field(default_factory=list)
    serial: int = 0
    fail_next: str | None = None
    request_codes: dict[str, str] = field(default_factory=dict)
    name_numbers: bool = True

    def settings(self, **overrides: Any) -> TencentCloudSettings:
        """Settings whose credentials this fake accepts and whose endpoint is its ``url``
        (unless ``endpoint`` is given)."""
        values: dict[str, Any] = {
            "secret_id": self.secret_id,
            "secret_key": self.secret_key,
            "sdk_app_id": self.sdk_app_id,
            "sign_name": "gocomm",
        }
        values.update(overrides)
        if "endpoint" not in values:  # asked for before serving: a given endpoint only
            values["endpoint"] = self.url
        return TencentCloudSettings.model_validate(values)

    def _headers(self) -> dict[str, str]:
        return {"Retry-After": self.retry_after} if self.retry_after else {}

    def _error(self, code: str, message: str) -> HttpResponse:
        body = {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "req"}}
        return HttpResponse.json(body, headers=self._headers())  # Tencent answers HTTP 200

    async def handle(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path != "/":
            return HttpResponse(404, b"not found")
        # Tencent takes JSON with or without a charset (the official SDKs send none).
        media_type, _, charset = request.headers.get("content-type", "").partition(";")
        if media_type.strip().lower() != "application/json" or charset.strip().lower() not in (
            "",
            "charset=utf-8",
        ):
            return self._error("InvalidParameter", "content type")
        if (request.headers.get("x-tc-action"), request.headers.get("x-tc-version")) != (
            "SendSms",
            "2021-01-11",
        ):
            return self._error("InvalidAction", "action or version")
        if request.headers.get("host") != f"127.0.0.1:{self.server.port if self.server else 0}":
            return self._error("AuthFailure.InvalidAuthorization", "host")
        problem = verify_tc3(request, self.secret_id, self.secret_key)
        if problem is not None:
            return self._error(problem, f"{problem}: check your SecretId {self.secret_id}")
        body = request.json()
        self.accepted.append(body)
        if body.get("SmsSdkAppId") != self.sdk_app_id:
            return self._error("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId")
        if self.mode.startswith("http"):
            return HttpResponse(int(self.mode[4:]), b"upstream failed", self._headers())
        if self.fail_next is not None:
            code, self.fail_next = self.fail_next, None
            return self._error(code, f"answer {code}")
        if self.mode != "ok":
            return self._error(self.mode, f"answer {self.mode}")
        mainland = {number.startswith("+86") for number in body["PhoneNumberSet"]}
        if len(mainland) > 1:  # Tencent takes mainland and international numbers apart
            code = "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber"
            return self._error(code, "mainland and international numbers in one request")
        for number in body["PhoneNumberSet"]:
            if number in self.request_codes:  # the whole request fails, naming the number
                code = self.request_codes[number]
                named = number if self.name_numbers else "a number"
                return self._error(code, f"{code}: {named} cannot be sent to")
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
