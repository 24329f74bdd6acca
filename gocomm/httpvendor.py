"""Shared machinery of the HTTP vendors (SMS: Aliyun, Tencent Cloud, Twilio; HTTP email vendors).

What lives here is what every HTTP vendor needs and must get the same way:

- The wire itself is :mod:`gocomm.httpclient`: one keep-alive :class:`~gocomm.httpclient.HttpClient`
  per vendor instance, reused across sends, and its failures as gocomm errors.
- :func:`parse_retry_after` (seconds or an HTTP date) and :func:`status_is_retryable`
  (5xx, 429, 408).
- :class:`CodeTable`: vendor error codes to permanent / retryable; unknown codes are retryable.
- :func:`chunked`: splits recipients into requests of at most the vendor's batch size.
- SMS templates live in :mod:`gocomm.smstemplates` (a logical ``biz`` to each vendor's
  template id and parameter order).
- :class:`HttpVendor`: the base class of any HTTP vendor, SMS or email: it owns the client
  (``aclose()`` closes it), POSTs (:meth:`HttpVendor.post`) and builds the errors
  (:meth:`HttpVendor.status_error`, :meth:`HttpVendor.vendor_error`, :meth:`HttpVendor.redact`).
- :class:`HttpSmsVendor`: the base class of an HTTP SMS vendor, over :class:`HttpVendor`. It
  validates every phone number with :func:`gocomm.recipients.validate_phone` before any request,
  resolves the template, splits the recipients into batches and turns the per-batch outcomes
  into a :class:`~gocomm.sender.Receipt` or one :class:`~gocomm.errors.SendError` whose
  ``unsent`` names exactly the caller's numbers that did not get the message.

A subclass implements :meth:`HttpSmsVendor._send_batch` (one request) and, where the vendor wants
another number format than E.164, :meth:`HttpSmsVendor._vendor_number`; a vendor whose templates
are not ids overrides :meth:`HttpSmsVendor._resolve`, and one that sends batches concurrently
overrides :meth:`HttpSmsVendor._send_all`.
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from itertools import chain
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import (
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gocomm.errors import (
    InvalidRecipient,
    PermanentError,
    SendError,
    SendTimeout,
    is_retryable,
)
from gocomm.httpclient import HttpClient, Response, transport_errors
from gocomm.recipients import validate_phone
from gocomm.registry import VendorSettings
from gocomm.sender import AsyncCloseable, Receipt
from gocomm.smstemplates import ResolvedTemplate, TemplateEntry, resolve_template

__all__ = [
    "BatchResult",
    "CodeTable",
    "HttpSmsVendor",
    "HttpVendor",
    "HttpVendorSettings",
    "chunked",
    "json_object",
    "parse_retry_after",
    "status_is_retryable",
]

#: Longest vendor-supplied message text kept in an error (vendors sometimes echo whole requests).
_MAX_VENDOR_MESSAGE = 200


# --------------------------------------------------------------------------------------------
# Settings and templates
# --------------------------------------------------------------------------------------------


class HttpVendorSettings(VendorSettings):
    """Settings every HTTP vendor has: ``endpoint`` (base URL) and the two timeouts in seconds.

    Subclasses override ``endpoint``'s default with the vendor's public URL. Every secret
    (``SecretStr`` field) and every field named in :attr:`credential_fields` is refused when it
    starts or ends with whitespace, and when it is required and empty (the error says to give
    the field's ``description``), naming the field and never the value (errors of these
    models never show the input).
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    #: Plain-text credential fields (key ids, account ids) checked like the secrets.
    credential_fields: ClassVar[tuple[str, ...]] = ()
    #: A vendor with regions: the public endpoint of each ``region``, the ``endpoint`` when
    #: none is given.
    region_endpoints: ClassVar[Mapping[str, str]] = {}

    endpoint: str
    connect_timeout: float = Field(default=5.0, gt=0, description="seconds to open a connection")
    read_timeout: float = Field(default=10.0, gt=0, description="seconds to wait for an answer")

    def vendor_options(self) -> dict[str, Any]:
        """The :class:`HttpVendor` constructor's arguments these settings give: the endpoint,
        the timeouts and every secret (to keep out of errors), so that a vendor cannot forget one.
        """
        secrets = [
            value.get_secret_value()
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SecretStr)
        ]
        return {
            "endpoint": self.endpoint,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "secrets": secrets,
        }

    @model_validator(mode="before")
    @classmethod
    def _endpoint_of_region(cls, data: Any) -> Any:
        # The public endpoint depends on the region: fill it before the URL check.
        if cls.region_endpoints and isinstance(data, dict) and not data.get("endpoint"):
            region = data.get("region", cls.model_fields["region"].default)
            if region in cls.region_endpoints:
                data = {**data, "endpoint": cls.region_endpoints[region]}
        return data

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        try:
            url = urlsplit(value)
            url.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            raise ValueError(f"not a URL ({exc}); give e.g. https://host[:port]") from None
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if url.query or url.fragment or "@" in url.netloc:
            raise ValueError("must be a base URL without query, fragment or credentials")
        return value.rstrip("/")

    @field_validator("*")
    @classmethod
    def _check_credential(cls, value: object, info: ValidationInfo) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else None
        if text is None and info.field_name in cls.credential_fields and isinstance(value, str):
            text = value
        if not isinstance(text, str):
            return value
        field = cls.model_fields[info.field_name] if info.field_name else None
        if not text and field is not None and field.is_required():
            raise ValueError(f"must not be empty; give {field.description or info.field_name}")
        if text != text.strip():
            # The vendor would refuse it as a wrong credential; say why, without the value.
            raise ValueError("starts or ends with whitespace (a copy-and-paste slip?); remove it")
        return value


# --------------------------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------------------------


def json_object(response: Response) -> dict[str, Any] | None:
    """The answer's JSON object, or None when the body is not one (a proxy's HTML page)."""
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date.

    Returns None when the header is absent or unreadable; a date in the past gives 0.
    ``now`` (Unix time) is injectable for tests.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def status_is_retryable(status: int) -> bool:
    """Whether an HTTP status may go away on its own: 5xx, 429 Too Many Requests, 408."""
    return status >= 500 or status in (408, 429)


def chunked(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """``items`` in consecutive slices of at most ``size`` (the vendor's per-request limit)."""
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class CodeTable:
    """A vendor's error codes, classified.

    ``permanent`` and ``retryable`` hold exact codes, or prefixes ending in ``.`` or ``.*``
    (``"AuthFailure.*"``). An exact code wins over a prefix, a longer prefix over a shorter one;
    a code in neither is retryable (DESIGN §3: a code gocomm does not know is retryable).

    ``refusing`` (exact codes) concern one recipient and refuse it for good (blocked,
    unsubscribed, over its daily cap); ``invalid`` (exact codes) refuse it as an invalid number.
    Both are permanent; :meth:`HttpVendor.vendor_error` puts the recipients they concern in the
    error's ``refused``.
    """

    permanent: frozenset[str] = frozenset()
    retryable: frozenset[str] = frozenset()
    refusing: frozenset[str] = frozenset()
    invalid: frozenset[str] = frozenset()
    _exact: dict[str, bool] = field(init=False, repr=False, compare=False)
    _prefixes: list[tuple[str, bool]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exact: dict[str, bool] = {}
        prefixes: list[tuple[str, bool]] = []
        for codes, permanent in ((self.retryable, False), (self.permanent, True)):
            for code in codes:
                if code.endswith(".*"):
                    prefixes.append((code[:-1], permanent))
                elif code.endswith("."):
                    prefixes.append((code, permanent))
                else:
                    exact[code] = permanent
        exact.update((code, True) for code in self.refusing | self.invalid)
        prefixes.sort(key=lambda item: len(item[0]), reverse=True)
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(self, "_prefixes", prefixes)

    def is_permanent(self, code: str) -> bool:
        """True when retrying cannot help with ``code``."""
        if code in self._exact:
            return self._exact[code]
        for prefix, permanent in self._prefixes:
            if code.startswith(prefix):
                return permanent
        return False

    def knows(self, code: str) -> bool:
        """Whether ``code`` is classified here (exactly or by a prefix), not left to the default."""
        return code in self._exact or any(code.startswith(p) for p, _ in self._prefixes)

    def refuses(self, code: str) -> bool:
        """True when ``code`` refuses the recipient it concerns for good."""
        return code in self.refusing or code in self.invalid


# --------------------------------------------------------------------------------------------
# The base vendor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The outcome of one request: the vendor's ids for what was sent, and the numbers (in the
    vendor-facing form :meth:`HttpSmsVendor.send` passed in) that failed, each with its error."""

    message_ids: tuple[str, ...] = ()
    failed: Mapping[str, SendError] = field(default_factory=dict)


class HttpVendor(AsyncCloseable):
    """Base of any HTTP vendor (SMS or email): the client, the POST and the error helpers.

    It owns one keep-alive client, reused by every request and closed by ``aclose()``, and turns
    what can go wrong on the wire into gocomm errors: :meth:`post` maps network failures and
    timeouts, :meth:`status_error` an HTTP status the vendor's body did not explain, and
    :meth:`vendor_error` a vendor error code (via a :class:`CodeTable`). :meth:`redact` keeps
    the credentials given as ``secrets`` out of every message. Subclasses set :attr:`name` (the
    registered vendor name) and :attr:`permanent_advice` (what to check when a code is permanent).
    """

    name: ClassVar[str] = "http"
    #: What a permanent vendor code tells the user to check.
    permanent_advice: ClassVar[str] = "check the request and the credentials"
    #: Request headers (lower case) whose values are credentials, such as a Basic
    #: ``authorization``: a server or proxy echoing them back never gets them into an error.
    #: (A per-request signature is no credential; leave signed headers out.)
    secret_headers: ClassVar[frozenset[str]] = frozenset()
    #: What the recipients are called in a combined error's message.
    recipient_noun: ClassVar[str] = "recipients"

    def __init__(
        self,
        *,
        endpoint: str,
        connect_timeout: float,
        read_timeout: float,
        secrets: Iterable[str] = (),
        logger: logging.Logger | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.logger = logger or logging.getLogger(f"gocomm.{self.name}")
        # Strings never to show in errors: credentials a vendor might echo back. Kept as
        # SecretStr, so that not even vars(vendor) or a debugger's view of it shows them.
        self._secrets = tuple(SecretStr(s) for s in secrets if s)
        self._header_secrets: dict[str, tuple[SecretStr, ...]] = {}
        # Opens its connections on the first request, on the running loop.
        self._client = HttpClient(
            self.endpoint, connect_timeout=connect_timeout, read_timeout=read_timeout
        )

    @property
    def client(self) -> HttpClient:
        """The vendor's own client (for subclasses and tests; do not close it yourself)."""
        return self._client

    async def _aclose(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.endpoint!r})"

    async def post(
        self,
        path: str,
        *,
        content: bytes,
        headers: Mapping[str, str],
        unsent: Sequence[str] = (),
        what: str = "request",
    ) -> Response:
        """POST to ``path`` under the endpoint through the vendor's client and read the answer.

        Network errors and timeouts become gocomm errors naming ``what`` and leaving ``unsent``
        (the request's recipients) unsent (see :func:`gocomm.httpclient.transport_errors`).
        """
        if self.closed:
            # Retrying a closed vendor cannot help: as the SMTP vendor, a permanent error.
            raise PermanentError(
                f"{self.name}: vendor is closed; build a new one", vendor=self.name, unsent=unsent
            )
        if self.secret_headers:
            self._remember_secret_headers(headers)
        with transport_errors(self.name, unsent=unsent, what=what):
            return await self._client.post(path, content=content, headers=headers)

    def _remember_secret_headers(self, headers: Mapping[str, str]) -> None:
        # The whole value and its credential part ("Basic <base64>": the base64 alone), the
        # latest per header, so that a changing value never grows the list.
        for name, value in headers.items():
            if name.lower() in self.secret_headers and value:
                forms = {f for f in (value, value.rpartition(" ")[2]) if len(f) >= 8}
                self._header_secrets[name.lower()] = tuple(
                    SecretStr(form) for form in sorted(forms, key=len, reverse=True)
                )

    def redact(self, text: str) -> str:
        """``text`` (a vendor's message) shortened, with every known credential masked."""
        for secret in (*self._secrets, *chain.from_iterable(self._header_secrets.values())):
            text = text.replace(secret.get_secret_value(), "***")
        if len(text) > _MAX_VENDOR_MESSAGE:
            text = text[:_MAX_VENDOR_MESSAGE] + "..."
        return text

    def vendor_error(
        self,
        code: str,
        message: str,
        *,
        table: CodeTable,
        retry_after: float | None = None,
        recipients: Iterable[str] | None = None,
    ) -> SendError:
        """The gocomm error for the vendor's ``code``: permanent or retryable per ``table``;
        ``recipients`` (when the code concerns only some) are named in the message, and in
        ``refused`` when ``table`` says the code refuses them for good."""
        permanent = table.is_permanent(code)
        refused = tuple(recipients) if recipients is not None and table.refuses(code) else ()
        cls: type[SendError] = PermanentError if permanent else SendError
        if refused:
            invalid = code in table.invalid
            cls = InvalidRecipient if invalid else PermanentError
            advice = (
                "check the number" if invalid else "refused for good: do not send it again"
            )
        else:
            advice = self.permanent_advice if permanent else "retry later"
        text = f"{self.name}: vendor answered {code}: {self.redact(message) or 'no message'}"
        if recipients is not None:
            text += f" (recipients: {', '.join(recipients)})"
        text += f"; {advice}"
        return cls(text, vendor=self.name, code=code, retry_after=retry_after, refused=refused)

    def status_error(self, response: Response, *, what: str = "request") -> SendError:
        """The error for an HTTP answer the vendor's body did not explain: 5xx/429/408
        retryable, 401/403 permanent (credentials), anything else retryable (unknown)."""
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status in (401, 403):
            return PermanentError(
                f"{self.name}: {what} refused with HTTP {status}; check the credentials",
                vendor=self.name,
                code=f"HTTP{status}",
            )
        return SendError(
            f"{self.name}: {what} failed with HTTP {status}; retry later",
            vendor=self.name,
            code=f"HTTP{status}",
            retry_after=retry_after,
        )

    def outcome(
        self,
        recipients: Sequence[tuple[str, str]],
        message_ids: Sequence[str],
        failed: Mapping[str, SendError],
    ) -> Receipt:
        """The receipt of a send whose requests are over, or the one error to raise.

        ``recipients`` pairs each caller's recipient with the key ``failed`` uses for it (a
        vendor's number form, or the address itself); ``failed`` maps the keys not sent to
        their errors. A failure whose error names its key in ``refused`` refused it for good.
        When every recipient either got the message or was refused for good, and at least one
        got it, the receipt's ``refused`` names the others; otherwise the error's ``unsent``
        names those still owed the message and ``refused`` those refused for good.
        """
        if not failed:
            return Receipt(vendor=self.name, message_ids=tuple(message_ids))
        gone = {key for key, error in failed.items() if key in error.refused}
        unsent = [r for r, key in recipients if key in failed.keys() - gone]
        refused = [r for r, key in recipients if key in gone]
        sent = len({key for _, key in recipients}) - len(failed)
        if not unsent and sent:
            # Everyone else got it: the send went through, naming those refused for good.
            self.logger.warning("%s: refused for good: %s", self.name, _causes(failed))
            return Receipt(vendor=self.name, message_ids=tuple(message_ids), refused=tuple(refused))
        raise self._combine(failed, unsent, sent=sent, refused=refused)

    def _combine(
        self,
        failed: Mapping[str, SendError],
        unsent: Sequence[str],
        *,
        sent: int,
        refused: Sequence[str] = (),
    ) -> SendError:
        """One error for every failed recipient; ``unsent`` (still owed) and ``refused`` (refused
        for good) are in the caller's spelling. Retryable if any owed recipient failed for a
        retryable reason."""
        errors = list({id(e): e for e in failed.values()}.values())
        if len(errors) == 1 and sent == 0:
            # One failure that covers everyone: raise it as it is, naming all as unsent.
            error = errors[0]
            error.unsent = tuple(unsent)
            error.refused = tuple(refused)
            return error
        owed = {n: e for n, e in failed.items() if n not in e.refused}
        gone = {n: e for n, e in failed.items() if n in e.refused}
        owed_errors = list({id(e): e for e in owed.values()}.values())
        retryable = [e for e in owed_errors if is_retryable(e)]
        retry_afters = [e.retry_after for e in retryable if e.retry_after is not None]
        message = f"{self.name}: sent to {sent} of {sent + len(failed)} {self.recipient_noun}"
        if owed:
            message += f"; not sent to {_causes(owed)}"
        if gone:
            message += f"; refused for good: {_causes(gone)}"
        cls: type[SendError]
        if not retryable:
            invalid = all(isinstance(e, InvalidRecipient) for e in errors)
            cls = InvalidRecipient if invalid and not owed else PermanentError
            advice = f"fix these {self.recipient_noun} or the message"
        elif all(isinstance(e, SendTimeout) for e in owed_errors):
            cls, advice = SendTimeout, f"retry the unsent {self.recipient_noun} later"
        else:
            cls, advice = SendError, f"retry the unsent {self.recipient_noun} later"
        combined = cls(
            f"{message}; {advice}",
            vendor=self.name,
            code=(retryable or errors)[0].code,
            retry_after=max(retry_afters) if retry_afters else None,
            unsent=unsent,
            refused=refused,
        )
        combined.__cause__ = (retryable or errors)[0]
        return combined


class HttpSmsVendor(HttpVendor):
    """Base of an HTTP SMS vendor: validation, templates, batching, over :class:`HttpVendor`.

    Subclasses set :attr:`name` (the registered vendor name) and :attr:`batch_size`, and
    implement :meth:`_send_batch`. ``send`` validates every number before any request, so a bad
    number costs no request; one instance owns one client, reused by every send and closed by
    ``aclose()``.
    """

    batch_size: ClassVar[int] = 1
    recipient_noun = "numbers"
    permanent_advice: ClassVar[str] = "check the number, template, signature or credentials"

    def __init__(
        self,
        *,
        endpoint: str,
        connect_timeout: float,
        read_timeout: float,
        templates: Mapping[str, TemplateEntry] | None = None,
        secrets: Iterable[str] = (),
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(
            endpoint=endpoint,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            secrets=secrets,
            logger=logger,
        )
        self.templates: Mapping[str, TemplateEntry] = dict(templates or {})

    # -- hooks for subclasses -----------------------------------------------------------------

    def _vendor_number(self, e164: str) -> str:
        """The number as the vendor wants it on the wire; E.164 by default."""
        return e164

    async def _send_batch(self, template: ResolvedTemplate, numbers: Sequence[str]) -> BatchResult:
        """Send one request to ``numbers`` (vendor form, at most :attr:`batch_size`).

        Return what was sent and the per-number failures; raise a :class:`SendError` when the
        request as a whole failed (nobody in ``numbers`` got the message).
        """
        raise NotImplementedError

    def _resolve(self, biz: str, args: object) -> ResolvedTemplate:
        """What one send uses, from ``biz`` and ``args``; raises before any request.

        By default :func:`resolve_template` over :attr:`templates`; a vendor whose templates are
        not ids (Twilio's are body texts) overrides it.
        """
        return resolve_template(self.templates, biz, args)

    async def _send_all(
        self, template: ResolvedTemplate, numbers: Sequence[str]
    ) -> tuple[list[str], dict[str, SendError]]:
        """Send to every number (vendor form, distinct) in batches of :attr:`batch_size`.

        Returns the message ids and the failed numbers with their errors. By default the
        batches go one after another, and a batch that fails as a whole (``_send_batch``
        raises) leaves it and every later batch unsent; a vendor may override this to send
        batches concurrently, keeping the rule that nobody is sent twice.
        """
        message_ids: list[str] = []
        failed: dict[str, SendError] = {}
        for start, batch in zip(
            range(0, len(numbers), self.batch_size), chunked(numbers, self.batch_size), strict=True
        ):
            try:
                result = await self._send_batch(template, batch)
            except SendError as exc:
                # The whole request failed: this batch and every later one stay unsent.
                failed.update((number, exc) for number in numbers[start:])
                break
            message_ids.extend(result.message_ids)
            failed.update(result.failed)
        return message_ids, failed

    # -- the send -------------------------------------------------------------------------------

    def _recipients(self, to: Sequence[str]) -> list[tuple[str, str]]:
        """(caller's number, vendor number) for each of ``to``; raises before any request."""
        if not to:
            raise InvalidRecipient(f"{self.name}: no recipient given; pass at least one number")
        return [(number, self._vendor_number(validate_phone(number))) for number in to]

    async def send(self, biz: str, args: Mapping[str, str], *to: str) -> Receipt:
        """Send template ``biz`` with ``args`` to every number in ``to`` (E.164).

        Raises :class:`~gocomm.errors.InvalidRecipient` / :class:`~gocomm.errors.InvalidMessage`
        before any request; otherwise a :class:`~gocomm.errors.SendError` whose ``unsent`` names
        the numbers of ``to`` still owed the message (retryable if any of them failed for a
        retryable reason) and ``refused`` those the vendor refused for good. When every number
        either got the message or was refused for good, and at least one got it, the receipt's
        ``refused`` names the others. A number listed twice (in any spelling) is sent one message.
        """
        if self.closed:
            # Retrying a closed vendor cannot help: as the SMTP vendor, a permanent error.
            raise PermanentError(
                f"{self.name}: vendor is closed; build a new one", vendor=self.name
            )
        pairs = self._recipients(to)
        template = self._resolve(biz, args)
        numbers = list(dict.fromkeys(vendor_number for _, vendor_number in pairs))
        message_ids, failed = await self._send_all(template, numbers)
        return self.outcome(pairs, message_ids, failed)


def _causes(failed: Mapping[str, SendError]) -> str:
    """``number: code`` for the first ten failures, for a message."""
    causes = "; ".join(
        f"{number}: {error.code or type(error).__name__}"
        for number, error in list(failed.items())[:10]
    )
    return causes + (f" and {len(failed) - 10} more" if len(failed) > 10 else "")
