"""Tencent Cloud's error codes for ``SendSms``, classified (DESIGN §3).

The codes are the SMS product's own (the ``errorcodes.py`` of ``tencentcloud-sdk-python-sms``,
API 2021-01-11) and the common codes of every Tencent Cloud API 3.0 call. Each is one of:

- **retryable**: throttling, a short per-number frequency cap, an internal or network error;
- **permanent**: configuration or content (credentials, template, signature, parameters, the
  account's balance or daily volume, a destination the template or application does not
  serve). Nothing is refused: the numbers stay owed, so failover takes them to another vendor,
  but no retry repeats the request at this vendor;
- **refusing**: about one number, refused for good (a do-not-disturb list, its daily cap, a
  country the application blocks); the send goes on for the other numbers;
- **invalid**: the number itself is malformed, refused as :class:`~gocomm.errors.InvalidRecipient`.

A code in none of these (one Tencent adds later) is retryable.
"""

from __future__ import annotations

from gocomm.httpvendor import CodeTable

__all__ = ["ERROR_CODES"]

ERROR_CODES = CodeTable(
    retryable=frozenset(
        {
            # Common codes.
            "InternalError",
            "RequestLimitExceeded",
            "RequestLimitExceeded.*",  # UinLimitExceeded, IPLimitExceeded, GlobalRegion...
            "ResourceInsufficient",
            "ResourceUnavailable",
            "ResourceUnavailable.*",
            "ServiceUnavailable",
            # SMS: internal errors and timeouts of Tencent's own (may have sent: at-least-once).
            "InternalError.*",
            "FailedOperation.ParametersOtherError",  # documented as "unknown error"
            # SMS: frequency caps that lift within minutes or the hour.
            "LimitExceeded.DeliveryFrequencyLimit",
            "LimitExceeded.GlobalSmsSendingRateLimit",
            "LimitExceeded.PhoneNumberThirtySecondLimit",
            "LimitExceeded.PhoneNumberOneHourLimit",
        }
    ),
    permanent=frozenset(
        {
            # Common codes: credentials, the request itself, the account.
            "ActionOffline",
            "AuthFailure",
            "AuthFailure.*",
            "DryRunOperation",
            "FailedOperation",
            "InvalidAction",
            "InvalidParameter",
            "InvalidParameter.*",
            "InvalidParameterValue",
            "InvalidParameterValue.*",
            "InvalidRequest",
            "IpInBlacklist",
            "IpNotInWhitelist",
            "LimitExceeded",
            "MissingParameter",
            "MissingParameter.*",
            "NoSuchProduct",
            "NoSuchVersion",
            "RequestSizeLimitExceeded",
            "ResourceInUse",
            "ResourceNotFound",
            "ResponseSizeLimitExceeded",
            "UnauthorizedOperation",
            "UnauthorizedOperation.*",
            "UnknownParameter",
            "UnsupportedOperation",
            "UnsupportedOperation.*",
            "UnsupportedProtocol",
            "UnsupportedRegion",
            # SMS internal errors that a retry cannot fix: the clock, the API, a signature.
            "InternalError.RequestTimeException",
            "InternalError.RestApiInterfaceNotExist",
            "InternalError.SigFieldMissing",
            "InternalError.SigVerificationFail",
            # SMS: configuration and content (template, signature, certification, package).
            # Listed one by one: an unknown FailedOperation.* stays retryable.
            "FailedOperation.ContainSensitiveWord",
            "FailedOperation.FailResolvePacket",
            "FailedOperation.ForbidAddMarketingTemplates",
            "FailedOperation.InsufficientBalanceInSmsPackage",
            "FailedOperation.JsonParseFail",
            "FailedOperation.MarketingSendTimeConstraint",
            "FailedOperation.MissingSignature",
            "FailedOperation.MissingSignatureList",
            "FailedOperation.MissingSignatureToModify",
            "FailedOperation.MissingTemplateList",
            "FailedOperation.MissingTemplateToModify",
            "FailedOperation.NotEnterpriseCertification",
            "FailedOperation.OtherError",  # documented: parameters not as the API requires
            "FailedOperation.ProhibitSubAccountUse",
            "FailedOperation.QualificationIdNotApproved",
            "FailedOperation.SignIdNotExist",
            "FailedOperation.SignNumberLimit",
            "FailedOperation.SignatureIncorrectOrUnapproved",
            "FailedOperation.TemplateAlreadyPassedCheck",
            "FailedOperation.TemplateIdNotExist",
            "FailedOperation.TemplateIncorrectOrUnapproved",
            "FailedOperation.TemplateNumberLimit",
            "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
            "FailedOperation.TemplateUnapprovedOrNotExist",
            # SMS: the account's or application's daily volume: not retried today here.
            "LimitExceeded.AppCountryOrRegionDailyLimit",
            "LimitExceeded.AppDailyLimit",
            "LimitExceeded.AppGlobalDailyLimit",
            "LimitExceeded.AppMainlandChinaDailyLimit",
            "LimitExceeded.DailyLimit",
            "LimitExceeded.PhoneNumberCountLimit",  # more than 200 numbers: a bug, not weather
        }
    ),
    refusing=frozenset(
        {
            "FailedOperation.PhoneNumberInBlacklist",  # unsubscribed or on a carrier DND list
            "FailedOperation.PhoneNumberOnBlacklist",  # an older spelling of the same
            "LimitExceeded.PhoneNumberDailyLimit",
            "LimitExceeded.PhoneNumberSameContentDailyLimit",
            "LimitExceeded.AppCountryOrRegionInBlacklist",
        }
    ),
    invalid=frozenset(
        {
            "InvalidParameterValue.IncorrectPhoneNumber",
            "FailedOperation.PhoneNumberParseFail",
        }
    ),
)
