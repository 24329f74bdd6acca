"""The settings users write for the ``tencentcloud`` vendor (DESIGN §6)."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from gocomm.httpvendor import HttpVendorSettings
from gocomm.smstemplates import TemplateEntry

__all__ = ["DEFAULT_ENDPOINT", "TencentCloudSettings"]

DEFAULT_ENDPOINT = "https://sms.tencentcloudapi.com"


class TencentCloudSettings(HttpVendorSettings):
    """Tencent Cloud SMS credentials, application, signature, templates and connection settings.

    ``templates`` maps a logical ``biz`` to a template id (parameters then follow the order of
    ``args``) or to ``{id, params}`` naming the order of the template's ``{1}``, ``{2}`` ...
    parameters; a ``biz`` without an entry is used as the template id itself.
    """

    credential_fields: ClassVar[tuple[str, ...]] = ("secret_id",)

    secret_id: str = Field(min_length=1)
    secret_key: SecretStr = Field(description="the SecretKey")
    sdk_app_id: str = Field(min_length=1, description="the SMS application's SdkAppId")
    sign_name: str = Field(
        default="", description="the approved signature; may be empty for international SMS"
    )
    region: str = Field(default="ap-guangzhou", min_length=1)
    templates: dict[str, TemplateEntry] = Field(default_factory=dict)
    endpoint: str = DEFAULT_ENDPOINT

    @field_validator("endpoint")
    @classmethod
    def _no_path(cls, value: str) -> str:
        # TC3 signs the canonical URI "/": a base path would make every signature wrong.
        if urlsplit(value).path not in ("", "/"):
            raise ValueError("must be a scheme and host[:port] without a path")
        return value
