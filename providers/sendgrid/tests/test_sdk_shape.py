"""The mail/send JSON gocomm writes is the JSON SendGrid's own SDK (sendgrid-python) builds for
the same message: same fields, same nesting, same values."""

from __future__ import annotations

import base64
from typing import Any

from gocomm_sendgrid import SendGridEmail, SendGridSettings
from sendgrid.helpers import mail as sdk

from gocomm.messages import Attachment, Email

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def _gocomm(message: Email, *to: str, templates: dict[str, str] | None = None) -> Any:
    vendor = SendGridEmail(SendGridSettings(api_key="SG.x", templates=templates or {}))
    return vendor.payload(vendor.check("receipt", message, to))


def _personalizations(
    mail: sdk.Mail, to: list[str], cc: list[str], bcc: list[str], data: Any = None
) -> None:
    # The SDK puts each personalization (and attachment) it is given first: add them backwards.
    for index, address in reversed(list(enumerate(to))):
        personalization = sdk.Personalization()
        personalization.add_to(sdk.To(address))
        if index == 0:
            for copy in cc:
                personalization.add_cc(sdk.Cc(copy))
            for copy in bcc:
                personalization.add_bcc(sdk.Bcc(copy))
        if data is not None:
            personalization.dynamic_template_data = data
        mail.add_personalization(personalization)


def test_content_reply_to_headers_and_attachments_match_the_sdk() -> None:
    message = Email(
        subject="Reçu n°42",
        text="merci",
        html='<p>merci <img src="cid:logo"></p>',
        sender="Shop Ünïcode <shop@example.com>",
        reply_to=("Aide <help@example.com>",),
        cc=("carol@example.com",),
        bcc=("audit@example.com",),
        headers={"X-Order": "42"},
        attachments=(
            Attachment("relevé.csv", b"a,b\n", "text/csv"),
            Attachment("logo.png", PNG, "image/png", content_id="logo"),
        ),
    )
    mail = sdk.Mail()
    mail.from_email = sdk.From("shop@example.com", "Shop Ünïcode")
    mail.subject = sdk.Subject("Reçu n°42")
    _personalizations(
        mail, ["ada@example.com", "bob@example.com"], ["carol@example.com"], ["audit@example.com"]
    )
    mail.reply_to = sdk.ReplyTo("help@example.com", "Aide")
    mail.add_content(sdk.Content("text/plain", "merci"))
    mail.add_content(sdk.Content("text/html", '<p>merci <img src="cid:logo"></p>'))
    mail.add_header(sdk.Header("X-Order", "42"))
    mail.add_attachment(
        sdk.Attachment(
            sdk.FileContent(base64.b64encode(PNG).decode()),
            sdk.FileName("logo.png"),
            sdk.FileType("image/png"),
            sdk.Disposition("inline"),
            sdk.ContentId("logo"),
        )
    )
    mail.add_attachment(
        sdk.Attachment(
            sdk.FileContent(base64.b64encode(b"a,b\n").decode()),
            sdk.FileName("relevé.csv"),
            sdk.FileType("text/csv"),
            sdk.Disposition("attachment"),
        )
    )
    assert _gocomm(message, "ada@example.com", "bob@example.com") == mail.get()


def test_a_dynamic_template_matches_the_sdk() -> None:
    message = Email(subject="Bienvenue", text="Salut", sender="shop@example.com")
    mail = sdk.Mail()
    mail.from_email = sdk.From("shop@example.com")
    data = {"subject": "Bienvenue", "text": "Salut"}
    _personalizations(mail, ["ada@example.com", "bob@example.com"], [], [], data)
    mail.template_id = sdk.TemplateId("d-0123")
    expected = mail.get()
    got = _gocomm(message, "ada@example.com", "bob@example.com", templates={"receipt": "d-0123"})
    assert got == expected
