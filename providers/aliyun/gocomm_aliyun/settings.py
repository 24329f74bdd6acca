"""The settings users write for the ``aliyun`` vendor (DESIGN §6, §17)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from gocomm.httpvendor import HttpVendorSettings
from gocomm.smstemplates import TemplateEntry

__all__ = ["DEFAULT_ENDPOINT", "AliyunSettings"]

DEFAULT_ENDPOINT = "https://dysmsapi.aliyuncs.com"


class AliyunSettings(HttpVendorSettings):
    """Aliyun Dysmsapi credentials, signature, templates and connection settings.

    ``templates`` maps a logical ``biz`` to an Aliyun template code (``SMS_123456``) or to
    ``{id, params}`` (``params`` is ignored here: Aliyun takes named parameters); a ``biz``
    without an entry is used as the template code itself. ``signature`` picks how requests are
    signed: ``v3`` (ACS3-HMAC-SHA256, the default) or ``v2`` (the older RPC HMAC-SHA1
    signature, which Aliyun is phasing out).
    """

    #: The key id is checked for surrounding whitespace like the secret (the base class).
    credential_fields: ClassVar[tuple[str, ...]] = ("access_key_id",)

    access_key_id: str = Field(min_length=1)
    access_key_secret: SecretStr = Field(description="the AccessKey secret")
    sign_name: str = Field(min_length=1, description="the approved signature (签名)")
    templates: dict[str, TemplateEntry] = Field(default_factory=dict)
    endpoint: str = DEFAULT_ENDPOINT
    signature: Literal["v3", "v2"] = Field(
        default="v3", description="v3 = ACS3-HMAC-SHA256 (default), v2 = RPC HMAC-SHA1"
    )
