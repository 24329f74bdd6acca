"""The ``gocomm`` entry point of gocomm-ses: registers the ``ses`` email vendor."""

from __future__ import annotations

from typing import Any

from gocomm.plugins import VendorRegistry, VendorSpec, hookimpl
from gocomm.sender import Sender
from gocomm_ses.settings import SesSettings

__all__ = ["SPEC", "gocomm_register_vendors"]


def _build(settings: SesSettings) -> Sender[Any]:
    from gocomm_ses.vendor import SesEmail

    return SesEmail(settings)


SPEC = VendorSpec(
    name="ses",
    channels=frozenset({"email"}),
    settings=SesSettings,
    factory=_build,
    description="Amazon SES, API v2 SendEmail (simple, raw MIME or template content)",
    fake="gocomm_ses.testing:FakeSes",  # `gocomm fake ses`
)


@hookimpl
def gocomm_register_vendors(registry: VendorRegistry) -> None:
    """Register the ``ses`` vendor."""
    registry.add(SPEC)
