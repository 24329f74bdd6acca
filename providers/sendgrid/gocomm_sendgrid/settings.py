"""The settings users write for the ``sendgrid`` vendor (DESIGN §16)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

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

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty; give a SendGrid API key (SG....)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_endpoint(cls, data: Any) -> Any:
        # The public endpoint depends on the region: fill it before the URL check.
        if isinstance(data, dict) and not data.get("endpoint"):
            region = data.get("region", "global")
            if region in ENDPOINTS:
                data = {**data, "endpoint": ENDPOINTS[region]}
        return data
