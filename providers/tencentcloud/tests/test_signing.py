"""TC3-HMAC-SHA256 against Tencent Cloud's published worked example."""

from __future__ import annotations

import hashlib

from gocomm_tencentcloud.signing import (
    canonical_request,
    credential_scope,
    string_to_sign,
    tc3_authorization,
)

# TencentCloud/signature-process-demo, signature-v3/python/demo.py (CVM DescribeInstances).
SECRET_ID = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******"
SECRET_KEY = "Gu5t9xGARNpq86cd98joQYCN3*******"
TIMESTAMP = 1551113065
HOST = "cvm.tencentcloudapi.com"
PAYLOAD = (
    '{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)
PAYLOAD_SHA256 = "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
CANONICAL_REQUEST = (
    "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n"
    "x-tc-action:describeinstances\n\ncontent-type;host;x-tc-action\n"
    "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
)
AUTHORIZATION = (
    "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, "
    "SignedHeaders=content-type;host;x-tc-action, "
    "Signature=be4f67d323c78ab9acb7395e43c0dbcf822a9cfac32fea2449a7bc7726b770a3"
)
CONTENT_TYPE = "application/json; charset=utf-8"


def test_payload_and_canonical_request() -> None:
    assert hashlib.sha256(PAYLOAD.encode()).hexdigest() == PAYLOAD_SHA256
    request = canonical_request(
        host=HOST, action="DescribeInstances", payload=PAYLOAD, content_type=CONTENT_TYPE
    )
    assert request == CANONICAL_REQUEST


def test_published_authorization() -> None:
    authorization = tc3_authorization(
        SECRET_ID,
        SECRET_KEY,
        service="cvm",
        host=HOST,
        action="DescribeInstances",
        payload=PAYLOAD,
        timestamp=TIMESTAMP,
    )
    assert authorization == AUTHORIZATION


def test_bytes_payload_signs_like_its_utf8_text() -> None:
    common = {"service": "cvm", "host": HOST, "action": "DescribeInstances"}
    as_bytes = tc3_authorization(
        SECRET_ID, SECRET_KEY, payload=PAYLOAD.encode(), timestamp=TIMESTAMP, **common
    )
    assert as_bytes == AUTHORIZATION


def test_scope_uses_the_utc_date_and_string_to_sign_layout() -> None:
    assert credential_scope("sms", TIMESTAMP) == "2019-02-25/sms/tc3_request"
    assert credential_scope("sms", 1551139199) == "2019-02-25/sms/tc3_request"  # 23:59:59 UTC
    assert credential_scope("sms", 1551139200) == "2019-02-26/sms/tc3_request"
    to_sign = string_to_sign(
        service="cvm",
        host=HOST,
        action="DescribeInstances",
        payload=PAYLOAD,
        timestamp=TIMESTAMP,
        content_type=CONTENT_TYPE,
    )
    digest = hashlib.sha256(CANONICAL_REQUEST.encode()).hexdigest()
    assert to_sign == f"TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n{digest}"
