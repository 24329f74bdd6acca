"""Alibaba Cloud RPC signature version 1 (HMAC-SHA1), as pure functions.

The request parameters (without ``Signature``) are sorted by name, each name and value
percent-encoded by :func:`percent_encode`, joined as ``name=value`` with ``&``; the string to
sign is ``METHOD & percent_encode("/") & percent_encode(that query)``; the signature is the
base64 of HMAC-SHA1 keyed with ``secret + "&"``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote

__all__ = ["canonical_query", "percent_encode", "rpc_signature", "string_to_sign"]


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
