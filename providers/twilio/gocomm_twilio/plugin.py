"""The ``gocomm`` entry point of gocomm-twilio: registers the ``twilio`` SMS vendor."""

from __future__ import annotations

from typing import Any

from gocomm.plugins import VendorRegistry, VendorSpec, hookimpl
from gocomm.sender import Sender
from gocomm_twilio.settings import TwilioSettings

__all__ = ["SPEC", "gocomm_register_vendors"]


def _build(settings: TwilioSettings) -> Sender[Any]:
    # The vendor module (and its HTTP stack) is imported only when a vendor is built.
    from gocomm_twilio.vendor import TwilioSms

    return TwilioSms(settings)


SPEC = VendorSpec(
    name="twilio",
    channels=frozenset({"sms"}),
    settings=TwilioSettings,
    factory=_build,
    description="Twilio Programmable Messaging, Messages API 2010-04-01",
    fake="gocomm_twilio.testing:FakeTwilio",  # `gocomm fake twilio`
)


@hookimpl
def gocomm_register_vendors(registry: VendorRegistry) -> None:
    """Register the ``twilio`` vendor."""
    registry.add(SPEC)
