"""The ``aliyun`` SMS vendor: Dysmsapi ``SendSms`` (API version 2017-05-25), RPC signature v1.

Numbers: Aliyun takes mainland China numbers as the 11 national digits and every other number as
country code and number without ``+`` (``85200001234``), so ``+8613800138000`` goes out as
``13800138000`` and ``+85200001234`` as ``85200001234`` (the forms Aliyun's SendSms reference
gives: "国际/港澳台消息：国际区号+号码"). Caveat: a North American ``+1`` number then has 11
digits starting with 1, the shape of a mainland one; gocomm sends the documented form and leaves
telling them apart to Aliyun. Up to 1,000 numbers travel in one request (``PhoneNumbers``
comma-joined); more are split into several requests.

Outcome: one request succeeds only when an HTTP 200 answer has ``Code`` ``"OK"``; its ``BizId``
is the receipt's message id. Any other code fails every number of that request (whatever the
HTTP status) and is classified by :data:`ERROR_CODES`; an answer without a code is judged by its
HTTP status.
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from collections.abc import Sequence

from gocomm.httpclient import Response
from gocomm.httpvendor import (
    BatchResult,
    CodeTable,
    HttpSmsVendor,
    ResolvedTemplate,
    parse_retry_after,
)
from gocomm_aliyun.settings import AliyunSettings
from gocomm_aliyun.signing import canonical_query, rpc_signature

__all__ = ["API_VERSION", "ERROR_CODES", "AliyunSms"]

API_VERSION = "2017-05-25"

#: Aliyun's codes, classified; a code in neither set is retryable.
ERROR_CODES = CodeTable(
    permanent=frozenset(
        {
            "isv.MOBILE_NUMBER_ILLEGAL",
            "isv.SMS_TEMPLATE_ILLEGAL",
            "isv.SMS_SIGNATURE_ILLEGAL",
            "isv.SMS_SIGNATURE_SCENE_ILLEGAL",
            "isv.TEMPLATE_MISSING_PARAMETERS",
            "isv.TEMPLATE_PARAMS_ILLEGAL",
            "isv.INVALID_PARAMETERS",
            "isv.INVALID_JSON_PARAM",
            "isv.PARAM_LENGTH_LIMIT",
            "isv.MOBILE_COUNT_OVER_LIMIT",
            "isv.BLACK_KEY_CONTROL_LIMIT",
            "isv.AMOUNT_NOT_ENOUGH",
            "isv.OUT_OF_SERVICE",
            "isv.ACCOUNT_NOT_EXISTS",
            "isv.ACCOUNT_ABNORMAL",
            "isv.DENY_IP_RANGE",
            "isp.RAM_PERMISSION_DENY",
            "InvalidAccessKeyId.*",
            "SignatureDoesNotMatch",
            "IncompleteSignature",
            "Forbidden.*",
        }
    ),
    retryable=frozenset(
        {
            "isv.BUSINESS_LIMIT_CONTROL",
            "isv.DAY_LIMIT_CONTROL",
            "isp.SYSTEM_ERROR",
            "Throttling.*",
            "ServiceUnavailable",
            "InternalError",
            # Clock skew or a reused nonce: a fresh request carries a new timestamp and nonce.
            "SignatureNonceUsed",
            "InvalidTimeStamp.*",
        }
    ),
)

_MAINLAND = "+86"


class AliyunSms(HttpSmsVendor):
    """Sends SMS through Aliyun Dysmsapi; ``send(biz, args, *to)`` per :class:`gocomm.Sender`."""

    name = "aliyun"
    batch_size = 1000

    def __init__(self, settings: AliyunSettings, *, logger: logging.Logger | None = None) -> None:
        self.settings = settings
        super().__init__(
            endpoint=settings.endpoint,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            templates=settings.templates,
            secrets=[settings.access_key_secret.get_secret_value()],
            logger=logger,
        )

    def _vendor_number(self, e164: str) -> str:
        if e164.startswith(_MAINLAND):
            return e164[len(_MAINLAND) :]
        return e164[1:]

    def _request_params(self, template: ResolvedTemplate, numbers: Sequence[str]) -> dict[str, str]:
        """Every parameter of one SendSms request, ``Signature`` included."""
        params = {
            "AccessKeyId": self.settings.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "RegionId": "cn-hangzhou",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
            "PhoneNumbers": ",".join(numbers),
            "SignName": self.settings.sign_name,
            "TemplateCode": template.id,
        }
        if template.args:
            params["TemplateParam"] = json.dumps(
                dict(template.args), ensure_ascii=False, separators=(",", ":")
            )
        secret = self.settings.access_key_secret.get_secret_value()
        params["Signature"] = rpc_signature(params, secret, "POST")
        return params

    async def _send_batch(self, template: ResolvedTemplate, numbers: Sequence[str]) -> BatchResult:
        body = canonical_query(self._request_params(template, numbers)).encode("ascii")
        response = await self.post(
            "/",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            unsent=numbers,
            what="SendSms request",
        )
        code, message, biz_id = self._parse(response)
        if code == "OK" and response.status_code == 200:
            return BatchResult(message_ids=(biz_id,) if biz_id else ())
        if code is None or code == "OK":  # not Aliyun's answer, or "OK" under an error status
            raise self.status_error(response, what="SendSms request")
        raise self.vendor_error(
            code,
            message,
            table=ERROR_CODES,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )

    def _parse(self, response: Response) -> tuple[str | None, str, str]:
        """(Code, Message, BizId) of an answer; Code is None when the body is not Aliyun's."""
        try:
            data = response.json()
        except ValueError:
            return None, "", ""
        if not isinstance(data, dict) or not isinstance(data.get("Code"), str):
            return None, "", ""
        return data["Code"], str(data.get("Message", "")), str(data.get("BizId", "") or "")
