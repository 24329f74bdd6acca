"""The settings users write for the ``mailgun`` vendor (DESIGN §16)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator

from gocomm.httpemail import HttpEmailSettings

__all__ = ["ENDPOINTS", "MailgunSettings"]

#: The public API base URL of each region: a domain lives in one of them.
ENDPOINTS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}

_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")


class MailgunSettings(HttpEmailSettings):
    """The API key, sending domain, region, sending options and connection settings.

    ``endpoint`` defaults to the public API of ``region`` (``us`` or ``eu``, where the domain
    was created).
    """

    api_key: SecretStr = Field(description="a Mailgun API key (account or domain sending key)")
    domain: str = Field(description="the sending domain, e.g. mg.example.com")
    region_endpoints: ClassVar[Mapping[str, str]] = ENDPOINTS

    region: Literal["us", "eu"] = Field(
        default="us", description="us (api.mailgun.net) or eu (api.eu.mailgun.net)"
    )
    endpoint: str = Field(default="", description="base URL; default the region's public API")

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        domain = value.strip().lower()
        if not _DOMAIN.fullmatch(domain):
            raise ValueError(
                f"{value!r} is not a domain name; give the Mailgun sending domain, e.g. "
                "mg.example.com"
            )
        return domain

