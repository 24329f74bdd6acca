"""The settings users write for the ``ses`` vendor (DESIGN §16)."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from gocomm.httpemail import HttpEmailSettings

__all__ = ["SesSettings"]

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+")
_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")


class SesSettings(HttpEmailSettings):
    """AWS credentials, region, sending options and connection settings.

    ``endpoint`` defaults to ``https://email.{region}.amazonaws.com``. ``session_token`` is for
    temporary credentials (STS, an assumed role). ``configuration_set`` and ``tags`` are sent
    with every message (SES event publishing).
    """

    credential_fields: ClassVar[tuple[str, ...]] = ("access_key_id",)

    access_key_id: str = Field(description="the AWS access key id (AKIA... or ASIA...)")
    secret_access_key: SecretStr = Field(description="the AWS secret access key")
    session_token: SecretStr | None = Field(
        default=None, description="the session token of temporary credentials"
    )
    region: str = Field(description="the SES region, e.g. us-east-1 or eu-west-1")
    endpoint: str = Field(default="", description="base URL; default email.{region}.amazonaws.com")
    configuration_set: str | None = Field(
        default=None, description="ConfigurationSetName sent with every message"
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="EmailTags (name to value) sent with every message"
    )

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.fullmatch(value):
            raise ValueError("must be an AWS region name such as us-east-1 or eu-west-1")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for name, tag in value.items():
            if not _TAG.fullmatch(name) or not _TAG.fullmatch(tag):
                raise ValueError(
                    "tag names and values are 1 to 256 letters, digits, '_' or '-' (SES rule)"
                )
        return value

    @model_validator(mode="before")
    @classmethod
    def _default_endpoint(cls, data: Any) -> Any:
        # The public endpoint depends on the region: fill it before the URL check.
        if (
            isinstance(data, dict)
            and not data.get("endpoint")
            and isinstance(data.get("region"), str)
        ):
            data = {**data, "endpoint": f"https://email.{data['region']}.amazonaws.com"}
        return data
