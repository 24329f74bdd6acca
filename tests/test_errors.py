"""The error tree of DESIGN §3: constructors, unsent, is_retryable."""

from __future__ import annotations

import asyncio

import pytest

import gocomm
from gocomm.errors import (
    AllSendersFailed,
    CommError,
    ConfigError,
    InvalidMessage,
    InvalidRecipient,
    Limited,
    LimiterError,
    PermanentError,
    RetryExhausted,
    SendError,
    SendTimeout,
    is_retryable,
    unsent_of,
)


def test_tree_shape() -> None:
    assert issubclass(SendError, CommError)
    assert issubclass(PermanentError, SendError)
    assert issubclass(InvalidRecipient, PermanentError)
    assert issubclass(InvalidRecipient, ValueError)
    assert issubclass(InvalidMessage, PermanentError)
    assert issubclass(InvalidMessage, ValueError)
    assert issubclass(SendTimeout, SendError)
    assert issubclass(SendTimeout, TimeoutError)
    for cls in (Limited, LimiterError, AllSendersFailed, RetryExhausted, ConfigError):
        assert issubclass(cls, CommError)
    assert issubclass(AllSendersFailed, ExceptionGroup)
    assert issubclass(ConfigError, ValueError)


def test_reexported_from_package() -> None:
    assert gocomm.SendError is SendError
    assert gocomm.AllSendersFailed is AllSendersFailed
    assert gocomm.is_retryable is is_retryable


def test_send_error_fields() -> None:
    err = SendError("throttled", vendor="aliyun", code="isv.BUSINESS_LIMIT_CONTROL",
                    retry_after=2.5, unsent=["+8613800138000"])
    assert (err.vendor, err.code, err.retry_after) == ("aliyun", "isv.BUSINESS_LIMIT_CONTROL", 2.5)
    assert err.unsent == ("+8613800138000",)
    assert str(err) == "throttled"
    assert SendError("x").unsent is None


def test_limited_names_key_and_wait() -> None:
    err = Limited("sms:+15550001111", retry_after=1.5)
    assert err.key == "sms:+15550001111"
    assert err.retry_after == 1.5
    assert "sms:+15550001111" in str(err) and "1.5" in str(err)


def test_retry_exhausted() -> None:
    cause = SendTimeout("slow", vendor="smtp")
    err = RetryExhausted(3, cause, unsent=["a@example.com"])
    assert err.attempts == 3
    assert err.last_error is cause
    assert "3 attempts" in str(err) and "slow" in str(err)
    assert err.unsent == ("a@example.com",)


def test_all_senders_failed_is_an_exception_group() -> None:
    first, second = SendError("down", vendor="a"), PermanentError("bad", vendor="b")
    err = AllSendersFailed("all vendors failed", [first, second], unsent=["+15550001111"])
    assert err.exceptions == (first, second)
    assert err.message == "all vendors failed"
    assert err.unsent == ("+15550001111",)
    assert "down" in str(err) and "bad" in str(err)
    matched, rest = err.split(PermanentError)
    assert matched is not None
    assert rest is not None
    assert matched.exceptions == (second,)
    assert rest.exceptions == (first,)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (SendError("x"), True),
        (SendTimeout("x"), True),
        (OSError("net"), True),
        (PermanentError("x"), False),
        (InvalidRecipient("x"), False),
        (InvalidMessage("x"), False),
        (ConfigError("x"), False),
        (Limited("k"), False),
        (LimiterError("x"), True),
        (AllSendersFailed("m", [PermanentError("a"), SendError("b")]), True),
        (AllSendersFailed("m", [PermanentError("a"), InvalidRecipient("b")]), False),
        (RetryExhausted(2, SendError("b")), True),
        (RetryExhausted(2, PermanentError("b")), False),
        (asyncio.CancelledError(), False),
        (KeyboardInterrupt(), False),
    ],
)
def test_is_retryable(exc: BaseException, expected: bool) -> None:
    assert is_retryable(exc) is expected


def test_unsent_of_keeps_order_of_to() -> None:
    to = ("+1", "+2", "+3")
    assert unsent_of(SendError("x"), to) == to
    assert unsent_of(SendError("x", unsent=["+3", "+1"]), to) == ("+1", "+3")
    assert unsent_of(SendError("x", unsent=[]), to) == ()
    assert unsent_of(ValueError("x"), to) == to
