"""The ``twilio`` SMS vendor: the Messages API (2010-04-01) over aiohttp, basic auth.

One request per recipient: ``POST {endpoint}/2010-04-01/Accounts/{AccountSid}/Messages.json``
with the form fields ``To``, ``From`` (or ``MessagingServiceSid``) and ``Body``, authenticated
as ``AccountSid:AuthToken``. The body is rendered from ``templates[biz]`` before any request.

Several recipients: up to ``max_concurrency`` (4) requests are in flight at once over the
vendor's one keep-alive client; a send to one number makes its request directly, with no task.
Each number's outcome is its own: a refusal that concerns only that number (see
:data:`~gocomm_twilio.codes.RECIPIENT_CODES`: invalid, unsubscribed, a landline or a short
code, the sender itself, a country the account cannot reach; or a message created ``failed``)
fails only that number and the others go on. A number refused for good goes to ``refused``
(never sent again by any strategy); one this account cannot reach stays owed, so failover
offers it to another vendor. Any other failure (bad credentials, throttling, 5xx, network,
an unknown code) stops the send: no new request starts, requests in flight finish, and every
number not reached is named in the error's ``unsent``. So a retry or a failover sends only to
the numbers still owed the message.

Success is HTTP 2xx (Twilio answers 201) with a message ``sid`` whose ``status`` is not
``failed`` or ``undelivered``; the receipt carries the sids in the order of ``to``. Errors come
as Twilio's JSON ``{code, message, more_info, status}`` and are classified by
:data:`~gocomm_twilio.codes.ERROR_CODES`, except that HTTP 401/403 is always permanent
(credentials) and HTTP 429 or 5xx always retryable (with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlencode

from gocomm.errors import InvalidRecipient, PermanentError, SendError
from gocomm.httpclient import Response
from gocomm.httpvendor import (
    BatchResult,
    HttpSmsVendor,
    json_object,
    parse_retry_after,
)
from gocomm.smstemplates import ResolvedTemplate, resolve_template
from gocomm_twilio.codes import ERROR_CODES, RECIPIENT_CODES
from gocomm_twilio.settings import TwilioSettings
from gocomm_twilio.templates import BodyTemplate

__all__ = ["API_VERSION", "ERROR_CODES", "FAILED_STATUSES", "RECIPIENT_CODES", "TwilioSms"]

API_VERSION = "2010-04-01"

#: Message statuses that mean the message will not be delivered.
FAILED_STATUSES = frozenset({"failed", "undelivered"})

_FORM = "application/x-www-form-urlencoded"


def _error_code(data: Mapping[str, Any] | None) -> str | None:
    """Twilio's error ``code`` (a number in its JSON) as text, or None without one."""
    code = data.get("code") if data is not None else None
    if isinstance(code, bool) or not isinstance(code, int | str) or not str(code).strip():
        return None
    return str(code).strip()


class TwilioSms(HttpSmsVendor):
    """Sends SMS through Twilio; ``send(biz, args, *to)`` per :class:`gocomm.Sender`.

    ``max_concurrency`` bounds the requests in flight for one send to several numbers.
    """

    name: ClassVar[str] = "twilio"
    batch_size: ClassVar[int] = 1  # the Messages API takes one recipient per request
    secret_headers: ClassVar[frozenset[str]] = frozenset({"authorization"})  # Basic sid:token

    def __init__(
        self,
        settings: TwilioSettings,
        *,
        max_concurrency: int = 4,
        logger: logging.Logger | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.settings = settings
        self.max_concurrency = max_concurrency
        super().__init__(**settings.vendor_options(), templates=settings.templates, logger=logger)
        self._bodies = {biz: BodyTemplate.parse(text) for biz, text in settings.templates.items()}
        self._path = f"/{API_VERSION}/Accounts/{settings.account_sid}/Messages.json"
        if settings.messaging_service_sid is not None:
            self._sender = {"MessagingServiceSid": settings.messaging_service_sid}
        else:
            assert settings.from_number is not None  # the settings hold exactly one
            self._sender = {"From": settings.from_number}

    # -- templates ------------------------------------------------------------------------------

    def _resolve(self, biz: str, args: object) -> ResolvedTemplate:
        """The rendered body as the one value; an unmapped ``biz`` is a :class:`PermanentError`."""
        if isinstance(biz, str) and biz not in self._bodies:
            known = ", ".join(map(repr, self._bodies)) or "none"
            raise PermanentError(
                f"twilio: no template for biz {biz!r} (known: {known}); Twilio sends body "
                "texts, so add it to the twilio vendor's templates",
                vendor=self.name,
                code="UnknownTemplate",
            )
        checked = resolve_template(self.templates, biz, args)  # checks biz and str -> str args
        body = self._bodies[biz].render(checked.args, biz=biz)
        return ResolvedTemplate(id=biz, args=checked.args, values=(body,))

    # -- sending --------------------------------------------------------------------------------

    def _authorization(self) -> str:
        # Built per request from the SecretStr, so no attribute holds the clear token.
        pair = f"{self.settings.account_sid}:{self.settings.auth_token.get_secret_value()}"
        return "Basic " + base64.b64encode(pair.encode()).decode("ascii")

    async def _send_batch(self, template: ResolvedTemplate, numbers: Sequence[str]) -> BatchResult:
        """One Messages request to ``numbers[0]``: a per-recipient refusal comes back in
        ``failed``; anything that should stop the send is raised."""
        (number,) = numbers
        form = {"To": number, **self._sender, "Body": template.values[0]}
        headers = {"Authorization": self._authorization(), "Content-Type": _FORM}
        response = await self.post(
            self._path,
            content=urlencode(form).encode("ascii"),
            headers=headers,
            unsent=numbers,
            what="Messages request",
        )
        return self._outcome(response, number)

    def _outcome(self, response: Response, number: str) -> BatchResult:
        data = json_object(response)
        status = response.status_code
        if 200 <= status < 300:
            sid = data.get("sid") if data is not None else None
            if not isinstance(sid, str) or not sid:
                # Ambiguous: Twilio may have queued it. gocomm counts it unsent (at-least-once).
                raise SendError(
                    f"twilio: Messages answered HTTP {status} without a message sid; retry later",
                    vendor=self.name,
                    code="MissingSid",
                )
            assert data is not None
            if data.get("status") in FAILED_STATUSES:
                code = data.get("error_code")
                error = self._error(
                    status,
                    str(code) if code is not None else f"Message{str(data['status']).title()}",
                    str(data.get("error_message") or f"message {sid} {data['status']}"),
                    number=number,
                )
                return BatchResult(failed={number: error})
            return BatchResult(message_ids=(sid,))
        code = _error_code(data)
        if data is None or code is None:
            raise self.status_error(response, what="Messages request")
        error = self._error(
            status,
            code,
            str(data.get("message") or ""),
            number=number,
            more_info=data.get("more_info"),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
        if error.code in RECIPIENT_CODES and isinstance(error, PermanentError):
            return BatchResult(failed={number: error})
        raise error

    def _error(
        self,
        status: int,
        code: str,
        message: str,
        *,
        number: str,
        more_info: object = None,
        retry_after: float | None = None,
    ) -> SendError:
        """Twilio's ``code`` as a gocomm error; the HTTP status decides credentials (401/403:
        permanent) and overload (429, 5xx: retryable) whatever the code says."""
        if status in (401, 403):
            permanent = True
        elif status == 429 or status >= 500:
            permanent = False
        else:
            permanent = ERROR_CODES.is_permanent(code)
        if status in (401, 403):
            advice = "check account_sid and auth_token"
        elif permanent:
            advice = "check the number, the sender and the template"
        else:
            advice = "retry later"
        text = (
            f"{self.name}: Twilio answered HTTP {status} code {code} for {number}: "
            f"{self.redact(message) or 'no message'}; {advice}"
        )
        if isinstance(more_info, str) and more_info.startswith("https://"):
            text += f" (see {self.redact(more_info)})"
        if permanent and status not in (401, 403) and ERROR_CODES.refuses(code):
            # About this number only, for good: refused, never sent to again.
            cls = InvalidRecipient if code in ERROR_CODES.invalid else PermanentError
            return cls(text, vendor=self.name, code=code, refused=(number,))
        if permanent:  # waiting cannot help: a Retry-After beside it means nothing
            return PermanentError(text, vendor=self.name, code=code)
        return SendError(text, vendor=self.name, code=code, retry_after=retry_after)

    async def _send_all(
        self, template: ResolvedTemplate, numbers: Sequence[str]
    ) -> tuple[list[str], dict[str, SendError]]:
        """One request per number, at most :attr:`max_concurrency` at once; the first error
        that is not about one recipient stops new requests (requests in flight finish)."""
        if len(numbers) == 1 or self.max_concurrency == 1:
            return await super()._send_all(template, numbers)  # in order, no task
        sids: dict[str, str] = {}
        failed: dict[str, SendError] = {}
        pending = iter(numbers)  # shared by the workers: each number is taken exactly once
        stop: SendError | None = None

        async def worker() -> None:
            nonlocal stop
            for number in pending:
                if stop is not None:
                    failed[number] = stop  # never attempted
                    continue
                try:
                    result = await self._send_batch(template, (number,))
                except SendError as exc:
                    failed[number] = exc
                    if stop is None:
                        stop = exc
                        self.logger.debug(
                            "twilio: stopping the send after %s (%s); the numbers not yet "
                            "attempted stay unsent",
                            type(exc).__name__,
                            exc.code,
                        )
                    continue
                sids.update((number, sid) for sid in result.message_ids)
                failed.update(result.failed)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.max_concurrency, len(numbers))):
                    group.create_task(worker())
        except BaseExceptionGroup as errors:
            # Workers raise only what is not a vendor outcome (a bug): raise it unwrapped.
            if len(errors.exceptions) == 1:
                raise errors.exceptions[0] from None
            raise
        return [sids[number] for number in numbers if number in sids], failed
