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


# Every character str.splitlines() ends a line at, every C0 control but TAB, and DEL.
_LINE_ENDS = ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
_CONTROLS = ["\x00", *(chr(c) for c in range(1, 9)), *(chr(c) for c in range(0x0E, 0x20)), "\x7f"]


def test_the_refused_set_covers_every_splitlines_line_end() -> None:
    ends = {c for c in map(chr, range(0x110000)) if len(f"a{c}b".splitlines()) > 1}
    assert ends <= {*_LINE_ENDS, "\r", "\n"}


@pytest.mark.parametrize("char", _LINE_ENDS + _CONTROLS)
@pytest.mark.parametrize(
    "place",
    ["subject", "sender", "reply_to", "cc", "bcc", "header name", "header value", "attachment"],
)
def test_control_characters_are_refused_when_the_email_is_built(char: str, place: str) -> None:
    kwargs: dict[str, object] = {"subject": "Hi", "text": "body"}
    bad = f"a{char}b@example.com"
    if place == "subject":
        kwargs["subject"] = f"Hi{char}there"
    elif place == "sender":
        kwargs["sender"] = bad
    elif place in ("reply_to", "cc", "bcc"):
        kwargs[place] = (bad,)
    elif place == "header name":
        kwargs["headers"] = {f"X-A{char}": "v"}
    elif place == "header value":
        kwargs["headers"] = {"X-Token": f"secret{char}value"}
    else:
        with pytest.raises(InvalidMessage, match=r"control character|CR or LF"):
            Attachment(f"report{char}.pdf", b"%PDF")
        return
    with pytest.raises(InvalidMessage, match=r"control character|CR or LF") as info:
        Email(**kwargs)  # type: ignore[arg-type]
    assert "secret" not in str(info.value)


def test_tab_and_ordinary_unicode_stay_allowed() -> None:
    email = Email(subject="[12] 验证码\tÜnïcödé ✉️ — naïve café", text="x", headers={"X-A": "a\tb"})
    assert "\t" in email.subject
    assert Attachment("résumé 2024.pdf", b"x").filename == "résumé 2024.pdf"


@pytest.mark.parametrize("field", ["subject", "text", "html"])
def test_a_lone_surrogate_is_refused(field: str) -> None:
    kwargs = {"subject": "Hi", "text": "x", field: "code \ud83d"}
    with pytest.raises(InvalidMessage, match="lone surrogate"):
        Email(**kwargs)
