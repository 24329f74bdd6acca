"""Alibaba Cloud request signatures, as pure functions.

Two versions (DESIGN §6, §17):

- **V3, ACS3-HMAC-SHA256** (:func:`acs3_authorization`, the vendor's default): a canonical
  request (method, path, sorted query, the signed headers, the SHA-256 of the body) is hashed,
  and the ``Authorization`` header carries the hex HMAC-SHA256 of
  ``"ACS3-HMAC-SHA256\n" + hex(sha256(canonical request))``, keyed with the secret itself.
- **RPC signature v1, HMAC-SHA1** (:func:`rpc_signature`, ``signature: v2`` in the settings;
  Aliyun calls it "signature method V2", its parameters say ``SignatureVersion=1.0``): the
  request parameters (without ``Signature``) are sorted by name, each name and value
percent-encoded by :func:`percent_encode`, joined as ``name=value`` with ``&``; the string to
sign is ``METHOD & percent_encode("/") & percent_encode(that query)``; the signature is the
base64 of HMAC-SHA1 keyed with ``secret + "&"``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote

__all__ = [
    "ACS3_ALGORITHM",
    "EMPTY_SHA256",
    "acs3_authorization",
    "acs3_canonical_request",
    "canonical_query",
    "percent_encode",
    "rpc_signature",
    "sha256_hex",
    "string_to_sign",
]

#: The V3 algorithm name, first word of the ``Authorization`` header.
ACS3_ALGORITHM = "ACS3-HMAC-SHA256"
#: ``x-acs-content-sha256`` of an empty body.
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def percent_encode(value: str) -> str:
    """Aliyun's encoding: UTF-8, RFC 3986; only ``A-Z a-z 0-9 - _ . ~`` stay as they are.

    So a space is ``%20`` (not ``+``), ``*`` is ``%2A`` and ``~`` stays ``~``.
    """
    return quote(value, safe="-_.~", encoding="utf-8")


def canonical_query(params: Mapping[str, str]) -> str:
    """The parameters sorted by name, encoded, as ``name=value`` joined with ``&``."""
    return "&".join(
        f"{percent_encode(name)}={percent_encode(value)}" for name, value in sorted(params.items())
    )


def string_to_sign(params: Mapping[str, str], method: str = "POST") -> str:
    """``METHOD&%2F&<encoded canonical query>``."""
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def rpc_signature(params: Mapping[str, str], secret: str, method: str = "POST") -> str:
    """The ``Signature`` parameter for ``params`` (which must not contain ``Signature``)."""
    digest = hmac.new(
        f"{secret}&".encode(), string_to_sign(params, method).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode("ascii")


# --------------------------------------------------------------------------------------------
# V3: ACS3-HMAC-SHA256
# --------------------------------------------------------------------------------------------

Query = Mapping[str, str | None] | Iterable[tuple[str, str | None]]


def sha256_hex(body: bytes | str) -> str:
    """Lower-case hex SHA-256 of ``body`` (UTF-8 for a str): the ``x-acs-content-sha256``."""
    return hashlib.sha256(body.encode() if isinstance(body, str) else body).hexdigest()


def _signed_headers(host: str, headers: Mapping[str, str]) -> dict[str, str]:
    """The headers V3 signs: host, content-type when present, every x-acs-*; lower case,
    values trimmed, sorted by name."""
    lowered = {name.lower(): value.strip() for name, value in headers.items()}
    lowered.setdefault("host", host)
    if lowered["host"] != host:
        raise ValueError(f"headers give host {lowered['host']!r} but host is {host!r}")
    return {
        name: lowered[name]
        for name in sorted(lowered)
        if name in ("host", "content-type") or name.startswith("x-acs-")
    }


def acs3_canonical_request(
    *,
    method: str,
    host: str,
    path: str,
    query: Query,
    headers: Mapping[str, str],
    body: bytes | str,
) -> tuple[str, str]:
    """The V3 canonical request and the ``;``-joined names of the headers it signs.

    A query parameter whose value is None is left out; one whose value is ``""`` stays as
    ``name=``. Pairs are sorted by name (then value), names and values percent-encoded by
    :func:`percent_encode`.
    """
    pairs = query.items() if isinstance(query, Mapping) else query
    canonical_query = "&".join(
        f"{name}={value}"
        for name, value in sorted(
            (percent_encode(name), percent_encode(value))
            for name, value in pairs
            if value is not None
        )
    )
    signed = _signed_headers(host, headers)
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in signed.items())
    names = ";".join(signed)
    request = "\n".join(
        (
            method.upper(),
            quote(path or "/", safe="/-_.~"),
            canonical_query,
            canonical_headers,
            names,
            sha256_hex(body),
        )
    )
    return request, names


def acs3_authorization(
    access_key_id: str,
    secret: str,
    *,
    method: str,
    host: str,
    path: str,
    query: Query,
    headers: Mapping[str, str],
    body: bytes | str,
) -> str:
    """The ``Authorization`` header value of a V3 (ACS3-HMAC-SHA256) request.

    ``headers`` holds ``host`` (or it is taken from ``host``), the ``x-acs-*`` headers sent
    (``x-acs-action``, ``x-acs-version``, ``x-acs-date``, ``x-acs-signature-nonce``,
    ``x-acs-content-sha256``...) and ``content-type`` when there is a body; other headers
    given are not signed. Format:
    ``ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<a;b>,Signature=<hex>``.
    """
    request, names = acs3_canonical_request(
        method=method, host=host, path=path, query=query, headers=headers, body=body
    )
    to_sign = f"{ACS3_ALGORITHM}\n{sha256_hex(request)}"
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"{ACS3_ALGORITHM} Credential={access_key_id},SignedHeaders={names},Signature={signature}"
    )
