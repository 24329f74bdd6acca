"""The ``memory`` vendor: records every send in memory, for tests and local development."""

from __future__ import annotations

import logging
from typing import Any

from gocomm.registry import VendorSettings
from gocomm.sender import Receipt
from gocomm.testing import MemorySender
from gocomm.vendors.checks import channel_of, check_email_send, check_sms_send

__all__ = ["MemorySettings", "MemoryVendor"]


class MemorySettings(VendorSettings):
    """The memory vendor takes no settings."""


class MemoryVendor(MemorySender):
    """A :class:`~gocomm.testing.MemorySender` that checks recipients like a real vendor.

    Serves email (``args`` an :class:`~gocomm.messages.Email`) and SMS (``args`` a mapping of
    template parameters); what it accepts is in :attr:`sent`, with numbers in E.164 form.
    """

    def __init__(
        self,
        settings: MemorySettings | None = None,
        *,
        name: str = "memory",
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(name)
        self._log = logger or logging.getLogger("gocomm.vendors.memory")

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        if channel_of(self.name, args) == "email":
            recipients = check_email_send(self.name, args, to)
        else:
            recipients = check_sms_send(self.name, args, to)
        receipt = await super().send(biz, args, *recipients)
        self._log.debug("%s recorded %s for %d recipients", self.name, biz, len(recipients))
        return receipt
