"""AWS Signature Version 4, as a pure function (verified on the AWS SigV4 test suite).

:func:`sigv4_headers` returns the headers that sign one request: ``X-Amz-Date``,
``Authorization`` and, with temporary credentials, ``X-Amz-Security-Token``. It signs ``host``
(from the URL), every header given, ``x-amz-date`` and the token header, as the AWS SDKs do.

The canonical request follows the SigV4 rules for services other than S3: the path's dot
segments are resolved and repeated slashes collapsed, each path character outside
``A-Za-z0-9-._~/`` percent-encoded (UTF-8); query parameters decoded, re-encoded and sorted by
name then value; header names lower-cased, values trimmed with inner runs of whitespace (line
folds included) made one space, repeated headers joined with ``,``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlsplit

__all__ = ["ALGORITHM", "signing_key", "sigv4_headers"]

ALGORITHM = "AWS4-HMAC-SHA256"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The key derived for one day, region and service (``date`` as ``YYYYMMDD``)."""
    key = _hmac(("AWS4" + secret_access_key).encode("utf-8"), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def _canonical_path(path: str) -> str:
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    normal = "/" + "/".join(segments)
    if path.endswith("/") and segments:
        normal += "/"
    return quote(normal, safe="/-_.~")


def _canonical_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def sigv4_headers(
    method: str,
    url: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes | str,
    *,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    service: str,
    timestamp: datetime,
    session_token: str | None = None,
) -> dict[str, str]:
    """The headers to add to a request so that AWS accepts it: ``X-Amz-Date``,
    ``Authorization`` and, when ``session_token`` is given, ``X-Amz-Security-Token``.

    ``headers`` are the request's other headers (a mapping, or pairs when a name repeats),
    without ``Host`` and ``X-Amz-Date``; all of them are signed. ``body`` is the payload
    (a str is UTF-8). ``timestamp`` must be timezone-aware.
    """
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware (e.g. datetime.now(UTC))")
    amz_date = timestamp.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    added = {"X-Amz-Date": amz_date}
    if session_token is not None:
        added["X-Amz-Security-Token"] = session_token

    pairs = headers.items() if isinstance(headers, Mapping) else headers
    canonical: dict[str, list[str]] = {"host": [_host(url)]}
    for name, value in [*pairs, *added.items()]:
        canonical.setdefault(name.lower(), []).append(" ".join(value.split()))
    names = sorted(canonical)
    signed_headers = ";".join(names)
    header_lines = "".join(f"{name}:{','.join(canonical[name])}\n" for name in names)

    payload = body.encode("utf-8") if isinstance(body, str) else body
    parts = urlsplit(url)
    request = "\n".join(
        [
            method.upper(),
            _canonical_path(parts.path or "/"),
            _canonical_query(parts.query),
            header_lines,
            signed_headers,
            _sha256(payload),
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, _sha256(request.encode("utf-8"))])
    key = signing_key(secret_access_key, day, region, service)
    signature = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    added["Authorization"] = (
        f"{ALGORITHM} Credential={access_key_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return added
