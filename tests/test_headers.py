"""Subjects, display names and header values decode back exactly (a hypothesis property).

Python 3.11 and 3.12 fold encoded words so that the space after one is lost ("naïve café"
comes back as "naïvecafé"); the builder writes these headers itself.
"""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gocomm.errors import InvalidMessage
from gocomm.headers import LINE_LENGTH
from gocomm.messages import Email
from gocomm.mime import build_envelope

_ASCII_WORDS = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='<>"\\(),;:@'),
    min_size=1,
    max_size=12,
)
_OTHER_WORDS = st.text(
    st.characters(
        min_codepoint=0xA0,
        exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
        exclude_characters="\x85",
    ),
    min_size=1,
    max_size=12,
)
_LONG_WORDS = st.text(st.sampled_from("aé验✉"), min_size=60, max_size=120)
_WORDS = st.lists(st.one_of(_ASCII_WORDS, _OTHER_WORDS, _LONG_WORDS), min_size=1, max_size=25)
_TEXTS = _WORDS.map(" ".join)
# Display names stay under the 600-byte limit (4 words of at most 120 bytes).
_NAME_LONG_WORDS = st.text(st.sampled_from("aé验✉"), min_size=30, max_size=40)
_NAMES = st.lists(
    st.one_of(_ASCII_WORDS, _OTHER_WORDS, _NAME_LONG_WORDS), min_size=1, max_size=4
).map(" ".join)


def _parse(email: Email, *to: str) -> EmailMessage:
    envelope = build_envelope(email, to or ("to@example.com",), None)
    head = envelope.data.split(b"\r\n\r\n", 1)[0]
    subject = head[head.index(b"\r\nSubject:") + 2 :].split(b"\r\n")
    while len(subject) > 1 and not subject[1].startswith(b" "):
        subject.pop()  # keep the Subject's lines only
    # The Subject folds within RFC 5322's 78 characters; an address header at least between
    # addresses (a long non-ASCII display name is one encoded word, see gocomm.headers).
    assert all(len(line) <= LINE_LENGTH for line in subject[:1]), subject
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    msg = message_from_bytes(envelope.data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


@settings(max_examples=300, deadline=None)
@given(subject=_TEXTS)
@example("[12] 验证码 Ünïcödé ✉️ — naïve café")
@example("naïve café")
@example("=?utf-8?q?not_an_encoded_word?= but text")
@example("")
def test_subjects_round_trip(subject: str) -> None:
    msg = _parse(Email(subject=subject, text="x", sender="a@example.com"))
    assert str(msg["Subject"]) == subject


@settings(max_examples=150, deadline=None)
@given(name=_NAMES, other=_NAMES)
@example("Zoë Ünïcödé naïve café 验证码", "naïve café")
def test_display_names_round_trip(name: str, other: str) -> None:
    email = Email(
        subject="s",
        text="x",
        sender=f"{name} <a@example.com>",
        reply_to=(f"{other} <r@example.com>",),
    )
    msg = _parse(email, f"{other} <b@example.com>", f"{name} <c@example.com>")
    assert [a.display_name for a in msg["From"].addresses] == [name]
    assert [a.display_name for a in msg["Reply-To"].addresses] == [other]
    assert [(a.display_name, a.addr_spec) for a in msg["To"].addresses] == [
        (other, "b@example.com"),
        (name, "c@example.com"),
    ]


@settings(max_examples=100, deadline=None)
@given(value=_TEXTS)
@example("naïve café")
def test_custom_header_values_round_trip(value: str) -> None:
    msg = _parse(Email(subject="s", text="x", sender="a@example.com", headers={"X-Note": value}))
    assert str(msg["X-Note"]) == value


def test_a_display_name_too_long_for_one_line_is_refused() -> None:
    with pytest.raises(InvalidMessage, match=r"display name of a@example\.com is 800 bytes"):
        build_envelope(
            Email(subject="s", text="x", sender=f"{'é' * 400} <a@example.com>"),
            ("b@example.com",),
            None,
        )
