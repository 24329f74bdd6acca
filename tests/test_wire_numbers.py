"""No two distinct recipients ever share a wire number, in any SMS vendor (issue 9).

Each HTTP SMS vendor maps an E.164 number to the form its API takes (``_vendor_number``);
two recipients mapped to one form would become one message, and one of them would be lost
without an error. Aliyun drops ``+86`` and ``+``, Tencent Cloud and Twilio keep E.164.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from gocomm_aliyun import AliyunSettings, AliyunSms
from gocomm_tencentcloud import TencentCloudSettings, TencentCloudSms
from gocomm_twilio import TwilioSettings, TwilioSms
from hypothesis import given
from hypothesis import strategies as st

from gocomm.httpvendor import HttpSmsVendor
from gocomm.recipients import validate_phone


@pytest.fixture(scope="module")
def vendors() -> Iterator[list[HttpSmsVendor]]:
    built: list[HttpSmsVendor] = [
        AliyunSms(
            AliyunSettings(access_key_id="id", access_key_secret="secret", sign_name="s")  # type: ignore[arg-type]
        ),
        TencentCloudSms(
            TencentCloudSettings(secret_id="id", secret_key="key", sdk_app_id="1", sign_name="s")  # type: ignore[arg-type]
        ),
        TwilioSms(
            TwilioSettings(account_sid="AC" + "0" * 32, auth_token="t", from_number="+15005550006")  # type: ignore[arg-type]
        ),
    ]
    yield built
    for vendor in built:
        asyncio.run(vendor.aclose())


# Collisions come from numbers that share their digits after different country codes (mainland
# China, NANP, UK, Hong Kong, any other): draw groups of those.
codes = st.sampled_from(["1", "86", "861", "8644", "44", "852"]) | st.integers(1, 999).map(str)
groups = st.builds(
    lambda rest, prefixes: [validate_phone(f"+{code}{rest}"[:16]) for code in prefixes],
    st.text("0123456789", min_size=1, max_size=13),
    st.lists(codes, min_size=1, max_size=6),
)


@given(st.lists(groups, min_size=1, max_size=6))
def test_distinct_recipients_never_share_a_wire_number(
    vendors: list[HttpSmsVendor], drawn: list[list[str]]
) -> None:
    recipients = list(dict.fromkeys(number for group in drawn for number in group))
    for vendor in vendors:
        wire = [vendor._vendor_number(number) for number in recipients]
        assert len(set(wire)) == len(recipients), vendor.name


def test_the_numbers_the_issue_found_merged(vendors: list[HttpSmsVendor]) -> None:
    for vendor in vendors:
        pairs = [("+13105551234", "+8613105551234"), ("+8644123456789", "+44123456789")]
        for first, second in pairs:
            assert vendor._vendor_number(first) != vendor._vendor_number(second), vendor.name
