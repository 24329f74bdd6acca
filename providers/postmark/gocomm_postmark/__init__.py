"""gocomm's Postmark email vendor: the ``email`` and ``email/batch`` APIs with a server token.

Registered as ``postmark`` through the ``gocomm`` entry point (:mod:`gocomm_postmark.plugin`);
build it from configuration or directly::

    from gocomm.messages import Email
    from gocomm_postmark import PostmarkEmail, PostmarkSettings

    settings = PostmarkSettings(server_token=..., sender="Shop <shop@example.com>")
    async with PostmarkEmail(settings) as postmark:
        await postmark.send("receipt", Email(subject="Your receipt", text="..."), "ada@example.com")
"""

from typing import TYPE_CHECKING

from gocomm.lazy import lazy_attributes
from gocomm_postmark.settings import PostmarkSettings

if TYPE_CHECKING:
    from gocomm_postmark.vendor import PostmarkEmail

__all__ = ["PostmarkEmail", "PostmarkSettings"]


__getattr__ = lazy_attributes(__name__, {"PostmarkEmail": "gocomm_postmark.vendor"})
