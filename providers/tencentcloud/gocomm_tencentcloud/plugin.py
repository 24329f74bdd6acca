"""The ``gocomm`` entry point of gocomm-tencentcloud: registers the ``tencentcloud`` SMS vendor."""

from __future__ import annotations

from typing import Any

from gocomm.plugins import VendorRegistry, VendorSpec, hookimpl
from gocomm.sender import Sender
from gocomm_tencentcloud.settings import TencentCloudSettings

__all__ = ["SPEC", "gocomm_register_vendors"]


def _build(settings: TencentCloudSettings) -> Sender[Any]:
    # The vendor module (and its HTTP stack) is imported only when a vendor is built.
    from gocomm_tencentcloud.vendor import TencentCloudSms

    return TencentCloudSms(settings)


SPEC = VendorSpec(
    name="tencentcloud",
    channels=frozenset({"sms"}),
    settings=TencentCloudSettings,
    factory=_build,
    description="Tencent Cloud SMS, SendSms 2021-01-11",
    fake="gocomm_tencentcloud.testing:FakeTencentCloud",  # `gocomm fake tencentcloud`
)


@hookimpl
def gocomm_register_vendors(registry: VendorRegistry) -> None:
    """Register the ``tencentcloud`` vendor."""
    registry.add(SPEC)
