"""Recipient validation: clear InvalidRecipient errors naming the value."""

from __future__ import annotations

import pytest

from gocomm.errors import InvalidRecipient
from gocomm.recipients import validate_email, validate_phone


@pytest.mark.parametrize(
    "addr", ["alice@example.com", "a.b+tag@sub.example.co.uk", "x_y@xn--bcher-kva.example",
             "o'neil@example.org", "user@bücher.example"]
)
def test_valid_emails(addr: str) -> None:
    assert validate_email(addr) == addr


@pytest.mark.parametrize(
    "addr",
    [
        "", "plain", "@example.com", "alice@", "alice@localhost", "alice@exa mple.com",
        "alice@example.com\r\nBcc: victim@example.com", "alice\n@example.com",
        "Alice <alice@example.com>", "a..b@example.com", ".a@example.com",
        "alice@-example.com", "x" * 65 + "@example.com",
    ],
)
def test_invalid_emails_name_the_value(addr: str) -> None:
    with pytest.raises(InvalidRecipient) as info:
        validate_email(addr)
    assert repr(addr) in str(info.value)
    assert "alice@example.com" in str(info.value)  # says what a good one looks like


@pytest.mark.parametrize(
    ("number", "normalised"),
    [
        ("+8613800138000", "+8613800138000"),
        ("+1 (555) 000-1111", "+15550001111"),
        ("+44 20.7946.0018", "+442079460018"),
    ],
)
def test_valid_phones(number: str, normalised: str) -> None:
    assert validate_phone(number) == normalised


@pytest.mark.parametrize(
    "number", ["", "13800138000", "+0123456", "+1", "+1234567890123456", "+1555abc1111",
               "+1555\n0001111", "++15550001111"]
)
def test_invalid_phones_name_the_value(number: str) -> None:
    with pytest.raises(InvalidRecipient) as info:
        validate_phone(number)
    assert repr(number) in str(info.value)
    assert "E.164" in str(info.value)


def test_non_string_is_refused() -> None:
    with pytest.raises(InvalidRecipient):
        validate_phone(8613800138000)  # type: ignore[arg-type]
    with pytest.raises(InvalidRecipient):
        validate_email(None)  # type: ignore[arg-type]
