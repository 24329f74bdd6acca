"""gocomm's Resend email vendor: the ``emails`` API with a bearer API key.

Registered as ``resend`` through the ``gocomm`` entry point (:mod:`gocomm_resend.plugin`);
build it from configuration or directly::

    from gocomm.messages import Email
    from gocomm_resend import ResendEmail, ResendSettings

    settings = ResendSettings(api_key=..., sender="Shop <shop@example.com>")
    async with ResendEmail(settings) as resend:
        await resend.send("receipt", Email(subject="Your receipt", text="..."), "ada@example.com")
"""

from typing import TYPE_CHECKING

from gocomm.lazy import lazy_attributes
from gocomm_resend.settings import ResendSettings

if TYPE_CHECKING:
    from gocomm_resend.vendor import ResendEmail

__all__ = ["ResendEmail", "ResendSettings"]


__getattr__ = lazy_attributes(__name__, {"ResendEmail": "gocomm_resend.vendor"})
