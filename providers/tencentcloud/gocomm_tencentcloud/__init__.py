"""gocomm's Tencent Cloud SMS vendor: ``SendSms`` (API 2021-01-11) over aiohttp, TC3 signed.

The vendor is registered as ``tencentcloud`` through the ``gocomm`` entry point
(:mod:`gocomm_tencentcloud.plugin`); build it from configuration or directly::

    from gocomm_tencentcloud import TencentCloudSettings, TencentCloudSms

    settings = TencentCloudSettings(
        secret_id=..., secret_key=..., sdk_app_id="1400000000", sign_name="Example",
        templates={"login": {"id": "1234", "params": ["code", "minutes"]}},
    )
    async with TencentCloudSms(settings) as sms:
        await sms.send("login", {"code": "1234", "minutes": "5"}, "+8613800138000")
"""

from typing import TYPE_CHECKING

from gocomm.lazy import lazy_attributes
from gocomm_tencentcloud.settings import TencentCloudSettings

if TYPE_CHECKING:
    from gocomm_tencentcloud.vendor import TencentCloudSms

__all__ = ["TencentCloudSettings", "TencentCloudSms"]


__getattr__ = lazy_attributes(__name__, {"TencentCloudSms": "gocomm_tencentcloud.vendor"})
