"""gocomm's SendGrid email vendor: the v3 ``mail/send`` API with a bearer API key.

Registered as ``sendgrid`` through the ``gocomm`` entry point (:mod:`gocomm_sendgrid.plugin`);
build it from configuration or directly::

    from gocomm.messages import Email
    from gocomm_sendgrid import SendGridEmail, SendGridSettings

    settings = SendGridSettings(api_key="SG....", sender="Shop <shop@example.com>")
    async with SendGridEmail(settings) as sendgrid:
        await sendgrid.send("receipt", Email(subject="Your receipt", text="..."), "ada@example.com")
"""

from typing import TYPE_CHECKING

from gocomm.lazy import lazy_attributes
from gocomm_sendgrid.settings import SendGridSettings

if TYPE_CHECKING:
    from gocomm_sendgrid.vendor import SendGridEmail

__all__ = ["SendGridEmail", "SendGridSettings"]


__getattr__ = lazy_attributes(__name__, {"SendGridEmail": "gocomm_sendgrid.vendor"})
