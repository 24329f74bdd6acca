"""The ``gocomm`` entry point of gocomm-resend: registers the ``resend`` email vendor."""

from __future__ import annotations

from typing import Any

from gocomm.plugins import VendorRegistry, VendorSpec, hookimpl
from gocomm.sender import Sender
from gocomm_resend.settings import ResendSettings

__all__ = ["SPEC", "gocomm_register_vendors"]


def _build(settings: ResendSettings) -> Sender[Any]:
    from gocomm_resend.vendor import ResendEmail

    return ResendEmail(settings)


SPEC = VendorSpec(
    name="resend",
    channels=frozenset({"email"}),
    settings=ResendSettings,
    factory=_build,
    description="Resend, the emails API (one request per send)",
    fake="gocomm_resend.testing:FakeResend",  # `gocomm fake resend`
)


@hookimpl
def gocomm_register_vendors(registry: VendorRegistry) -> None:
    """Register the ``resend`` vendor."""
    registry.add(SPEC)
