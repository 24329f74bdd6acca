"""gocomm's Aliyun (Alibaba Cloud) SMS vendor: Dysmsapi ``SendSms`` over aiohttp.

The vendor is registered as ``aliyun`` through the ``gocomm`` entry point
(:mod:`gocomm_aliyun.plugin`); build it from configuration or directly::

    from gocomm_aliyun import AliyunSettings, AliyunSms

    async with AliyunSms(AliyunSettings(access_key_id=..., access_key_secret=..., sign_name=...,
                                        templates={"login": "SMS_123456"})) as sms:
        await sms.send("login", {"code": "1234"}, "+8613800138000")
"""

from typing import TYPE_CHECKING

from gocomm.lazy import lazy_attributes
from gocomm_aliyun.settings import AliyunSettings

if TYPE_CHECKING:
    from gocomm_aliyun.vendor import AliyunSms

__all__ = ["AliyunSettings", "AliyunSms"]


__getattr__ = lazy_attributes(__name__, {"AliyunSms": "gocomm_aliyun.vendor"})
