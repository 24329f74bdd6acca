"""The channels gocomm sends on: the one definition every other module imports."""

from __future__ import annotations

from typing import Literal

__all__ = ["CHANNELS", "Channel"]

Channel = Literal["email", "sms"]
#: Every channel, in the order gocomm lists them.
CHANNELS: tuple[Channel, ...] = ("email", "sms")
