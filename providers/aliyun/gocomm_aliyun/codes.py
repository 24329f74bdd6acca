"""Aliyun's SendSms error codes, classified (see the README's table).

Every code Aliyun documents for ``SendSms`` (its "API错误码" page, the official SDK's
exceptions and the OpenAPI gateway's common codes) is in :data:`ERROR_CODES`:

- signature, template, content, account and credential errors are permanent: fix the
  configuration, retrying cannot help;
- the account's own daily/monthly cap (:data:`ACCOUNT_CAP_CODES`) is permanent too, as nothing
  changes for hours, but it refuses nobody: every recipient stays owed, so failover moves on;
- a number Aliyun calls illegal, and its per-number frequency control
  (:data:`RECIPIENT_CODES`), concern one number of the request, which Aliyun does not name;
- throttling, system and clock errors are retryable, and so is a code gocomm does not know.
"""

from __future__ import annotations

import re

from gocomm.errors import InvalidRecipient, PermanentError, SendError
from gocomm.httpvendor import CodeTable

__all__ = ["ACCOUNT_CAP_CODES", "ADVICE", "ERROR_CODES", "RECIPIENT_CODES", "error_class"]

#: Every documented code, classified; a code in none of the sets is retryable.
ERROR_CODES = CodeTable(
    permanent=frozenset(
        {
            # Signature (签名), template and content: fixed in the console, not by waiting.
            "isv.SMS_SIGNATURE_SCENE_ILLEGAL",
            "isv.SMS_SIGNATURE_ILLEGAL",
            "isv.SMS_SIGN_ILLEGAL",
            "isv.SMS_SIGN_NAME_ILLEGAL",
            "isv.SIGN_STATE_ILLEGAL",
            "isv.EXTEND_CODE_ERROR",
            "isv.SMS_TEMPLATE_ILLEGAL",
            "isv.SMS_CONTENT_ILLEGAL",
            "isv.SMS_CONTENT_CODE_ILLEGAL",
            "isv.TEMPLATE_MISSING_PARAMETERS",
            "isv.TEMPLATE_PARAMS_ILLEGAL",
            "isv.INVALID_PARAMETERS",
            "isv.INVALID_JSON_PARAM",
            "isv.PARAM_LENGTH_LIMIT",
            "isv.PARAM_NOT_SUPPORT_URL",
            "isv.BLACK_KEY_CONTROL_LIMIT",
            "isv.MOBILE_COUNT_OVER_LIMIT",
            "isv.DOMESTIC_NUMBER_NOT_SUPPORTED",
            "isv.NOT_SUPPORTED_COUNTRY",
            "isv.COUNTRY_RESTRICTED",
            # The account: balance, subscription, permissions, where it calls from.
            "isv.AMOUNT_NOT_ENOUGH",
            "isv.OUT_OF_SERVICE",
            "isv.PRODUCT_UN_SUBSCRIPT",
            "isv.PRODUCT_UNSUBSCRIBE",
            "isv.ACCOUNT_NOT_EXISTS",
            "isv.ACCOUNT_ABNORMAL",
            "isv.DENY_IP_RANGE",
            "isv.FORBIDDEN_ACTION",
            "isv.RAM_PERMISSION_DENY",
            "isp.RAM_PERMISSION_DENY",
            # The account's daily and monthly caps set in the console (ACCOUNT_CAP_CODES).
            "isv.DAY_LIMIT_CONTROL",
            "isv.MONTH_LIMIT_CONTROL",
            # The OpenAPI gateway: credentials, signature, action.
            "InvalidAccessKeyId.*",
            "SignatureDoesNotMatch",
            "IncompleteSignature",
            "InvalidAction.NotFound",
            "InvalidVersion",
            "MissingParameter",
            "Forbidden.*",
        }
    ),
    # A number Aliyun calls illegal: refused as an invalid recipient, once it is alone in a
    # request (RECIPIENT_CODES).
    invalid=frozenset({"isv.MOBILE_NUMBER_ILLEGAL"}),
    retryable=frozenset(
        {
            "isv.BUSINESS_LIMIT_CONTROL",  # per number, minute or hour level (see error_class)
            "isp.SYSTEM_ERROR",
            "isp.GATEWAY_ERROR",
            "isp.UNKNOWN",
            "isv.DATA_NOT_EXIST",
            "isv.BILLING_DEDUCTION_ERROR",
            "Throttling",
            "Throttling.*",
            "ServiceUnavailable",
            "InternalError",
            # Clock skew or a reused nonce: a fresh request carries a new timestamp and nonce.
            "SignatureNonceUsed",
            "InvalidTimeStamp.*",
        }
    ),
)

#: Codes about one number of the request, which Aliyun does not name: a number it calls
#: illegal (refused for good, as ``InvalidRecipient``) and its per-number frequency control
#: (1 a minute / 5 an hour / 10 a day by default for one signature: the minute and hour levels
#: are retryable, the day level refuses that number for the day).
RECIPIENT_CODES = frozenset({"isv.MOBILE_NUMBER_ILLEGAL", "isv.BUSINESS_LIMIT_CONTROL"})

#: The account's own daily/monthly volume cap, set in the console. Nothing changes for hours,
#: so it is not retried at this vendor (a PermanentError), but it says nothing about the
#: recipients: none is refused, all stay in ``unsent`` and failover takes them elsewhere.
ACCOUNT_CAP_CODES = frozenset({"isv.DAY_LIMIT_CONTROL", "isv.MONTH_LIMIT_CONTROL"})

#: What to do, for the codes whose cause the generic advice would misname.
ADVICE = {
    "isv.DAY_LIMIT_CONTROL": (
        "the account's daily sending cap set in the Aliyun console is reached; raise it or send "
        "through another vendor until tomorrow"
    ),
    "isv.MONTH_LIMIT_CONTROL": (
        "the account's monthly sending cap set in the Aliyun console is reached; raise it or "
        "send through another vendor"
    ),
    "isv.MOBILE_NUMBER_ILLEGAL": "Aliyun says this is not a valid number; check it",
}


def _is_daily(message: str) -> bool:
    """Whether a frequency-control message is about the day level (触发天级流控...)."""
    return "天级" in message or re.search(r"\bday\b|\bdaily\b", message, re.IGNORECASE) is not None


def error_class(code: str, message: str = "") -> type[SendError]:
    """The gocomm error class for an Aliyun ``code`` (``message`` is Aliyun's own text, which
    tells the level of a frequency control).

    ``isv.MOBILE_NUMBER_ILLEGAL`` is an ``InvalidRecipient``; the day level of
    ``isv.BUSINESS_LIMIT_CONTROL`` (触发天级流控) a ``PermanentError``, as that number is capped
    until tomorrow; the rest follows :data:`ERROR_CODES`.
    """
    if code in ERROR_CODES.invalid:
        return InvalidRecipient
    if code == "isv.BUSINESS_LIMIT_CONTROL" and _is_daily(message):
        return PermanentError
    return PermanentError if ERROR_CODES.is_permanent(code) else SendError
