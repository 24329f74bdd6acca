"""Tencent Cloud API signature v3 (TC3-HMAC-SHA256), as pure functions.

The canonical request covers the method (always POST here), ``/``, an empty query, the headers
``content-type``, ``host`` and ``x-tc-action`` (lower-cased action) and the SHA-256 of the
payload. The string to sign adds the algorithm, the timestamp and the credential scope
``YYYY-MM-DD/service/tc3_request`` (the UTC date of the timestamp). The signing key is derived
by HMAC-SHA256 from ``"TC3" + secret_key`` through the date, the service and ``tc3_request``.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac

__all__ = [
    "ALGORITHM",
    "SIGNED_HEADERS",
    "canonical_request",
    "credential_scope",
    "string_to_sign",
    "tc3_authorization",
    "tc3_signature",
]

ALGORITHM = "TC3-HMAC-SHA256"
SIGNED_HEADERS = "content-type;host;x-tc-action"


def _bytes(payload: str | bytes) -> bytes:
    return payload.encode("utf-8") if isinstance(payload, str) else payload


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def credential_scope(service: str, timestamp: int) -> str:
    """``YYYY-MM-DD/<service>/tc3_request`` for the UTC date of ``timestamp``."""
    date = datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d")
    return f"{date}/{service}/tc3_request"


def canonical_request(*, host: str, action: str, payload: str | bytes, content_type: str) -> str:
    """The canonical POST request over ``content-type;host;x-tc-action`` and the payload."""
    headers = f"content-type:{content_type}\nhost:{host}\nx-tc-action:{action.lower()}\n"
    payload_hash = hashlib.sha256(_bytes(payload)).hexdigest()
    return f"POST\n/\n\n{headers}\n{SIGNED_HEADERS}\n{payload_hash}"


def string_to_sign(
    *, service: str, host: str, action: str, payload: str | bytes, timestamp: int, content_type: str
) -> str:
    """Algorithm, timestamp, credential scope and the hash of the canonical request."""
    request = canonical_request(
        host=host, action=action, payload=payload, content_type=content_type
    )
    request_hash = hashlib.sha256(request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{credential_scope(service, timestamp)}\n{request_hash}"


def tc3_signature(secret_key: str, *, service: str, timestamp: int, to_sign: str) -> str:
    """The hex signature of ``to_sign`` with the key derived from ``secret_key``."""
    date = credential_scope(service, timestamp).split("/", 1)[0]
    key = _hmac(f"TC3{secret_key}".encode(), date)
    key = _hmac(key, service)
    key = _hmac(key, "tc3_request")
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def tc3_authorization(
    secret_id: str,
    secret_key: str,
    *,
    service: str,
    host: str,
    action: str,
    payload: str | bytes,
    timestamp: int,
    content_type: str = "application/json; charset=utf-8",
) -> str:
    """The ``Authorization`` header value for one POST request.

    ``host`` must be the ``Host`` header the request carries (with its port when the endpoint
    has a non-default one); ``payload`` the exact body bytes (a str is UTF-8 encoded);
    ``timestamp`` the Unix time also sent as ``X-TC-Timestamp``.
    """
    to_sign = string_to_sign(
        service=service,
        host=host,
        action=action,
        payload=payload,
        timestamp=timestamp,
        content_type=content_type,
    )
    signature = tc3_signature(secret_key, service=service, timestamp=timestamp, to_sign=to_sign)
    return (
        f"{ALGORITHM} Credential={secret_id}/{credential_scope(service, timestamp)}, "
        f"SignedHeaders={SIGNED_HEADERS}, Signature={signature}"
    )
