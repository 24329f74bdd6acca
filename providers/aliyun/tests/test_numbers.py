"""Aliyun's wire form of numbers: no two recipients merge, +1 numbers are declined, not lost."""

from __future__ import annotations

import pytest
from gocomm_aliyun import AliyunSms
from gocomm_aliyun.testing import FakeAliyun
from gocomm_aliyun.vendor import wire_number
from hypothesis import given
from hypothesis import strategies as st

from gocomm.errors import InvalidRecipient, PermanentError, SendError, is_retryable
from gocomm.failover import FailoverSender
from gocomm.testing import MemorySender

from .conftest import make_settings

NANP = "+13105551234"
SAME_DIGITS_IN_CHINA = "+8613105551234"


async def test_a_nanp_number_is_not_merged_with_the_mainland_one(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    # Both would be 13105551234 on the wire, which Aliyun reads as the mainland number.
    with pytest.raises(PermanentError) as caught:
        await aliyun.send("SMS_1", {}, NANP, SAME_DIGITS_IN_CHINA)
    assert [f["PhoneNumbers"] for f in aliyun_server.accepted] == ["13105551234"]
    assert [d.recipient for d in aliyun_server.deliveries] == [SAME_DIGITS_IN_CHINA]
    error = caught.value
    assert error.unsent == (NANP,)  # still owed: another vendor may reach it
    assert error.refused == ()
    assert not is_retryable(error)
    assert NANP in str(error)


async def test_a_lone_nanp_number_is_an_invalid_recipient_without_a_request(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    with pytest.raises(InvalidRecipient, match=r"\+1 \(North American\)") as caught:
        await aliyun.send("login", {"code": "1"}, "+1 (310) 555-1234", "+14155550100")
    assert caught.value.unsent == ("+1 (310) 555-1234", "+14155550100")
    assert caught.value.code == "UnsupportedDestination"
    assert aliyun_server.server is not None and aliyun_server.server.requests == []


async def test_a_nanp_number_stays_owed_when_the_others_fail_retryably(
    aliyun: AliyunSms, aliyun_server: FakeAliyun
) -> None:
    aliyun_server.mode = "isp.SYSTEM_ERROR"
    with pytest.raises(SendError) as caught:
        await aliyun.send("login", {"code": "1"}, NANP, SAME_DIGITS_IN_CHINA)
    assert is_retryable(caught.value)
    assert caught.value.unsent == (NANP, SAME_DIGITS_IN_CHINA)


async def test_failover_takes_the_nanp_number_to_the_next_vendor(
    aliyun_server: FakeAliyun,
) -> None:
    next_vendor = MemorySender("next")
    async with FailoverSender([AliyunSms(make_settings(aliyun_server.url)), next_vendor]) as sender:
        receipt = await sender.send("login", {"code": "1"}, NANP, SAME_DIGITS_IN_CHINA)
    assert receipt is not None and receipt.vendor == "next"
    assert [m.to for m in next_vendor.sent] == [(NANP,)]  # only the declined number
    assert [d.recipient for d in aliyun_server.deliveries] == [SAME_DIGITS_IN_CHINA]


@pytest.mark.parametrize(
    ("e164", "wire"),
    [
        ("+8613800138000", "13800138000"),
        ("+85291234567", "85291234567"),
        ("+861012345678", "861012345678"),  # a Beijing landline keeps its 86
        ("+8644123456789", "8644123456789"),  # not the 44123456789 of a UK number
        ("+44123456789", "44123456789"),
        ("+13105551234", None),
        ("+1555", None),
    ],
)
def test_wire_number(e164: str, wire: str | None) -> None:
    assert wire_number(e164) == wire


def aliyun_reads(wire: str) -> str:
    """How Aliyun's SendSms reads a PhoneNumbers entry (its documented rule), as E.164."""
    if len(wire) == 11 and wire.startswith("1"):
        return f"+86{wire}"
    return f"+{wire}"


# Country codes that make collisions likely (mainland, NANP, UK, Hong Kong) and any other.
e164_numbers = st.builds(
    lambda code, rest: f"+{code}{rest}"[:16],
    st.sampled_from(["1", "86", "861", "44", "852", "7"]) | st.integers(1, 999).map(str),
    st.text("0123456789", min_size=1, max_size=13),
)


@given(e164_numbers)
def test_aliyun_reads_every_wire_number_back_as_the_number_given(e164: str) -> None:
    wire = wire_number(e164)
    if wire is not None:
        assert aliyun_reads(wire) == e164
    else:
        assert e164.startswith("+1")
