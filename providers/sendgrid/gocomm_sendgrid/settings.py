"""The settings users write for the ``sendgrid`` vendor (DESIGN §16)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator

from gocomm.httpemail import HttpEmailSettings

__all__ = ["ENDPOINTS", "SendGridSettings"]

#: The public API base URL of each region (EU data residency is for EU-pinned subusers).
ENDPOINTS = {"global": "https://api.sendgrid.com", "eu": "https://api.eu.sendgrid.com"}


class SendGridSettings(HttpEmailSettings):
    """The API key, region, sending options and connection settings.

    ``endpoint`` defaults to the public API of ``region`` (``global`` or ``eu``).
    """

    api_key: SecretStr = Field(description="a SendGrid API key with the Mail Send permission")
    region: Literal["global", "eu"] = Field(
        default="global", description="global (api.sendgrid.com) or eu (api.eu.sendgrid.com)"
    )
    endpoint: str = Field(default="", description="base URL; default the region's public API")

    @model_validator(mode="before")
    @classmethod
    def _default_endpoint(cls, data: Any) -> Any:
        # The public endpoint depends on the region: fill it before the URL check.
        if isinstance(data, dict) and not data.get("endpoint"):
            region = data.get("region", "global")
            if region in ENDPOINTS:
                data = {**data, "endpoint": ENDPOINTS[region]}
        return data
