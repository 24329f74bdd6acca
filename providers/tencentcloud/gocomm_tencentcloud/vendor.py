"""The ``tencentcloud`` SMS vendor: ``SendSms`` (API version 2021-01-11), TC3-HMAC-SHA256.

Numbers go out in E.164 with the ``+`` (``+8613800138000``), as Tencent Cloud expects; up to 200
travel in one request, more are split into several requests, and mainland (``+86``) numbers
never share a request with international ones (Tencent refuses such a request).

Parameters are ordered (the template's ``{1}``, ``{2}`` ...): a ``templates`` entry
``{id, params}`` names the order, a plain id takes the order of ``args``.

Outcome: a request-level error comes as ``Response.Error`` and fails every number of the request;
otherwise success is judged per number: each ``SendStatusSet`` item must have ``Code`` ``"Ok"``
(its ``SerialNo`` goes into the receipt); a number with another code, or with no status at all,
did not get the message. Codes are classified by :data:`~gocomm_tencentcloud.codes.ERROR_CODES`:
a code that refuses one number (a do-not-disturb list, its daily cap, an invalid number) puts
that number in ``refused`` and the send goes on for the others. When such a code comes for a
whole request, the numbers its message names are refused and the request is sent again without
them; when it names none, each number is sent alone so that Tencent says which one it means.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from gocomm.errors import SendError
from gocomm.httpclient import Response, host_header
from gocomm.httpvendor import (
    BatchResult,
    HttpSmsVendor,
    json_object,
    parse_retry_after,
)
from gocomm.smstemplates import ResolvedTemplate
from gocomm_tencentcloud.codes import ERROR_CODES
from gocomm_tencentcloud.settings import TencentCloudSettings
from gocomm_tencentcloud.signing import tc3_authorization

__all__ = ["ACTION", "API_VERSION", "CONTENT_TYPE", "ERROR_CODES", "SERVICE", "TencentCloudSms"]

API_VERSION = "2021-01-11"
SERVICE = "sms"
ACTION = "SendSms"
CONTENT_TYPE = "application/json; charset=utf-8"

_OK = "Ok"
_MAINLAND = "+86"  # Chinese mainland numbers; Hong Kong, Macao and Taiwan are international


class TencentCloudSms(HttpSmsVendor):
    """Sends SMS through Tencent Cloud; ``send(biz, args, *to)`` per :class:`gocomm.Sender`."""

    name = "tencentcloud"
    batch_size = 200

    def __init__(
        self, settings: TencentCloudSettings, *, logger: logging.Logger | None = None
    ) -> None:
        self.settings = settings
        super().__init__(**settings.vendor_options(), templates=settings.templates, logger=logger)
        # The signed host is the Host header the client sends: the endpoint's host, with its port
        # when that is not the scheme's default (a local test server).
        self.host = host_header(settings.endpoint)

    def _payload(self, template: ResolvedTemplate, numbers: Sequence[str]) -> bytes:
        body: dict[str, Any] = {
            "PhoneNumberSet": list(numbers),
            "SmsSdkAppId": self.settings.sdk_app_id,
            "TemplateId": template.id,
            "TemplateParamSet": list(template.values),
        }
        if self.settings.sign_name:
            body["SignName"] = self.settings.sign_name
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _headers(self, payload: bytes) -> dict[str, str]:
        timestamp = int(time.time())
        authorization = tc3_authorization(
            self.settings.secret_id,
            self.settings.secret_key.get_secret_value(),
            service=SERVICE,
            host=self.host,
            action=ACTION,
            payload=payload,
            timestamp=timestamp,
            content_type=CONTENT_TYPE,
        )
        return {
            "Authorization": authorization,
            "Content-Type": CONTENT_TYPE,
            "Host": self.host,
            "X-TC-Action": ACTION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Version": API_VERSION,
            "X-TC-Region": self.settings.region,
        }

    async def _send_batch(self, template: ResolvedTemplate, numbers: Sequence[str]) -> BatchResult:
        payload = self._payload(template, numbers)
        response = await self.post(
            "/",
            content=payload,
            headers=self._headers(payload),
            unsent=numbers,
            what="SendSms request",
        )
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        result = self._response_body(response)
        if result is None:
            raise self.status_error(response, what="SendSms request")
        error = result.get("Error")
        if isinstance(error, Mapping):
            code = str(error.get("Code", "")) or "UnknownError"
            message = str(error.get("Message", ""))
            if ERROR_CODES.refuses(code):
                return await self._refused_in_request(template, numbers, code, message)
            raise self.vendor_error(code, message, table=ERROR_CODES, retry_after=retry_after)
        if response.status_code != 200:
            raise self.status_error(response, what="SendSms request")
        return self._per_number(result.get("SendStatusSet"), numbers, retry_after)

    async def _send_all(
        self, template: ResolvedTemplate, numbers: Sequence[str]
    ) -> tuple[list[str], dict[str, SendError]]:
        """Mainland numbers and the others in separate requests: Tencent refuses a request
        that mixes them (``UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber``)."""
        mainland = [n for n in numbers if n.startswith(_MAINLAND)]
        if not mainland or len(mainland) == len(numbers):
            return await super()._send_all(template, numbers)
        others = [n for n in numbers if not n.startswith(_MAINLAND)]
        message_ids, failed = await super()._send_all(template, mainland)
        more_ids, more_failed = await super()._send_all(template, others)
        return message_ids + more_ids, failed | more_failed

    async def _refused_in_request(
        self, template: ResolvedTemplate, numbers: Sequence[str], code: str, message: str
    ) -> BatchResult:
        """A whole request refused for a code about single numbers: nobody got it. Refuse the
        numbers the message names and send to the others again; when it names none, send to
        each number alone, so that each answer concerns one number."""
        named = [n for n in numbers if _names(message, n)] or (
            list(numbers) if len(numbers) == 1 else []
        )
        failed: dict[str, SendError] = {
            n: self.vendor_error(code, message, table=ERROR_CODES, recipients=[n]) for n in named
        }
        rest = [n for n in numbers if n not in failed]
        batches = [rest] if named else [[n] for n in rest]
        message_ids: list[str] = []
        for index, batch in enumerate(batches):
            if not batch:
                continue
            try:
                result = await self._send_batch(template, batch)
            except SendError as exc:  # as a failed batch: it and the later ones stay unsent
                failed.update((n, exc) for later in batches[index:] for n in later)
                break
            message_ids.extend(result.message_ids)
            failed.update(result.failed)
        return BatchResult(message_ids=tuple(message_ids), failed=failed)

    @staticmethod
    def _response_body(response: Response) -> Mapping[str, Any] | None:
        """``Response`` of the answer, or None when the body is not Tencent Cloud's."""
        data = json_object(response)
        body = data.get("Response") if data is not None else None
        return body if isinstance(body, dict) else None

    def _per_number(
        self, statuses: object, numbers: Sequence[str], retry_after: float | None
    ) -> BatchResult:
        by_number: dict[str, Mapping[str, Any]] = {}
        if isinstance(statuses, list):
            for item in statuses:
                if isinstance(item, dict) and isinstance(item.get("PhoneNumber"), str):
                    by_number[item["PhoneNumber"]] = item
        message_ids: list[str] = []
        failed: dict[str, SendError] = {}
        for number in numbers:
            item = by_number.get(number)
            if item is None:
                failed[number] = SendError(
                    f"{self.name}: the answer has no status for {number}; retry later",
                    vendor=self.name,
                    code="MissingStatus",
                )
            elif item.get("Code") == _OK:
                message_ids.append(str(item.get("SerialNo", "")))
            else:
                failed[number] = self.vendor_error(
                    str(item.get("Code", "")) or "UnknownError",
                    str(item.get("Message", "")),
                    table=ERROR_CODES,
                    retry_after=retry_after,
                    recipients=[number],
                )
        return BatchResult(message_ids=tuple(message_ids), failed=failed)


def _names(message: str, number: str) -> bool:
    """Whether Tencent's ``message`` names ``number`` (with or without its ``+``)."""
    return re.search(rf"(?<!\d){re.escape(number.lstrip('+'))}(?!\d)", message) is not None
