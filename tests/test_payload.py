"""Message arguments as JSON, for the queue and for idempotency fingerprints."""

from __future__ import annotations

import json

import pytest

from gocomm import ConfigError, Email
from gocomm.messages import Attachment
from gocomm.payload import PayloadError, decode_args, encode_args, fingerprint


def test_an_email_with_attachments_survives_json() -> None:
    mail = Email(
        subject="Invoice",
        text="see attached",
        html="<p>see attached</p>",
        sender="billing@example.com",
        reply_to=("help@example.com",),
        cc=("boss@example.com",),
        bcc=("audit@example.com",),
        headers={"X-Order": "42"},
        attachments=(
            Attachment("invoice.pdf", b"%PDF\x00\xff", "application/pdf"),
            Attachment("logo.png", b"\x89PNG", "image/png", content_id="logo"),
        ),
    )
    wire = json.loads(json.dumps(encode_args("email", mail)))
    assert decode_args("email", wire) == mail


def test_sms_params_survive_json() -> None:
    params = {"code": "1234", "name": "Ada"}
    assert decode_args("sms", json.loads(json.dumps(encode_args("sms", params)))) == params


@pytest.mark.parametrize(
    ("channel", "args", "message"),
    [
        ("sms", {"code": 1234}, "'code'.*int.*str()"),
        ("sms", ["1234"], "mapping"),
        ("email", {"subject": "x"}, "gocomm.messages.Email"),
        ("fax", {}, "unknown channel 'fax'"),
    ],
)
def test_what_json_cannot_carry_is_named(channel: str, args: object, message: str) -> None:
    with pytest.raises(PayloadError, match=message) as caught:
        encode_args(channel, args)
    assert isinstance(caught.value, ConfigError)


def test_a_malformed_payload_is_a_clear_error() -> None:
    with pytest.raises(PayloadError, match="malformed email payload"):
        decode_args("email", {"__email__": 1, "subject": "x"})
    with pytest.raises(PayloadError, match="malformed sms payload"):
        decode_args("sms", ["x"])


def test_fingerprints_ignore_mapping_order_and_see_every_difference() -> None:
    assert fingerprint("b", {"x": "1", "y": "2"}) == fingerprint("b", {"y": "2", "x": "1"})
    assert fingerprint("b", {"x": "1"}) != fingerprint("c", {"x": "1"})
    assert fingerprint("b", {"x": "1"}) != fingerprint("b", {"x": "2"})
    assert fingerprint("b", Email(subject="s", text="t")) != fingerprint(
        "b", Email(subject="s", text="u")
    )
