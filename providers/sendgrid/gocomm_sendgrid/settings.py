"""The settings users write for the ``sendgrid`` vendor (DESIGN §16)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from gocomm.httpemail import HttpEmailSettings

__all__ = ["ENDPOINTS", "SendGridSettings"]

#: The public API base URL of each region (EU data residency is for EU-pinned subusers).
ENDPOINTS = {"global": "https://api.sendgrid.com", "eu": "https://api.eu.sendgrid.com"}


class SendGridSettings(HttpEmailSettings):
    """The API key, region, sending options and connection settings.

    ``endpoint`` defaults to the public API of ``region`` (``global`` or ``eu``).
    """

    api_key: SecretStr = Field(description="a SendGrid API key with the Mail Send permission")
    region_endpoints: ClassVar[Mapping[str, str]] = ENDPOINTS

    region: Literal["global", "eu"] = Field(
        default="global", description="global (api.sendgrid.com) or eu (api.eu.sendgrid.com)"
    )
    endpoint: str = Field(default="", description="base URL; default the region's public API")

