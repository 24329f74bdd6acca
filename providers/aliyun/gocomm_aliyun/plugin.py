"""The ``gocomm`` entry point of gocomm-aliyun: registers the ``aliyun`` SMS vendor."""

from __future__ import annotations

from typing import Any

from gocomm.plugins import VendorRegistry, VendorSpec, hookimpl
from gocomm.sender import Sender
from gocomm_aliyun.settings import AliyunSettings

__all__ = ["SPEC", "gocomm_register_vendors"]


def _build(settings: AliyunSettings) -> Sender[Any]:
    # The vendor module (and its HTTP stack) is imported only when a vendor is built.
    from gocomm_aliyun.vendor import AliyunSms

    return AliyunSms(settings)


SPEC = VendorSpec(
    name="aliyun",
    channels=frozenset({"sms"}),
    settings=AliyunSettings,
    factory=_build,
    description="Alibaba Cloud (Aliyun) SMS, Dysmsapi SendSms",
    fake="gocomm_aliyun.testing:FakeAliyun",  # `gocomm fake aliyun`
)


@hookimpl
def gocomm_register_vendors(registry: VendorRegistry) -> None:
    """Register the ``aliyun`` vendor."""
    registry.add(SPEC)
