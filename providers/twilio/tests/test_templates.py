"""Body templates: plain ``{name}`` fields only, rendered without str.format."""

from __future__ import annotations

import pytest
from gocomm_twilio.templates import MAX_BODY_CHARS, BodyTemplate

from gocomm.errors import InvalidMessage


def test_parse_finds_the_fields_in_order_of_first_use() -> None:
    template = BodyTemplate.parse("Hi {name}, code {code}; bye {name} {{x}}")
    assert template.fields == ("name", "code")
    assert template.text == "Hi {name}, code {code}; bye {name} {{x}}"


def test_render_fills_fields_and_ignores_extra_args() -> None:
    template = BodyTemplate.parse("Hi {name}, code {code}; {{literal}} {name}")
    body = template.render({"name": "Ana", "code": "12", "unused": "x"}, biz="login")
    assert body == "Hi Ana, code 12; {literal} Ana"


def test_values_are_never_formatted_again() -> None:
    # A value that looks like a format field, or reaches for attributes, is copied as text.
    template = BodyTemplate.parse("code {code}")
    body = template.render({"code": "{0.__class__.__mro__} {code!r}"}, biz="login")
    assert body == "code {0.__class__.__mro__} {code!r}"


def test_non_ascii_text_and_values_survive() -> None:
    template = BodyTemplate.parse("验证码 {code} — Grüße")
    assert template.render({"code": "🙂42"}, biz="login") == "验证码 🙂42 — Grüße"


def test_missing_fields_are_all_named() -> None:
    template = BodyTemplate.parse("{a} {b} {c}")
    with pytest.raises(InvalidMessage) as caught:
        template.render({"b": "1", "secret-looking": "v4lue"}, biz="login")
    text = str(caught.value)
    assert "'a', 'c'" in text
    assert "'login'" in text
    assert "v4lue" not in text  # names of args, never their values
    assert caught.value.vendor == "twilio"


@pytest.mark.parametrize(
    "text",
    [
        "{}",
        "{0}",
        "{a.b}",
        "{a[0]}",
        "{a!s}",
        "{a:{b}}",
        "{a:>5}",
        "{ a }",
        "{",
        "}",
        "a {b",
        "",
    ],
)
def test_unsafe_or_broken_templates_are_refused(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        BodyTemplate.parse(text)
    assert not isinstance(caught.value, InvalidMessage)  # a configuration error, not a send's


def test_body_length_is_checked_before_sending() -> None:
    template = BodyTemplate.parse("{x}")
    assert len(template.render({"x": "y" * MAX_BODY_CHARS}, biz="b")) == MAX_BODY_CHARS
    with pytest.raises(InvalidMessage, match=f"{MAX_BODY_CHARS + 1} characters"):
        template.render({"x": "y" * (MAX_BODY_CHARS + 1)}, biz="b")
