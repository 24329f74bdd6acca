"""Email and Attachment: header injection is refused, collections are frozen."""

from __future__ import annotations

import pytest

from gocomm.errors import InvalidMessage
from gocomm.messages import Attachment, Email


def test_defaults_and_freezing() -> None:
    email = Email(subject="Hi", text="hello", cc=["b@example.com"], bcc="c@example.com")  # type: ignore[arg-type]
    assert email.cc == ("b@example.com",)
    assert email.bcc == ("c@example.com",)
    assert email.reply_to == ()
    assert dict(email.headers) == {}
    with pytest.raises(TypeError):
        email.headers["X-Evil"] = "1"  # type: ignore[index]


def test_headers_are_copied() -> None:
    headers = {"X-Campaign": "welcome"}
    email = Email(subject="Hi", text="x", headers=headers)
    headers["X-Campaign"] = "changed"
    assert email.headers["X-Campaign"] == "welcome"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"subject": "Hi\r\nBcc: victim@example.com"},
        {"subject": "Hi", "sender": "a@example.com\nBcc: x@example.com"},
        {"subject": "Hi", "reply_to": ("a@example.com\r",)},
        {"subject": "Hi", "cc": ("a@example.com\n",)},
        {"subject": "Hi", "bcc": ("\ra@example.com",)},
        {"subject": "Hi", "headers": {"X-A\r\nB": "v"}},
        {"subject": "Hi", "headers": {"X-A": "v\nBcc: x@example.com"}},
        {"subject": "Hi", "headers": {"X A": "v"}},
    ],
)
def test_line_breaks_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidMessage) as info:
        Email(text="body", **kwargs)  # type: ignore[arg-type]
    assert "CR or LF" in str(info.value) or "field name" in str(info.value)


def test_a_bad_header_value_is_not_quoted_back() -> None:
    with pytest.raises(InvalidMessage) as info:
        Email(subject="Hi", text="x", headers={"X-Api-Token": "s3cr3t-token\r\nBcc: x@example.com"})
    assert "X-Api-Token" in str(info.value)
    assert "s3cr3t" not in str(info.value)


def test_a_body_is_required() -> None:
    with pytest.raises(InvalidMessage, match="text or an html body"):
        Email(subject="Hi")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"filename": "a\r\n.txt"},
        {"filename": "a.txt", "content_type": "text/plain\r\nX: y"},
        {"filename": "a.txt", "content_type": "textplain"},
        {"filename": "a.txt", "content_id": "id\n"},
    ],
)
def test_bad_attachments(kwargs: dict[str, str]) -> None:
    with pytest.raises(InvalidMessage):
        Attachment(content=b"x", **kwargs)  # type: ignore[arg-type]


def test_attachment_defaults() -> None:
    att = Attachment("report.pdf", b"%PDF")
    assert att.content_type == "application/octet-stream"
    assert att.content_id is None
