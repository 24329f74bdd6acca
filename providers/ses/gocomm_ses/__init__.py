"""gocomm's Amazon SES email vendor: SES API v2 ``SendEmail``, signed with AWS Signature V4.

Registered as ``ses`` through the ``gocomm`` entry point (:mod:`gocomm_ses.plugin`); build it
from configuration or directly::

    from gocomm.messages import Email
    from gocomm_ses import SesEmail, SesSettings

    settings = SesSettings(
        access_key_id="AKIA...", secret_access_key=..., region="eu-west-1",
        sender="Shop <shop@example.com>",
    )
    async with SesEmail(settings) as ses:
        await ses.send("receipt", Email(subject="Your receipt", text="..."), "ada@example.com")
"""

from typing import TYPE_CHECKING

from gocomm.lazy import lazy_attributes
from gocomm_ses.settings import SesSettings

if TYPE_CHECKING:
    from gocomm_ses.vendor import SesEmail

__all__ = ["SesEmail", "SesSettings"]


__getattr__ = lazy_attributes(__name__, {"SesEmail": "gocomm_ses.vendor"})
