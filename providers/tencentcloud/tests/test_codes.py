"""Every documented Tencent Cloud code, classified: a table-driven test through the fake.

The SMS codes are the constants of ``tencentcloud/sms/v20210111/errorcodes.py`` in the official
SDK (``tencentcloud-sdk-python-sms``), copied here and sorted by what each must become; the
common codes are those every Tencent Cloud API 3.0 call documents. Each one is answered by
:class:`FakeTencentCloud` for a whole request and for one number, and must become the error the
table says. A test checks the copy against the SDK installed by the test extra.
"""

from __future__ import annotations

import pytest
from gocomm_tencentcloud import TencentCloudSms
from gocomm_tencentcloud.codes import ERROR_CODES
from gocomm_tencentcloud.testing import FakeTencentCloud
from tencentcloud.sms.v20210111 import errorcodes

from gocomm.errors import InvalidRecipient, PermanentError, SendError, is_retryable

ARGS = {"minutes": "5", "code": "1234"}
NUMBER = "+8613800138000"

# -- the SDK's SMS codes, by what they must become -------------------------------------------

SMS_RETRYABLE = [
    "FailedOperation.ParametersOtherError",
    "InternalError.JsonParseFail",
    "InternalError.OtherError",
    "InternalError.ParseBackendResponseFail",
    "InternalError.SendAndRecvFail",
    "InternalError.Timeout",
    "InternalError.UnknownError",
    "LimitExceeded.DeliveryFrequencyLimit",
    "LimitExceeded.GlobalSmsSendingRateLimit",
    "LimitExceeded.PhoneNumberOneHourLimit",
    "LimitExceeded.PhoneNumberThirtySecondLimit",
]

SMS_REFUSING = [
    "FailedOperation.PhoneNumberInBlacklist",
    "LimitExceeded.AppCountryOrRegionInBlacklist",
    "LimitExceeded.PhoneNumberDailyLimit",
    "LimitExceeded.PhoneNumberSameContentDailyLimit",
]

SMS_INVALID = [
    "FailedOperation.PhoneNumberParseFail",
    "InvalidParameterValue.IncorrectPhoneNumber",
]

SMS_PERMANENT = [
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
    "FailedOperation.OtherError",
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
    "InternalError.RequestTimeException",
    "InternalError.RestApiInterfaceNotExist",
    "InternalError.SigFieldMissing",
    "InternalError.SigVerificationFail",
    "InvalidParameter",
    "InvalidParameter.AppidAndBizId",
    "InvalidParameter.DirtyWordFound",
    "InvalidParameter.InvalidParameters",
    "InvalidParameterValue.BeginTimeVerifyFail",
    "InvalidParameterValue.ContentLengthLimit",
    "InvalidParameterValue.EndTimeVerifyFail",
    "InvalidParameterValue.ImageInvalid",
    "InvalidParameterValue.InvalidDocumentType",
    "InvalidParameterValue.InvalidInternational",
    "InvalidParameterValue.InvalidSignPurpose",
    "InvalidParameterValue.InvalidSmsType",
    "InvalidParameterValue.InvalidStartTime",
    "InvalidParameterValue.InvalidTemplateFormat",
    "InvalidParameterValue.InvalidUsedMethod",
    "InvalidParameterValue.LimitVerifyFail",
    "InvalidParameterValue.MarketingTemplateWithoutUnsubscribe",
    "InvalidParameterValue.MultiSmsInfoSetEmpty",
    "InvalidParameterValue.OffsetVerifyFail",
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
    "InvalidParameterValue.QualificationIdNotFound",
    "InvalidParameterValue.SdkAppIdNotExist",
    "InvalidParameterValue.SignAlreadyPassedCheck",
    "InvalidParameterValue.SignExistAndUnapproved",
    "InvalidParameterValue.SignNameLengthTooLong",
    "InvalidParameterValue.TemplateParameterFormatError",
    "InvalidParameterValue.TemplateParameterLengthLimit",
    "InvalidParameterValue.TemplateWithDirtyWords",
    "InvalidParameterValue.UnsupportedTemplateVariable",
    "LimitExceeded.AppCountryOrRegionDailyLimit",
    "LimitExceeded.AppDailyLimit",
    "LimitExceeded.AppGlobalDailyLimit",
    "LimitExceeded.AppMainlandChinaDailyLimit",
    "LimitExceeded.DailyLimit",
    "LimitExceeded.PhoneNumberCountLimit",
    "MissingParameter",
    "MissingParameter.EmptyPhoneNumberSet",
    "UnauthorizedOperation.IndividualUserMarketingSmsPermissionDeny",
    "UnauthorizedOperation.RequestIpNotInWhitelist",
    "UnauthorizedOperation.RequestPermissionDeny",
    "UnauthorizedOperation.SdkAppIdIsDisabled",
    "UnauthorizedOperation.ServiceSuspendDueToArrears",
    "UnauthorizedOperation.SmsSdkAppIdVerifyFail",
    "UnsupportedOperation",
    "UnsupportedOperation.ChineseMainlandTemplateToGlobalPhone",
    "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber",
    "UnsupportedOperation.ContainDomesticPhoneNumber",
    "UnsupportedOperation.GlobalTemplateToChineseMainlandPhone",
    "UnsupportedOperation.UnsupportedRegion",
]

# -- the common codes of every API 3.0 call ---------------------------------------------------

COMMON_RETRYABLE = [
    "InternalError",
    "RequestLimitExceeded",
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded",
    "RequestLimitExceeded.IPLimitExceeded",
    "RequestLimitExceeded.UinLimitExceeded",
    "ResourceInsufficient",
    "ResourceUnavailable",
    "ServiceUnavailable",
]

COMMON_PERMANENT = [
    "ActionOffline",
    "AuthFailure.InvalidAuthorization",
    "AuthFailure.InvalidSecretId",
    "AuthFailure.MFAFailure",
    "AuthFailure.SecretIdNotFound",
    "AuthFailure.SignatureExpire",
    "AuthFailure.SignatureFailure",
    "AuthFailure.TokenFailure",
    "AuthFailure.UnauthorizedOperation",
    "DryRunOperation",
    "FailedOperation",
    "InvalidAction",
    "InvalidParameterValue",
    "InvalidRequest",
    "IpInBlacklist",
    "IpNotInWhitelist",
    "LimitExceeded",
    "NoSuchProduct",
    "NoSuchVersion",
    "RequestSizeLimitExceeded",
    "ResourceInUse",
    "ResourceNotFound",
    "ResponseSizeLimitExceeded",
    "UnauthorizedOperation",
    "UnknownParameter",
    "UnsupportedProtocol",
    "UnsupportedRegion",
]

TABLE = (
    [(code, "retryable") for code in SMS_RETRYABLE + COMMON_RETRYABLE]
    + [(code, "permanent") for code in SMS_PERMANENT + COMMON_PERMANENT]
    + [(code, "refusing") for code in SMS_REFUSING]
    + [(code, "invalid") for code in SMS_INVALID]
)


def test_the_table_is_the_installed_sdks_list() -> None:
    documented = {v for k, v in vars(errorcodes).items() if k.isupper() and isinstance(v, str)}
    assert documented == set(SMS_RETRYABLE + SMS_PERMANENT + SMS_REFUSING + SMS_INVALID)
    codes = [code for code, _ in TABLE]
    assert len(codes) == len(set(codes)), "a code is listed twice"


@pytest.mark.parametrize(("code", "kind"), TABLE)
def test_every_documented_code_is_classified_explicitly(code: str, kind: str) -> None:
    assert ERROR_CODES.knows(code), f"{code} falls to the default for unknown codes"
    assert ERROR_CODES.is_permanent(code) is (kind != "retryable")
    assert ERROR_CODES.refuses(code) is (kind in ("refusing", "invalid"))


def test_an_unknown_code_is_retryable() -> None:
    for code in ("FailedOperation.SomethingNew", "NewFamily.Code", "LimitExceeded.NewCap"):
        assert not ERROR_CODES.knows(code) and not ERROR_CODES.is_permanent(code)


def _wrong(error: SendError, code: str, kind: str) -> str | None:
    """What is wrong with ``error`` for a ``code`` of ``kind``, or None."""
    refused = kind in ("refusing", "invalid")
    expected = {
        "code": code,
        "vendor": "tencentcloud",
        "retryable": kind == "retryable",
        "invalid recipient": kind == "invalid",
        "permanent": kind != "retryable",
        # Refused for good: nobody is owed it, no strategy sends it again. Otherwise still
        # owed: a retry (retryable) or the next vendor (permanent) may send it.
        "unsent": () if refused else (NUMBER,),
        "refused": (NUMBER,) if refused else (),
    }
    actual = {
        "code": error.code,
        "vendor": error.vendor,
        "retryable": is_retryable(error),
        "invalid recipient": isinstance(error, InvalidRecipient),
        "permanent": isinstance(error, PermanentError),
        "unsent": error.unsent,
        "refused": error.refused,
    }
    return None if actual == expected else f"{code} ({kind}): {actual} != {expected}"


@pytest.mark.parametrize("where", ["request", "number"])
async def test_each_code_becomes_the_error_its_kind_says(
    tencent: TencentCloudSms, tencent_server: FakeTencentCloud, where: str
) -> None:
    # One server for the whole table: a request per code, answered for the request as a
    # whole (Response.Error) or for the one number (SendStatusSet).
    wrong = []
    for code, kind in TABLE:
        if where == "request":
            tencent_server.mode = code
        else:
            tencent_server.number_codes[NUMBER] = code
        with pytest.raises(SendError) as caught:
            await tencent.send("login", ARGS, NUMBER)
        problem = _wrong(caught.value, code, kind)
        if problem is not None:
            wrong.append(problem)
    assert wrong == []
    assert len(tencent_server.accepted) == len(TABLE)  # one request each: none retried here
