"""The settings users write for the ``postmark`` vendor (DESIGN §16)."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from gocomm.httpemail import HttpEmailSettings

__all__ = ["PostmarkSettings"]

_STREAM = re.compile(r"[a-z][a-z0-9_-]{0,29}")


class PostmarkSettings(HttpEmailSettings):
    """The server token, the message stream and connection settings.

    ``templates`` maps a ``biz`` to a Postmark template: a number is its ``TemplateId``,
    anything else its ``TemplateAlias``.
    """

    server_token: SecretStr = Field(description="the Postmark server API token")
    message_stream: str | None = Field(
        default=None, description="the MessageStream to send through (Postmark: 'outbound')"
    )
    endpoint: str = Field(default="https://api.postmarkapp.com", description="base URL")

    @field_validator("message_stream")
    @classmethod
    def _message_stream(cls, value: str | None) -> str | None:
        if value is not None and not _STREAM.fullmatch(value):
            raise ValueError(
                "a message stream id is 1 to 30 lower-case letters, digits, '-' or '_', "
                "starting with a letter (e.g. 'outbound' or 'broadcast')"
            )
        return value
