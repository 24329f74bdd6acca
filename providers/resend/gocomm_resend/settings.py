"""The settings users write for the ``resend`` vendor (DESIGN §16)."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from gocomm.httpemail import HttpEmailSettings

__all__ = ["ResendSettings"]

_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")


class ResendSettings(HttpEmailSettings):
    """The API key, tags and connection settings.

    ``templates`` maps a ``biz`` to a Resend template id or alias; ``tags`` (name to value) are
    sent with every message.
    """

    api_key: SecretStr = Field(description="a Resend API key (re_...) with sending access")
    tags: dict[str, str] = Field(
        default_factory=dict, description="tags (name to value) sent with every message"
    )
    endpoint: str = Field(default="https://api.resend.com", description="base URL")

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for name, tag in value.items():
            if not _TAG.fullmatch(name) or not _TAG.fullmatch(tag):
                raise ValueError(
                    "tag names and values are 1 to 256 ASCII letters, digits, '_' or '-' "
                    "(Resend rule)"
                )
        return value
