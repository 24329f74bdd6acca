"""The ``gocomm`` entry point of gocomm-sendgrid: registers the ``sendgrid`` email vendor."""

from __future__ import annotations

from typing import Any

from gocomm.plugins import VendorRegistry, VendorSpec, hookimpl
from gocomm.sender import Sender
from gocomm_sendgrid.settings import SendGridSettings

__all__ = ["SPEC", "gocomm_register_vendors"]


def _build(settings: SendGridSettings) -> Sender[Any]:
    from gocomm_sendgrid.vendor import SendGridEmail

    return SendGridEmail(settings)


SPEC = VendorSpec(
    name="sendgrid",
    channels=frozenset({"email"}),
    settings=SendGridSettings,
    factory=_build,
    description="SendGrid, v3 mail/send (one personalization per recipient, dynamic templates)",
    fake="gocomm_sendgrid.testing:FakeSendGrid",  # `gocomm fake sendgrid`
)


@hookimpl
def gocomm_register_vendors(registry: VendorRegistry) -> None:
    """Register the ``sendgrid`` vendor."""
    registry.add(SPEC)
