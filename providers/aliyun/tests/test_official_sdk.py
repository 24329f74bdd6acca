"""gocomm and FakeAliyun against Aliyun's official SDK (alibabacloud-dysmsapi20170525).

Two directions, both signature versions: FakeAliyun accepts what the SDK sends (the parameters
in the query string, the SDK's own headers), and the SDK's own signer computes the very
signature gocomm put on its requests. The SDK is synchronous (requests): it runs in a thread
while the fake serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any
from urllib.parse import parse_qsl

import pytest
from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi import models as openapi_models
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils import Utils
from darabonba.request import DaraRequest
from darabonba.runtime import RuntimeOptions
from gocomm_aliyun import AliyunSms
from gocomm_aliyun.testing import FakeAliyun

from gocomm.testing.httpserver import HttpRequest

TEXT = {"code": "12 ~*/+ & 100%", "name": "张三 😀"}
# SDK name of each signature version: None is its default, ACS3-HMAC-SHA256.
ALGORITHMS = {"v3": None, "v2": "v2"}


def sdk_send(fake: FakeAliyun, algorithm: str | None, secret: str) -> Any:
    config = openapi_models.Config(
        access_key_id=fake.access_key_id,
        access_key_secret=secret,
        endpoint=fake.url.removeprefix("http://"),
        protocol="http",
        signature_algorithm=algorithm,
    )
    request = sms_models.SendSmsRequest(
        phone_numbers="13800138000,+85291234567",
        sign_name="短信签名·测试",
        template_code="SMS_465830123",
        template_param='{"code":"12 ~*/+ & 100%"}',
        out_id="order-42/a b",
    )
    runtime = RuntimeOptions(autoretry=False, max_attempts=1, read_timeout=5000)
    return Client(config).send_sms_with_options(request, runtime)


@pytest.mark.parametrize("version", ["v3", "v2"])
async def test_the_fake_accepts_what_the_official_sdk_sends(version: str) -> None:
    async with FakeAliyun().serving() as fake:
        answer = await asyncio.to_thread(
            sdk_send, fake, ALGORITHMS[version], fake.access_key_secret
        )
        assert (answer.body.code, answer.body.biz_id) == ("OK", "biz-1")
        assert fake.signatures == [version]
        [request] = fake.server.requests  # type: ignore[union-attr]
        assert request.target.startswith("/?") and request.body == b""  # all in the query
        assert [(d.recipient, d.text) for d in fake.deliveries] == [
            ("+8613800138000", "12 ~*/+ & 100%"),
            ("+85291234567", "12 ~*/+ & 100%"),
        ]
        assert fake.accepted[0]["OutId"] == "order-42/a b"
        # Signed with another secret, the SDK's request is refused as Aliyun refuses it.
        with pytest.raises(ClientException) as refused:
            await asyncio.to_thread(sdk_send, fake, ALGORITHMS[version], "not-it")
        assert (refused.value.code, refused.value.status_code) == ("SignatureDoesNotMatch", 400)
        assert len(fake.accepted) == 1


async def gocomm_requests(fake: FakeAliyun, version: str) -> list[HttpRequest]:
    settings = fake.settings(signature=version, templates={"login": "SMS_465830123"})
    async with AliyunSms(settings) as sms:
        await sms.send("login", TEXT, "+8613800138000", "+85291234567", "+861012345678")
        await sms.send("login", {}, "+8613900139000")
    assert fake.signatures == [version, version]
    return list(fake.server.requests)  # type: ignore[union-attr]


async def test_the_sdk_signer_verifies_gocomms_v3_requests() -> None:
    async with FakeAliyun().serving() as fake:
        requests = await gocomm_requests(fake, "v3")
    for request in requests:
        authorization = request.headers["authorization"]
        signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
        sdk_request = DaraRequest()
        sdk_request.method = request.method
        sdk_request.pathname = request.path
        sdk_request.query = dict(parse_qsl(request.target.partition("?")[2]))
        sdk_request.headers = {name: request.headers[name] for name in signed}
        payload = hashlib.sha256(request.body).hexdigest()
        expected = Utils.get_authorization(
            sdk_request, "ACS3-HMAC-SHA256", payload, fake.access_key_id, fake.access_key_secret
        )
        assert authorization == expected
        assert {"host", "content-type", "x-acs-action", "x-acs-content-sha256"} <= set(signed)


async def test_the_sdk_signer_verifies_gocomms_v2_requests() -> None:
    async with FakeAliyun().serving() as fake:
        requests = await gocomm_requests(fake, "v2")
    for request in requests:
        params = dict(parse_qsl(request.body.decode()))
        signature = params.pop("Signature")
        assert signature == Utils.get_rpcsignature(params, "POST", fake.access_key_secret)
