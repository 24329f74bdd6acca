"""Message arguments as JSON: how a send travels through a queue and how an idempotency key
recognises the message it was first used for.

* SMS ``args``: a mapping of template parameter names to strings, sent as a JSON object.
* Email ``args``: an :class:`~gocomm.messages.Email`, sent as an object tagged
  ``"__email__"``; attachments' content travels as base64.

:func:`encode_args` raises :class:`PayloadError` (a :class:`~gocomm.errors.ConfigError`)
naming the argument that JSON cannot carry, before anything is enqueued.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from gocomm.errors import ConfigError, InvalidMessage
from gocomm.messages import Attachment, Email, email_fields, sms_params

__all__ = ["PayloadError", "decode_args", "encode_args", "fingerprint"]

_EMAIL_TAG = "__email__"


class PayloadError(ConfigError):
    """A send's arguments cannot travel as JSON (or a payload read back is malformed)."""


def encode_args(channel: str, args: Any) -> dict[str, Any]:
    """``args`` of a send on ``channel`` as plain JSON data."""
    if channel == "email":
        if not isinstance(args, Email):
            raise PayloadError(
                f"email args must be a gocomm.messages.Email, not {type(args).__name__}"
            )
        return _encode_email(args)
    if channel == "sms":
        try:
            return sms_params(args, where="sms args")
        except InvalidMessage as exc:
            raise PayloadError(f"{exc} before enqueueing") from None
    raise PayloadError(f"unknown channel {channel!r}; the channels are email, sms")


def decode_args(channel: str, data: Any) -> Any:
    """The inverse of :func:`encode_args`."""
    try:
        if channel == "email":
            return _decode_email(data)
        if channel == "sms" and isinstance(data, dict):
            return {str(name): str(value) for name, value in data.items()}
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise PayloadError(f"malformed {channel} payload: {type(exc).__name__}: {exc}") from exc
    raise PayloadError(f"malformed {channel} payload (a {type(data).__name__})")


def _encode_email(email: Email) -> dict[str, Any]:
    return {
        _EMAIL_TAG: 1,
        **email_fields(email),
        "headers": dict(email.headers),
        "attachments": [
            {
                "filename": a.filename,
                "content": base64.b64encode(bytes(a.content)).decode("ascii"),
                "content_type": a.content_type,
                "content_id": a.content_id,
            }
            for a in email.attachments
        ],
    }


def _decode_email(data: Any) -> Email:
    if not isinstance(data, dict) or data.get(_EMAIL_TAG) != 1:
        raise ValueError("not an encoded Email")
    return Email(
        subject=data["subject"],
        text=data["text"],
        html=data["html"],
        sender=data["sender"],
        reply_to=tuple(data["reply_to"]),
        cc=tuple(data["cc"]),
        bcc=tuple(data["bcc"]),
        headers=dict(data["headers"]),
        attachments=tuple(
            Attachment(
                a["filename"],
                base64.b64decode(a["content"], validate=True),
                a["content_type"],
                a["content_id"],
            )
            for a in data["attachments"]
        ),
    )


def fingerprint(biz: str, args: Any) -> str:
    """A digest of ``biz`` and ``args``: equal for the same message, whatever the mapping order.

    Email and SMS args hash their JSON form; other args (a user's own sender) their ``repr``.
    """
    if isinstance(args, Email):
        body: Any = _encode_email(args)
    elif isinstance(args, Mapping):
        body = sorted((repr(k), repr(v)) for k, v in args.items())
    else:
        body = repr(args)
    return hashlib.sha256(_FINGERPRINT_JSON.encode([biz, body]).encode()).hexdigest()


# Built once: ``json.dumps`` with options builds an encoder on every call.
_FINGERPRINT_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=repr)
