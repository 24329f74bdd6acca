"""FakePostmark against postmarker, the Python client Postmark lists for its API: the fake
accepts what postmarker writes, answers in the shape postmarker reads, and the vendor writes
the messages postmarker writes for the same send."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
from gocomm_postmark import PostmarkEmail
from gocomm_postmark.testing import FakePostmark
from postmarker.core import PostmarkClient
from postmarker.exceptions import ClientError

from gocomm.messages import Attachment, Email

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def _client(fake: FakePostmark, token: str | None = None) -> PostmarkClient:
    return PostmarkClient(server_token=token or fake.server_token, root_api_url=fake.url + "/")


def _without_empty(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if v not in (None, [], {})}


async def test_postmarker_and_the_vendor_send_the_same_batch(
    postmark: PostmarkEmail, postmark_server: FakePostmark
) -> None:
    common: dict[str, Any] = {
        "From": "Shop <shop@example.com>",
        "ReplyTo": "help@example.com",
        "Subject": "Reçu",
        "TextBody": "merci",
        "HtmlBody": '<img src="cid:logo">',
        "Headers": {"X-Order": "42"},
        "Attachments": [("logo.png", base64.b64encode(PNG).decode(), "image/png", "cid:logo")],
    }
    first = {**common, "To": "ada@example.com", "Cc": "carol@example.com"}
    second = {**common, "To": "bob@example.com"}
    client = _client(postmark_server)
    # postmarker is synchronous (requests): in a thread, while the fake answers on this loop.
    results = await asyncio.to_thread(client.emails.send_batch, first, second)
    assert [r["ErrorCode"] for r in results] == [0, 0]
    message = Email(
        subject="Reçu",
        text="merci",
        html='<img src="cid:logo">',
        cc=("carol@example.com",),
        reply_to=("help@example.com",),
        headers={"X-Order": "42"},
        attachments=(Attachment("logo.png", PNG, "image/png", content_id="logo"),),
    )
    await postmark.send("x", message, "ada@example.com", "bob@example.com")
    by_postmarker, by_vendor = postmark_server.accepted[:2], postmark_server.accepted[2:]
    assert [_without_empty(m) for m in by_vendor] == [_without_empty(m) for m in by_postmarker]


async def test_postmarker_reads_the_fakes_errors(postmark_server: FakePostmark) -> None:
    with pytest.raises(ClientError) as info:
        await asyncio.to_thread(
            _client(postmark_server, "wrong-token").emails.send,
            From="shop@example.com",
            To="ada@example.com",
            Subject="s",
            TextBody="t",
        )
    assert info.value.error_code == 10
    postmark_server.inactive.add("gone@example.com")
    with pytest.raises(ClientError) as info:
        await asyncio.to_thread(
            _client(postmark_server).emails.send,
            From="shop@example.com",
            To="gone@example.com",
            Subject="s",
            TextBody="t",
        )
    assert info.value.error_code == 406
