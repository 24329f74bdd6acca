"""The ``aliyun`` SMS vendor: Dysmsapi ``SendSms`` (API version 2017-05-25).

Signature: V3, ACS3-HMAC-SHA256 (``Authorization`` header) by default; ``signature: v2`` in the
settings signs with the older RPC HMAC-SHA1 ``Signature`` parameter. Either way the parameters
travel as a form body (``POST /``), which holds the 1,000 numbers of a full request where a
query string might grow too long for a gateway.

Numbers (:func:`wire_number`): Aliyun reads 11 digits starting with 1 as a mainland China
mobile and anything else as country code and number without ``+`` ("国际区号+号码"). So
``+8613800138000`` goes out as ``13800138000``, ``+85291234567`` as ``85291234567``, and any
other ``+86`` number keeps its ``86``. A ``+1`` (North American) number would be 11 digits
starting with 1, which Aliyun reads as a mainland one, and it has no other spelling Aliyun
reads as North American: the vendor declines it (an :class:`~gocomm.errors.InvalidRecipient`
that leaves it in ``unsent``, so failover and routing offer it to another vendor) and still
sends to the other numbers. Up to 1,000 numbers travel in one request (``PhoneNumbers``
comma-joined); more are split into several requests.

Outcome: a request succeeds only when an HTTP 200 answer has ``Code`` ``"OK"``; its ``BizId``
is the receipt's message id. Any other code fails every number of that request, whatever the
HTTP status, and is classified by :mod:`gocomm_aliyun.codes` (see the README's table), with
``retry_after`` from ``x-acs-retry-after`` (milliseconds) or ``Retry-After``. Codes about one
number (:data:`~gocomm_aliyun.codes.RECIPIENT_CODES`) do not say which number of a multi-number
request they concern: the request is split in halves and sent again until each such number is
alone, so the others still get the message (nobody got it from a failed request) and only that
number is refused or left for later.
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from gocomm.errors import InvalidRecipient, PermanentError, SendError
from gocomm.httpclient import Response
from gocomm.httpvendor import (
    BatchResult,
    HttpSmsVendor,
    json_object,
    parse_retry_after,
)
from gocomm.smstemplates import ResolvedTemplate
from gocomm_aliyun.codes import ADVICE, RECIPIENT_CODES, error_class
from gocomm_aliyun.settings import AliyunSettings
from gocomm_aliyun.signing import acs3_authorization, canonical_query, rpc_signature, sha256_hex

__all__ = ["API_VERSION", "AliyunSms", "wire_number"]

API_VERSION = "2017-05-25"

_MAINLAND = "86"


def wire_number(e164: str) -> str | None:
    """The number as Aliyun's ``PhoneNumbers`` takes it, or None when Aliyun cannot address it.

    A mainland mobile (``+86``, 11 digits from 1) is its 11 digits; every other number is its
    digits without ``+`` (``+86`` landlines keep their ``86``, so they cannot collide with
    another country's number). A ``+1`` number has no spelling Aliyun reads as North American:
    None. Aliyun reads each result back as exactly the number given, so two distinct numbers
    never share a wire number.
    """
    digits = e164[1:]
    if digits.startswith("1"):
        return None
    national = digits[len(_MAINLAND) :]
    if digits.startswith(_MAINLAND) and len(national) == 11 and national.startswith("1"):
        return national
    return digits


class AliyunSms(HttpSmsVendor):
    """Sends SMS through Aliyun Dysmsapi; ``send(biz, args, *to)`` per :class:`gocomm.Sender`."""

    name = "aliyun"
    batch_size = 1000

    def __init__(self, settings: AliyunSettings, *, logger: logging.Logger | None = None) -> None:
        self.settings = settings
        super().__init__(**settings.vendor_options(), templates=settings.templates, logger=logger)
        url = urlsplit(self.endpoint)
        self._host = url.netloc
        self._path = url.path.rstrip("/") + "/"

    # -- numbers ----------------------------------------------------------------------------------

    def _vendor_number(self, e164: str) -> str:
        # A number Aliyun cannot address keeps its E.164 spelling: no wire number has a "+",
        # so _send_all can tell it apart and decline it without a request.
        return wire_number(e164) or e164

    async def _send_all(
        self, template: ResolvedTemplate, numbers: Sequence[str]
    ) -> tuple[list[str], dict[str, SendError]]:
        served = [number for number in numbers if not number.startswith("+")]
        declined = [number for number in numbers if number.startswith("+")]
        message_ids, failed = await super()._send_all(template, served) if served else ([], {})
        if declined:
            # Not refused: another vendor may serve these numbers, so they stay owed.
            failed.update(dict.fromkeys(declined, self._declined(declined)))
        return message_ids, failed

    def _declined(self, numbers: Sequence[str]) -> InvalidRecipient:
        return InvalidRecipient(
            f"{self.name}: cannot send to {', '.join(numbers)}: Aliyun's SendSms reads a +1 "
            "(North American) number as a mainland China one (both are 11 digits from 1), so "
            "it could reach someone else; send +1 numbers through another vendor (failover or "
            "routes)",
            vendor=self.name,
            code="UnsupportedDestination",
        )

    # -- one request --------------------------------------------------------------------------

    async def _send_batch(self, template: ResolvedTemplate, numbers: Sequence[str]) -> BatchResult:
        """Send one request; on a code about one unnamed number, split until it is alone.

        The search is bounded (:func:`_split_budget` requests), so a batch full of such numbers
        cannot turn into a storm of requests: what it did not reach stays owed, retryable.
        """
        message_ids: list[str] = []
        failed: dict[str, SendError] = {}
        pending = [numbers]
        budget = _split_budget(len(numbers))
        while pending:
            group = pending.pop(0)
            try:
                message_ids.extend(await self._request(template, group))
            except SendError as exc:
                if exc.code not in RECIPIENT_CODES:
                    if group is numbers:  # the whole request failed: nobody got it
                        raise
                    # Stop splitting: what was sent stays sent, the rest fails with this.
                    for rest in (group, *pending):
                        failed.update(dict.fromkeys(rest, exc))
                    break
                if len(group) == 1:
                    failed[group[0]] = exc
                    continue
                budget -= 2
                if budget < 0:
                    stopped = self._search_stopped(exc, len(numbers))
                    for rest in (group, *pending):
                        failed.update(dict.fromkeys(rest, stopped))
                    break
                middle = len(group) // 2
                pending[:0] = [group[:middle], group[middle:]]
        return BatchResult(message_ids=tuple(message_ids), failed=failed)

    def _search_stopped(self, exc: SendError, size: int) -> SendError:
        return SendError(
            f"{self.name}: Aliyun answered {exc.code} for numbers of a {size}-number request "
            f"without naming them, and {_split_budget(size)} requests splitting it did not "
            "isolate them all; these were not sent, retry them",
            vendor=self.name,
            code=exc.code,
            retry_after=exc.retry_after,
        )

    async def _request(self, template: ResolvedTemplate, numbers: Sequence[str]) -> list[str]:
        """POST one SendSms; the BizId on success, else raise the classified error."""
        form = {
            "PhoneNumbers": ",".join(numbers),
            "SignName": self.settings.sign_name,
            "TemplateCode": template.id,
        }
        if template.args:
            form["TemplateParam"] = json.dumps(
                dict(template.args), ensure_ascii=False, separators=(",", ":")
            )
        if self.settings.signature == "v2":
            body, headers = self._signed_v2(form)
        else:
            body, headers = self._signed_v3(form)
        response = await self.post(
            "/", content=body, headers=headers, unsent=numbers, what="SendSms request"
        )
        code, message, biz_id = self._parse(response)
        if code == "OK" and response.status_code == 200:
            return [biz_id] if biz_id else []
        if code is None or code == "OK":  # not Aliyun's answer, or "OK" under an error status
            raise self.status_error(response, what="SendSms request")
        cls = error_class(code, message)
        text = f"{self.name}: vendor answered {code}: {self.redact(message) or 'no message'}"
        refused: tuple[str, ...] = ()
        if len(numbers) == 1 and code in RECIPIENT_CODES:
            text += f" (number: {numbers[0]})"
            # A lone number Aliyun calls illegal or capped for the day is refused for good.
            if issubclass(cls, PermanentError):
                refused = (numbers[0],)
        advice = ADVICE.get(code) or (
            self.permanent_advice if issubclass(cls, PermanentError) else "retry later"
        )
        if refused and code == "isv.BUSINESS_LIMIT_CONTROL":
            advice = "that number reached its daily cap: refused for today, do not resend it"
        raise cls(
            f"{text}; {advice}",
            vendor=self.name,
            code=code,
            retry_after=self._retry_after(response),
            refused=refused,
        )

    def _signed_v3(self, form: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
        """Form body and headers of an ACS3-HMAC-SHA256 request."""
        body = canonical_query(form).encode("ascii")
        headers = {
            "host": self._host,
            "content-type": "application/x-www-form-urlencoded",
            "x-acs-action": "SendSms",
            "x-acs-version": API_VERSION,
            "x-acs-date": _utc_now(),
            "x-acs-signature-nonce": uuid.uuid4().hex,
            "x-acs-content-sha256": sha256_hex(body),
        }
        headers["authorization"] = acs3_authorization(
            self.settings.access_key_id,
            self.settings.access_key_secret.get_secret_value(),
            method="POST",
            host=self._host,
            path=self._path,
            query=(),
            headers=headers,
            body=body,
        )
        return body, headers

    def _signed_v2(self, form: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
        """Form body (every parameter and ``Signature``) of an RPC HMAC-SHA1 request."""
        params = {
            "AccessKeyId": self.settings.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "RegionId": "cn-hangzhou",
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": _utc_now(),
            "Version": API_VERSION,
            **form,
        }
        secret = self.settings.access_key_secret.get_secret_value()
        params["Signature"] = rpc_signature(params, secret, "POST")
        body = canonical_query(params).encode("ascii")
        return body, {"content-type": "application/x-www-form-urlencoded"}

    @staticmethod
    def _retry_after(response: Response) -> float | None:
        """Seconds to wait: Aliyun's ``x-acs-retry-after`` (milliseconds), else ``Retry-After``."""
        milliseconds = response.headers.get("x-acs-retry-after")
        if milliseconds is not None:
            try:
                wait = int(milliseconds.strip())
            except ValueError:
                wait = 0
            if wait > 0:
                return wait / 1000
        return parse_retry_after(response.headers.get("Retry-After"))

    def _parse(self, response: Response) -> tuple[str | None, str, str]:
        """(Code, Message, BizId) of an answer; Code is None when the body is not Aliyun's."""
        data = json_object(response)
        if data is None or not isinstance(data.get("Code"), str):
            return None, "", ""
        return data["Code"], str(data.get("Message", "")), str(data.get("BizId", "") or "")


def _split_budget(size: int) -> int:
    """How many more requests may go into isolating the numbers a code concerns in a batch of
    ``size``: a few numbers in 1,000 take about 2·log2(1000) = 20 each."""
    return max(8, 4 * size.bit_length())


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
