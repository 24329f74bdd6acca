"""The ``gocomm`` entry point of gocomm-postmark: registers the ``postmark`` email vendor."""

from __future__ import annotations

from typing import Any

from gocomm.plugins import VendorRegistry, VendorSpec, hookimpl
from gocomm.sender import Sender
from gocomm_postmark.settings import PostmarkSettings

__all__ = ["SPEC", "gocomm_register_vendors"]


def _build(settings: PostmarkSettings) -> Sender[Any]:
    from gocomm_postmark.vendor import PostmarkEmail

    return PostmarkEmail(settings)


SPEC = VendorSpec(
    name="postmark",
    channels=frozenset({"email"}),
    settings=PostmarkSettings,
    factory=_build,
    description="Postmark, the email and email/batch APIs (one message per recipient)",
    fake="gocomm_postmark.testing:FakePostmark",  # `gocomm fake postmark`
)


@hookimpl
def gocomm_register_vendors(registry: VendorRegistry) -> None:
    """Register the ``postmark`` vendor."""
    registry.add(SPEC)
