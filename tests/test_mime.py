"""Message building: MIME structure, headers, envelope, and refusal of bad input."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from gocomm.errors import InvalidMessage, InvalidRecipient
from gocomm.messages import Attachment, Email
from gocomm.mime import Envelope, build_envelope, parse_address

SENDER = "App <app@example.com>"


def parse(envelope: Envelope) -> EmailMessage:
    msg = message_from_bytes(envelope.data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_text_message_headers_and_envelope() -> None:
    email = Email(subject="Hello", text="Body text", reply_to=("Help <help@example.com>",))
    env = build_envelope(email, ("alice@example.com",), SENDER)
    msg = parse(env)
    assert env.sender == "app@example.com"
    assert env.to == ("alice@example.com",)
    assert msg["From"] == "App <app@example.com>"
    assert msg["To"] == "alice@example.com"
    assert msg["Reply-To"] == "Help <help@example.com>"
    assert msg["Subject"] == "Hello"
    assert msg["Date"]
    assert msg["Message-ID"] == env.message_id
    assert env.message_id.startswith("<") and env.message_id.endswith("@example.com>")
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().strip() == "Body text"
    assert b"\r\n" in env.data and b"\n" not in env.data.replace(b"\r\n", b"")


def test_email_sender_wins_over_the_default() -> None:
    env = build_envelope(
        Email(subject="s", text="t", sender="me@example.org"), ("a@b.com",), SENDER
    )
    assert env.sender == "me@example.org"
    assert parse(env)["From"] == "me@example.org"


def test_missing_sender_names_what_to_set() -> None:
    with pytest.raises(InvalidMessage, match=r"Email\.sender.*`sender` setting"):
        build_envelope(Email(subject="s", text="t"), ("a@b.com",), None)


def test_html_alternative_with_inline_image_and_attachment() -> None:
    email = Email(
        subject="Report",
        text="plain version",
        html='<p>html version <img src="cid:logo"></p>',
        attachments=(
            Attachment("logo.png", b"\x89PNG fake", "image/png", content_id="logo"),
            Attachment("report.pdf", b"%PDF-1.4 fake", "application/pdf"),
        ),
    )
    msg = parse(build_envelope(email, ("a@example.com",), SENDER))
    assert msg.get_content_type() == "multipart/mixed"
    body, attachment = msg.iter_parts()
    assert body.get_content_type() == "multipart/alternative"
    text, related = body.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html, image = related.iter_parts()
    assert html.get_content_type() == "text/html"
    assert "cid:logo" in html.get_content()
    assert image["Content-ID"] == "<logo>"
    assert image.get_content_disposition() == "inline"
    assert image.get_content() == b"\x89PNG fake"
    assert attachment.get_filename() == "report.pdf"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_content() == b"%PDF-1.4 fake"


def test_html_only() -> None:
    msg = parse(build_envelope(Email(subject="s", html="<b>hi</b>"), ("a@b.com",), SENDER))
    assert msg.get_content_type() == "text/html"


def test_cc_in_header_bcc_only_in_envelope() -> None:
    email = Email(
        subject="s", text="t", cc=("Carol <carol@example.com>",), bcc=("dan@example.com",)
    )
    env = build_envelope(email, ("alice@example.com",), SENDER)
    msg = parse(env)
    assert msg["Cc"] == "Carol <carol@example.com>"
    assert msg["Bcc"] is None
    assert b"dan@example.com" not in env.data
    assert env.recipients == ("alice@example.com", "carol@example.com", "dan@example.com")
    assert env.originals["carol@example.com"] == "Carol <carol@example.com>"


def test_an_address_gets_one_rcpt() -> None:
    email = Email(subject="s", text="t", cc=("alice@example.com",), bcc=("ALICE@example.com",))
    env = build_envelope(email, ("alice@example.com", "alice@example.com"), SENDER)
    assert env.recipients == ("alice@example.com",)


def test_non_ascii_is_encoded_for_any_server() -> None:
    email = Email(subject="Grüße 你好", text="Ünïcode body ✓", sender="Zoë <zoe@bücher.example>")
    env = build_envelope(email, ("a@example.com",), None)
    env.data.decode("ascii")  # 7-bit clean: no 8BITMIME or SMTPUTF8 needed
    msg = parse(env)
    assert msg["Subject"] == "Grüße 你好"
    assert msg.get_content().strip() == "Ünïcode body ✓"
    assert env.sender == "zoe@xn--bcher-kva.example"


def test_custom_headers_kept_managed_ones_refused() -> None:
    email = Email(
        subject="s", text="t", headers={"X-Campaign": "spring", "List-Unsubscribe": "<x>"}
    )
    msg = parse(build_envelope(email, ("a@b.com",), SENDER))
    assert msg["X-Campaign"] == "spring"
    with pytest.raises(InvalidMessage, match=r"'Bcc'.*Email\.bcc"):
        build_envelope(
            Email(subject="s", text="t", headers={"Bcc": "x@y.com"}), ("a@b.com",), SENDER
        )
    with pytest.raises(InvalidMessage, match="X-Ünï"):
        build_envelope(Email(subject="s", text="t", headers={"X-Ünï": "v"}), ("a@b.com",), SENDER)


@pytest.mark.parametrize(
    ("to", "email", "error", "named"),
    [
        (("a@b.com\r\nBcc: evil@x.com",), Email(subject="s", text="t"), InvalidRecipient, "evil"),
        (("not-an-address",), Email(subject="s", text="t"), InvalidRecipient, "not-an-address"),
        (("a@b.com",), Email(subject="s", text="t", cc=("c@",)), InvalidRecipient, "cc"),
        (("a@b.com",), Email(subject="s", text="t", bcc=("x y@z.com",)), InvalidRecipient, "bcc"),
        (("a@b.com",), Email(subject="s", text="t", reply_to=("nope",)), InvalidMessage, "nope"),
        (("a@b.com",), Email(subject="s", text="t", sender="Bad <x>"), InvalidMessage, "sender"),
        ((), Email(subject="s", text="t"), InvalidRecipient, "no recipient"),
    ],
)
def test_bad_input_is_refused(
    to: tuple[str, ...], email: Email, error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named):
        build_envelope(email, to, SENDER)


def test_crlf_in_email_fields_is_refused_by_the_model() -> None:
    with pytest.raises(InvalidMessage):
        Email(subject="s", text="t", cc=("a@b.com\nBcc: x@y.com",))
    with pytest.raises(InvalidMessage):
        Email(subject="Hi\r\nBcc: x@y.com", text="t")


def test_not_an_email() -> None:
    with pytest.raises(InvalidMessage, match="dict"):
        build_envelope({"code": "1"}, ("a@b.com",), SENDER)


def test_bad_content_id() -> None:
    email = Email(
        subject="s", html="<p/>", attachments=(Attachment("a.png", b"x", "image/png", "a b"),)
    )
    with pytest.raises(InvalidMessage, match="content_id"):
        build_envelope(email, ("a@b.com",), SENDER)


def test_parse_address_display_name() -> None:
    address = parse_address('"Doe, Jane" <jane@example.com>', "sender")
    assert (address.display_name, address.addr_spec) == ("Doe, Jane", "jane@example.com")


def test_long_and_non_ascii_headers_are_encoded_and_folded() -> None:
    to = tuple(f"recipient{i}@example.com" for i in range(12))
    email = Email(subject="A subject " * 12, text="t", reply_to=("Jürgen <j@example.com>",))
    env = build_envelope(email, to, SENDER)
    head = env.data.split(b"\r\n\r\n")[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))  # folded
    head.decode("ascii")  # encoded
    msg = parse(env)
    assert [a.addr_spec for a in msg["To"].addresses] == list(to)
    assert msg["Subject"] == email.subject
    assert msg["Reply-To"].addresses[0].display_name == "Jürgen"


def test_display_names_with_specials_are_quoted() -> None:
    email = Email(subject="s", text="t", sender="Doe, Jane (Ops) <jane@example.com>")
    msg = parse(build_envelope(email, ("a@b.com",), None))
    [address] = msg["From"].addresses
    assert (address.display_name, address.addr_spec) == ("Doe, Jane (Ops)", "jane@example.com")
