"""The ``gocomm`` entry point of gocomm-mailgun: registers the ``mailgun`` email vendor."""

from __future__ import annotations

from typing import Any

from gocomm.plugins import VendorRegistry, VendorSpec, hookimpl
from gocomm.sender import Sender
from gocomm_mailgun.settings import MailgunSettings

__all__ = ["SPEC", "gocomm_register_vendors"]


def _build(settings: MailgunSettings) -> Sender[Any]:
    from gocomm_mailgun.vendor import MailgunEmail

    return MailgunEmail(settings)


SPEC = VendorSpec(
    name="mailgun",
    channels=frozenset({"email"}),
    settings=MailgunSettings,
    factory=_build,
    description="Mailgun, v3 messages (US and EU regions, stored templates)",
    fake="gocomm_mailgun.testing:FakeMailgun",  # `gocomm fake mailgun`
)


@hookimpl
def gocomm_register_vendors(registry: VendorRegistry) -> None:
    """Register the ``mailgun`` vendor."""
    registry.add(SPEC)
