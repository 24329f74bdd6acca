"""RPC signature v1 against Alibaba Cloud's published worked examples."""

from __future__ import annotations

import pytest
from gocomm_aliyun.signing import percent_encode, rpc_signature, string_to_sign

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
