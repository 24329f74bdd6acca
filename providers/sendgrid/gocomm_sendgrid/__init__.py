"""gocomm's SendGrid email vendor: the v3 ``mail/send`` API with a bearer API key.

Registered as ``sendgrid`` through the ``gocomm`` entry point (:mod:`gocomm_sendgrid.plugin`);
build it from configuration or directly::

    from gocomm.messages import Email
    from gocomm_sendgrid import SendGridEmail, SendGridSettings

    settings = SendGridSettings(api_key="SG....", sender="Shop <shop@example.com>")
    async with SendGridEmail(settings) as sendgrid:
        await sendgrid.send("receipt", Email(subject="Your receipt", text="..."), "ada@example.com")
"""

from typing import TYPE_CHECKING, Any

from gocomm_sendgrid.settings import SendGridSettings

if TYPE_CHECKING:
    from gocomm_sendgrid.vendor import SendGridEmail

__all__ = ["SendGridEmail", "SendGridSettings"]


def __getattr__(name: str) -> Any:
    # The vendor (and the HTTP client) is imported on first use: loading the plugin stays light.
    if name == "SendGridEmail":
        from gocomm_sendgrid.vendor import SendGridEmail

        return SendGridEmail
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
