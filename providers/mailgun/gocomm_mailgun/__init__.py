"""gocomm's Mailgun email vendor: the v3 ``messages`` API (US and EU) with basic auth ``api:key``.

Registered as ``mailgun`` through the ``gocomm`` entry point (:mod:`gocomm_mailgun.plugin`);
build it from configuration or directly::

    from gocomm.messages import Email
    from gocomm_mailgun import MailgunEmail, MailgunSettings

    settings = MailgunSettings(
        api_key="key-...", domain="mg.example.com", region="eu", sender="Shop <shop@example.com>"
    )
    async with MailgunEmail(settings) as mailgun:
        await mailgun.send("receipt", Email(subject="Your receipt", text="..."), "ada@example.com")
"""

from typing import TYPE_CHECKING

from gocomm.lazy import lazy_attributes
from gocomm_mailgun.settings import MailgunSettings

if TYPE_CHECKING:
    from gocomm_mailgun.vendor import MailgunEmail

__all__ = ["MailgunEmail", "MailgunSettings"]


__getattr__ = lazy_attributes(__name__, {"MailgunEmail": "gocomm_mailgun.vendor"})
