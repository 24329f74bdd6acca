"""Aliyun signatures: RPC v1 against the published worked examples, V3 against SDK vectors."""

from __future__ import annotations

from typing import Any

import pytest
from gocomm_aliyun.signing import (
    EMPTY_SHA256,
    acs3_authorization,
    acs3_canonical_request,
    percent_encode,
    rpc_signature,
    sha256_hex,
    string_to_sign,
)

# From the Alibaba Cloud docs, "Request syntax and signature method V2 for RPC APIs".
DESCRIBE_REGIONS = {
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "Format": "XML",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "SignatureVersion": "1.0",
    "Timestamp": "2016-02-23T12:46:24Z",
    "Version": "2014-05-26",
}
DESCRIBE_REGIONS_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod"
    "%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion"
    "%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
)


def test_docs_example_string_to_sign_and_signature() -> None:
    assert string_to_sign(DESCRIBE_REGIONS, "GET") == DESCRIBE_REGIONS_STRING_TO_SIGN
    assert rpc_signature(DESCRIBE_REGIONS, "testsecret", "GET") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_sdk_example() -> None:
    # aliyun/darabonba-openapi-util python/tests/test_client.py
    params = {"query": "test", "body": "test"}
    assert string_to_sign(params, "GET") == "GET&%2F&body%3Dtest%26query%3Dtest"
    assert rpc_signature(params, "secret", "GET") == "XlUyV4sXjOuX5FnjUz9IF9tm5rU="


def test_method_is_part_of_the_signature() -> None:
    params = {"query": "test", "body": "test"}
    assert string_to_sign(params).startswith("POST&%2F&")
    assert rpc_signature(params, "secret") != rpc_signature(params, "secret", "GET")


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (" ~/*-+", "%20~%2F%2A-%2B"),  # the published rule's example
        ("AZaz09-_.~", "AZaz09-_.~"),
        ("短信", "%E7%9F%AD%E4%BF%A1"),
        ('{"code":"1"}', "%7B%22code%22%3A%221%22%7D"),
    ],
)
def test_percent_encoding(raw: str, encoded: str) -> None:
    assert percent_encode(raw) == encoded


# Signature V3 (ACS3-HMAC-SHA256): vectors computed with the official SDK
# (alibabacloud-dysmsapi20170525 4.6.0 / alibabacloud_tea_openapi 0.4.6) and confirmed
# independently. The secret holds characters that would need encoding, on purpose.
V3_KEY_ID = "LTAI5tExampleKeyId"
V3_SECRET = "ExampleSecret/+=&%~*"
V3_BASIC = {
    "query": [
        ("PhoneNumbers", "13800138000"),
        ("SignName", "阿里云短信测试"),
        ("TemplateCode", "SMS_154950909"),
        ("TemplateParam", '{"code":"1234"}'),
    ],
    "headers": {
        "host": "dysmsapi.aliyuncs.com",
        "x-acs-action": "SendSms",
        "x-acs-content-sha256": EMPTY_SHA256,
        "x-acs-date": "2026-01-02T03:04:05Z",
        "x-acs-signature-nonce": "7d4f0c2e9b1a4e6f8c3d5a7b9e1f2a3c",
        "x-acs-version": "2017-05-25",
    },
    "canonical_request": (
        "POST\n/\nPhoneNumbers=13800138000&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF"
        "%A1%E6%B5%8B%E8%AF%95&TemplateCode=SMS_154950909&TemplateParam=%7B%22code%22%3A%2212"
        "34%22%7D\nhost:dysmsapi.aliyuncs.com\nx-acs-action:SendSms\nx-acs-content-sha256:e3b0"
        "c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nx-acs-date:2026-01-02T03"
        ":04:05Z\nx-acs-signature-nonce:7d4f0c2e9b1a4e6f8c3d5a7b9e1f2a3c\nx-acs-version:2017-05"
        "-25\n\nhost;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-"
        "version\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    ),
    "authorization": (
        "ACS3-HMAC-SHA256 Credential=LTAI5tExampleKeyId,SignedHeaders=host;x-acs-action;"
        "x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature="
        "14748541ccf7ea5b6e6123226c5fa5defa8196387258fff283906cc7c429b2dc"
    ),
}
V3_SPECIAL = {
    "query": [
        ("OutId", "order-42/a b"),
        ("PhoneNumbers", "13800138000,+8613900139000"),
        ("SignName", "短信签名·测试"),
        ("TemplateCode", "SMS_465830123"),
        (
            "TemplateParam",
            '{"name":"张三 ~*/+","code":"4321","product":"gocomm 😀 & 100%"}',
        ),
    ],
    "headers": {
        "host": "dysmsapi.aliyuncs.com",
        "x-acs-action": "SendSms",
        "x-acs-content-sha256": EMPTY_SHA256,
        "x-acs-credentials-provider": "static_ak",
        "x-acs-date": "2026-01-02T03:04:05Z",
        "x-acs-signature-nonce": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "x-acs-version": "2017-05-25",
    },
    "canonical_request": None,
    "authorization": (
        "ACS3-HMAC-SHA256 Credential=LTAI5tExampleKeyId,SignedHeaders=host;x-acs-action;"
        "x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;"
        "x-acs-version,Signature=a18fb8d3acc36cc7803a09a62f969145949d16573f861ccfdfdb6406b1"
        "7972e0"
    ),
}
V3_SPECIAL_CANONICAL_QUERY = (
    "OutId=order-42%2Fa%20b&PhoneNumbers=13800138000%2C%2B8613900139000&SignName=%E7%9F%AD%E4"
    "%BF%A1%E7%AD%BE%E5%90%8D%C2%B7%E6%B5%8B%E8%AF%95&TemplateCode=SMS_465830123&TemplatePara"
    "m=%7B%22name%22%3A%22%E5%BC%A0%E4%B8%89%20~%2A%2F%2B%22%2C%22code%22%3A%224321%22%2C%22p"
    "roduct%22%3A%22gocomm%20%F0%9F%98%80%20%26%20100%25%22%7D"
)


def _v3(vector: dict[str, Any], **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "method": "POST",
        "host": "dysmsapi.aliyuncs.com",
        "path": "/",
        "query": vector["query"],
        "headers": vector["headers"],
        "body": "",
    }
    arguments.update(overrides)
    return acs3_authorization(V3_KEY_ID, V3_SECRET, **arguments)


@pytest.mark.parametrize("vector", [V3_BASIC, V3_SPECIAL], ids=["basic", "special-characters"])
def test_v3_vectors(vector: dict[str, Any]) -> None:
    assert _v3(vector) == vector["authorization"]
    # The query as a mapping, in another order, and header names in another case sign alike.
    shuffled = dict(reversed(vector["query"]))
    upper = {name.upper(): value for name, value in vector["headers"].items()}
    assert _v3(vector, query=shuffled, headers=upper, body=b"") == vector["authorization"]


def test_v3_canonical_request() -> None:
    request, names = acs3_canonical_request(
        method="post", host="dysmsapi.aliyuncs.com", path="/", query=V3_BASIC["query"],
        headers=V3_BASIC["headers"], body=b"",
    )  # fmt: skip
    assert request == V3_BASIC["canonical_request"]
    assert names == (
        "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
    )
    special, _ = acs3_canonical_request(
        method="POST", host="dysmsapi.aliyuncs.com", path="/", query=V3_SPECIAL["query"],
        headers=V3_SPECIAL["headers"], body="",
    )  # fmt: skip
    assert special.split("\n")[2] == V3_SPECIAL_CANONICAL_QUERY


def test_v3_signs_only_host_content_type_and_x_acs_headers() -> None:
    headers = {**V3_BASIC["headers"], "user-agent": "gocomm", "accept": "application/json"}
    assert _v3(V3_BASIC, headers=headers) == V3_BASIC["authorization"]
    # host comes from the argument when the headers leave it out.
    without_host = {k: v for k, v in V3_BASIC["headers"].items() if k != "host"}
    assert _v3(V3_BASIC, headers=without_host) == V3_BASIC["authorization"]
    with pytest.raises(ValueError, match="host"):
        _v3(V3_BASIC, host="elsewhere.example")
    # A body and its content-type are part of what is signed.
    form = "PhoneNumbers=13800138000"
    with_body = {**V3_BASIC["headers"], "content-type": "application/x-www-form-urlencoded",
                 "x-acs-content-sha256": sha256_hex(form)}  # fmt: skip
    signed = _v3(V3_BASIC, query=[], headers=with_body, body=form)
    assert "SignedHeaders=content-type;host;" in signed
    assert signed != _v3(V3_BASIC, query=[], headers=with_body, body=form + "0")


def test_v3_empty_values_stay_and_none_values_go() -> None:
    request, _ = acs3_canonical_request(
        method="POST", host="h", path="/", query=[("B", ""), ("A", None), ("C", "x")],
        headers={}, body=b"",
    )  # fmt: skip
    assert request.split("\n")[2] == "B=&C=x"
    assert sha256_hex(b"") == EMPTY_SHA256
