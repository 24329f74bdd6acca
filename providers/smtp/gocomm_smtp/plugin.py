"""The ``smtp`` vendor's pluggy plugin (entry point ``smtp`` in the group ``gocomm``).

Importing this module is cheap: aiosmtplib is imported only when the factory builds a sender.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gocomm.plugins import VendorSpec, hookimpl
from gocomm_smtp.settings import SmtpSettings

if TYPE_CHECKING:
    from gocomm.plugins import VendorRegistry
    from gocomm_smtp.vendor import SmtpSender

__all__ = ["create_sender", "gocomm_register_vendors"]


def create_sender(settings: SmtpSettings, **kwargs: Any) -> SmtpSender:
    """Build an :class:`~gocomm_smtp.vendor.SmtpSender` (the vendor factory)."""
    from gocomm_smtp.vendor import SmtpSender

    return SmtpSender(settings, **kwargs)


@hookimpl
def gocomm_register_vendors(registry: VendorRegistry) -> None:
    """Register the ``smtp`` email vendor."""
    registry.add(
        VendorSpec(
            name="smtp",
            channels=frozenset({"email"}),
            settings=SmtpSettings,
            factory=create_sender,
            description="Email over SMTP (aiosmtplib): pooled connections, TLS required",
        )
    )
