"""gocomm's Twilio SMS vendor: the Messages API over aiohttp, one request per recipient.

The vendor is registered as ``twilio`` through the ``gocomm`` entry point
(:mod:`gocomm_twilio.plugin`); build it from configuration or directly::

    from gocomm_twilio import TwilioSettings, TwilioSms

    settings = TwilioSettings(
        account_sid="AC...", auth_token=..., from_number="+14155550100",
        templates={"login": "Your code is {code}"},
    )
    async with TwilioSms(settings) as sms:
        await sms.send("login", {"code": "1234"}, "+14155550123")
"""

from typing import TYPE_CHECKING, Any

from gocomm_twilio.settings import TwilioSettings

if TYPE_CHECKING:
    from gocomm_twilio.vendor import TwilioSms

__all__ = ["TwilioSettings", "TwilioSms"]


def __getattr__(name: str) -> Any:
    # The vendor (and aiohttp) is imported on first use, so that loading the plugin stays light.
    if name == "TwilioSms":
        from gocomm_twilio.vendor import TwilioSms

        return TwilioSms
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
