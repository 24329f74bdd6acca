"""The settings users write for the ``twilio`` vendor (DESIGN §6)."""

from __future__ import annotations

import re
from typing import ClassVar, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from gocomm.errors import InvalidRecipient
from gocomm.httpvendor import HttpVendorSettings
from gocomm.recipients import validate_phone
from gocomm_twilio.templates import BodyTemplate

__all__ = ["DEFAULT_ENDPOINT", "TwilioSettings"]

DEFAULT_ENDPOINT = "https://api.twilio.com"

_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
_ALPHANUMERIC_ID = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")


class TwilioSettings(HttpVendorSettings):
    """Twilio account, sender, body templates and connection settings.

    Give exactly one sender: ``from_number`` (an E.164 number, a short code or an alphanumeric
    sender ID) or ``messaging_service_sid`` (``MG...``, Twilio then picks the sender).
    ``templates`` maps a logical ``biz`` to a body text with ``{name}`` fields filled from
    ``args``; a ``biz`` without an entry is refused.
    """

    credential_fields: ClassVar[tuple[str, ...]] = ("account_sid",)

    account_sid: str = Field(description="the Account SID, AC and 32 hex digits")
    auth_token: SecretStr = Field(description="the account's Auth Token")
    from_number: str | None = Field(
        default=None, description="sender: E.164 number, short code or alphanumeric sender ID"
    )
    messaging_service_sid: str | None = Field(
        default=None, description="sender: a Messaging Service SID, MG and 32 hex digits"
    )
    templates: dict[str, str] = Field(
        default_factory=dict, description="biz to body text with {name} fields from args"
    )
    endpoint: str = DEFAULT_ENDPOINT

    @field_validator("account_sid")
    @classmethod
    def _account_sid(cls, value: str) -> str:
        # The SID goes into the request path: its shape is checked, never trusted.
        if not _ACCOUNT_SID.fullmatch(value):
            raise ValueError("must be 'AC' and 32 hex digits, as the Twilio console shows it")
        return value

    @field_validator("from_number", "messaging_service_sid", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # "${TWILIO_FROM:}" interpolates to "": treat it as not given.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("from_number")
    @classmethod
    def _sender(cls, value: str | None) -> str | None:
        if value is None or _SHORT_CODE.fullmatch(value) or _ALPHANUMERIC_ID.fullmatch(value):
            return value
        try:
            return validate_phone(value)
        except InvalidRecipient:
            raise ValueError(
                "must be an E.164 number (+14155550100), a short code (digits) or an "
                "alphanumeric sender ID (at most 11 letters, digits or spaces)"
            ) from None

    @field_validator("messaging_service_sid")
    @classmethod
    def _service_sid(cls, value: str | None) -> str | None:
        if value is not None and not _SERVICE_SID.fullmatch(value):
            raise ValueError("must be 'MG' and 32 hex digits, as the Twilio console shows it")
        return value

    @field_validator("templates")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        for biz, text in value.items():
            if not biz:
                raise ValueError("a template name (biz) must not be empty")
            try:
                BodyTemplate.parse(text)
            except ValueError as exc:
                raise ValueError(f"template {biz!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_sender(self) -> Self:
        if (self.from_number is None) == (self.messaging_service_sid is None):
            given = "both are given" if self.from_number is not None else "neither is given"
            raise ValueError(
                f"give exactly one of from_number or messaging_service_sid ({given}): "
                "from_number sends from that number, messaging_service_sid lets the "
                "Messaging Service choose"
            )
        return self
