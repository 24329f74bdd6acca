"""Failover between Postmark and Resend through the container (issue 16): Postmark's
per-message results make the handover exact.

Postmark (its public fake) sends one message per ``to``: one is delivered, one is answered 429
(retryable) and one is inactive (406, refused for good). Failover offers Resend only the
address still owed, with ``biz`` mapped to Resend's stored template; the inactive address is
never offered again and the receipt names it.
"""

from __future__ import annotations

from typing import Any

from gocomm_postmark.testing import FakePostmark
from gocomm_resend.testing import FakeResend

from gocomm.containers import build_container
from gocomm.messages import Email

TO = ("ada@example.com", "busy@example.com", "gone@example.com")
MESSAGE = Email(
    subject="Reçu n°42",
    text="merci",
    sender="Boutique Ünïcode <shop@example.com>",
    cc=("carol@example.com",),
)


def _entry(plugin: str, settings: Any) -> dict[str, Any]:
    values = {
        k: v.get_secret_value() if hasattr(v, "get_secret_value") else v
        for k, v in settings.model_dump(exclude_unset=True).items()
    }
    return {"plugin": plugin, **values}


async def test_postmark_then_resend_each_to_exactly_once() -> None:
    async with FakePostmark().serving() as postmark, FakeResend().serving() as resend:
        postmark.fail_recipient("busy@example.com", 429, "Rate limit exceeded")
        postmark.inactive.add("gone@example.com")
        config = {
            "email": {
                "vendors": [
                    _entry("postmark", postmark.settings()),
                    _entry("resend", resend.settings(templates={"receipt": "receipt-v1"})),
                ],
                "failover": {"mode": "error"},
            }
        }
        container = build_container(config)
        try:
            sender = await container.email.sender()
            receipt = await sender.send("receipt", MESSAGE, *TO)
        finally:
            await container.shutdown_resources()

    assert receipt.vendor == "resend"
    assert receipt.refused == ("gone@example.com",)
    # Postmark delivered ada's message (cc with it, once) and nothing else.
    assert [d.recipient for d in postmark.deliveries] == ["ada@example.com", "carol@example.com"]
    # Resend was offered only the address still owed, as its stored template.
    (body,) = resend.accepted
    assert body["to"] == ["busy@example.com"]
    assert body["cc"] == ["carol@example.com"]  # cc travels with every attempt (DESIGN §3)
    assert body["template"] == {
        "id": "receipt-v1",
        "variables": {"subject": "Reçu n°42", "text": "merci"},
    }
    delivered_to = [d.recipient for d in (*postmark.deliveries, *resend.deliveries)]
    assert sorted(a for a in delivered_to if a in TO) == ["ada@example.com", "busy@example.com"]
