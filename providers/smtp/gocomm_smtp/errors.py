"""Classify aiosmtplib's exceptions as gocomm errors (DESIGN §3, §6).

4xx replies and connection failures are retryable ``SendError``s, 5xx replies
``PermanentError``s, timeouts ``SendTimeout``; TLS failures are ``PermanentError``s because
they are configuration, not weather. Server texts are kept (they name the problem); no secret
ever reaches them, since credentials are never part of an exception aiosmtplib raises.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import aiosmtplib

from gocomm.errors import PermanentError, SendError, SendTimeout

__all__ = ["STARTTLS_MISSING", "TlsRequired", "classify", "reply_error", "tls_cause"]

VENDOR = "smtp"
STARTTLS_MISSING = "SMTP STARTTLS extension not supported by server."
#: OpenSSL's reasons for a handshake that read something other than TLS (a plaintext greeting).
_NOT_TLS = frozenset(
    {"WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"}
)


class TlsRequired(Exception):
    """Raised inside the vendor when a connection is not encrypted although it must be."""


def tls_cause(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` behind ``exc`` (itself, or in its cause/context chain), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def reply_error(
    code: int, text: str, what: str, *, unsent: Iterable[str] | None = None
) -> SendError:
    """A SendError for an SMTP reply: 5xx permanent, anything else (4xx...) retryable."""
    message = f"smtp: {what}: {code} {text}".rstrip()
    if 500 <= code < 600:
        return PermanentError(message, vendor=VENDOR, code=str(code), unsent=unsent)
    return SendError(
        f"{message}; the server may accept it later",
        vendor=VENDOR,
        code=str(code),
        unsent=unsent,
    )


def classify(exc: Exception, where: str) -> SendError:
    """Turn an exception from aiosmtplib or the socket layer into a gocomm ``SendError``.

    ``where`` says what was going on (``"connecting to host:port"``, ``"sending"``...).
    """
    if isinstance(exc, SendError):
        return exc
    tls_error = tls_cause(exc)
    if tls_error is not None and tls_error.reason in _NOT_TLS:
        return PermanentError(
            f"smtp: TLS failed while {where}: the server answered in plaintext ({tls_error}): "
            "the port and the tls mode do not match; port 587 speaks STARTTLS (tls 'starttls') "
            "and 465 implicit TLS (tls 'implicit')",
            vendor=VENDOR,
        )
    if tls_error is not None:
        return PermanentError(
            f"smtp: TLS failed while {where}: {tls_error}; check the server certificate, the "
            "host name and ca_file (a certificate that does not verify is a configuration error)",
            vendor=VENDOR,
        )
    if isinstance(exc, TlsRequired):
        return PermanentError(f"smtp: {exc}", vendor=VENDOR)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return SendTimeout(f"smtp: timed out while {where}: {exc}", vendor=VENDOR)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return reply_error(exc.code, exc.message, f"authentication refused while {where}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return reply_error(exc.code, exc.message, f"server refused while {where}")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        code = min(codes) if codes else 0
        return reply_error(code, "every recipient refused", where)
    if isinstance(exc, ConnectionError | OSError):
        return SendError(f"smtp: connection failed while {where}: {exc}", vendor=VENDOR)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentError(f"smtp: {exc} (while {where})", vendor=VENDOR)
    if isinstance(exc, aiosmtplib.SMTPException):
        if exc.message == STARTTLS_MISSING:
            return PermanentError(
                f"smtp: the server does not offer STARTTLS while {where}, and tls is 'starttls' "
                "(required); use tls 'implicit' if the port speaks TLS from the start, or tls "
                "'none' only for a trusted local relay",
                vendor=VENDOR,
            )
        # Other client-side refusals (no AUTH offered, bad option): configuration.
        return PermanentError(f"smtp: {exc.message} (while {where})", vendor=VENDOR)
    return SendError(f"smtp: {type(exc).__name__} while {where}: {exc}", vendor=VENDOR)
