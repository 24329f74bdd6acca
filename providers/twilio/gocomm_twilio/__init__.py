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

from typing import TYPE_CHECKING

from gocomm.lazy import lazy_attributes
from gocomm_twilio.settings import TwilioSettings

if TYPE_CHECKING:
    from gocomm_twilio.vendor import TwilioSms

__all__ = ["TwilioSettings", "TwilioSms"]


__getattr__ = lazy_attributes(__name__, {"TwilioSms": "gocomm_twilio.vendor"})
