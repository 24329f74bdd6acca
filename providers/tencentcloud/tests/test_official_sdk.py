"""gocomm against Tencent's official Python SDK (``tencentcloud-sdk-python-sms``, a test extra).

- The SDK's own async client sends ``SendSms`` to :class:`FakeTencentCloud` and is accepted:
  the fake takes what Tencent takes (``application/json`` without a charset, a signature over
  ``content-type;host`` only), so code written against the SDK can be tested with it.
- The SDK's signer, given the request gocomm sent, produces the very ``Authorization`` header
  gocomm sent.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from gocomm_tencentcloud import TencentCloudSms
from gocomm_tencentcloud.testing import SDK_APP_ID, SECRET_ID, SECRET_KEY, FakeTencentCloud
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.common.sign import Sign
from tencentcloud.sms.v20210111 import models
from tencentcloud.sms.v20210111.sms_client_async import SmsClient

from .conftest import make_settings

NUMBERS = ["+8613800138000", "+8613800138001"]


async def test_the_official_sdk_is_accepted_by_the_fake(tencent_server: FakeTencentCloud) -> None:
    assert tencent_server.server is not None
    profile = ClientProfile(
        httpProfile=HttpProfile(protocol="http", endpoint=f"127.0.0.1:{tencent_server.server.port}")
    )
    request = models.SendSmsRequest()
    request.PhoneNumberSet = NUMBERS
    request.SmsSdkAppId = SDK_APP_ID
    request.SignName = "gocomm"
    request.TemplateId = "1234"
    request.TemplateParamSet = ["1234", "5"]
    async with SmsClient(Credential(SECRET_ID, SECRET_KEY), "ap-guangzhou", profile) as client:
        response = await client.SendSms(request)
    assert [status.Code for status in response.SendStatusSet] == ["Ok", "Ok"]
    assert [d.recipient for d in tencent_server.deliveries] == NUMBERS
    [sent] = tencent_server.server.requests
    assert sent.headers["content-type"] == "application/json"  # no charset, as the SDK sends
    assert "SignedHeaders=content-type;host," in sent.headers["authorization"]


async def test_the_fake_still_refuses_a_bad_signature_from_the_sdk(
    tencent_server: FakeTencentCloud,
) -> None:
    assert tencent_server.server is not None
    profile = ClientProfile(
        httpProfile=HttpProfile(protocol="http", endpoint=f"127.0.0.1:{tencent_server.server.port}")
    )
    request = models.SendSmsRequest()
    request.PhoneNumberSet = NUMBERS[:1]
    request.SmsSdkAppId = SDK_APP_ID
    request.TemplateId = "1234"
    wrong = Credential(SECRET_ID, SECRET_KEY + "x")
    async with SmsClient(wrong, "ap-guangzhou", profile) as client:
        with pytest.raises(TencentCloudSDKException, match=r"AuthFailure\.SignatureFailure"):
            await client.SendSms(request)
    assert tencent_server.deliveries == []


async def test_the_sdks_signer_produces_gocomms_authorization(
    tencent_server: FakeTencentCloud,
) -> None:
    async with TencentCloudSms(make_settings(tencent_server.url)) as tencent:
        await tencent.send("login", {"code": "1234", "minutes": "5"}, *NUMBERS)
    assert tencent_server.server is not None
    [sent] = tencent_server.server.requests
    headers = sent.headers
    signed = headers["authorization"].split("SignedHeaders=", 1)[1].split(",", 1)[0]
    # The canonical request of TC3 over the headers gocomm signed, from the bytes it sent.
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            "".join(
                f"{name}:{headers[name].lower() if name == 'x-tc-action' else headers[name]}\n"
                for name in signed.split(";")
            ),
            signed,
            hashlib.sha256(sent.body).hexdigest(),
        ]
    )
    timestamp = headers["x-tc-timestamp"]
    date = datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d")
    scope = f"{date}/sms/tc3_request"
    to_sign = "\n".join(
        ["TC3-HMAC-SHA256", timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signature = Sign.sign_tc3(SECRET_KEY, date, "sms", to_sign)  # the SDK's own signer
    expected = (
        f"TC3-HMAC-SHA256 Credential={SECRET_ID}/{scope}, SignedHeaders={signed}, "
        f"Signature={signature}"
    )
    assert headers["authorization"] == expected
