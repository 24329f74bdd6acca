"""FakeResend against Resend's official Python SDK: the fake accepts what the SDK writes,
answers in the shape the SDK reads, and the vendor writes the body the SDK writes for the same
message."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
import resend as resend_sdk
from gocomm_resend import ResendEmail
from gocomm_resend.testing import FakeResend

from gocomm.messages import Attachment, Email

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


@pytest.fixture
def sdk(resend_server: FakeResend, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(resend_sdk, "api_url", resend_server.url)
    monkeypatch.setattr(resend_sdk, "api_key", resend_server.api_key)
    return resend_sdk


async def test_the_sdk_and_the_vendor_send_the_same_body(
    sdk: Any, resend: ResendEmail, resend_server: FakeResend
) -> None:
    params = {
        "from": "Shop <shop@example.com>",
        "to": ["ada@example.com", "bob@example.com"],
        "cc": ["carol@example.com"],
        "bcc": ["audit@example.com"],
        "reply_to": ["help@example.com"],
        "subject": "Reçu",
        "text": "merci",
        "html": '<img src="cid:logo">',
        "headers": {"X-Order": "42"},
        "attachments": [
            {
                "filename": "logo.png",
                "content": base64.b64encode(PNG).decode(),
                "content_type": "image/png",
                "content_id": "logo",
            }
        ],
    }
    # The SDK is synchronous (requests): in a thread, while the fake answers on this loop.
    answer = await asyncio.to_thread(sdk.Emails.send, params)
    assert answer["id"]
    message = Email(
        subject="Reçu",
        text="merci",
        html='<img src="cid:logo">',
        cc=("carol@example.com",),
        bcc=("audit@example.com",),
        reply_to=("help@example.com",),
        headers={"X-Order": "42"},
        attachments=(Attachment("logo.png", PNG, "image/png", content_id="logo"),),
    )
    await resend.send("x", message, "ada@example.com", "bob@example.com")
    from_sdk, from_vendor = resend_server.accepted
    assert from_vendor == from_sdk
    assert len(resend_server.deliveries) == 8


async def test_the_sdk_reads_the_fakes_errors(
    sdk: Any, resend_server: FakeResend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resend_sdk, "api_key", "re_not_the_key")
    with pytest.raises(resend_sdk.exceptions.InvalidApiKeyError):
        await asyncio.to_thread(
            sdk.Emails.send,
            {"from": "shop@example.com", "to": "ada@example.com", "subject": "s", "text": "t"},
        )
    monkeypatch.setattr(resend_sdk, "api_key", resend_server.api_key)
    resend_server.fail_next(429, "daily_quota_exceeded", "quota")
    with pytest.raises(resend_sdk.exceptions.RateLimitError):
        await asyncio.to_thread(
            sdk.Emails.send,
            {"from": "shop@example.com", "to": "ada@example.com", "subject": "s", "text": "t"},
        )
