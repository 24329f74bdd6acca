"""The aliyun vendor passes gocomm's vendor contract suite against the local Dysmsapi server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gocomm_aliyun import AliyunSms
from gocomm_aliyun.testing import ACCESS_KEY_SECRET, FakeAliyun

from gocomm.testing.contract import FailureContract, FailureKind, VendorContract

from .conftest import make_settings


class TestAliyunContract(VendorContract, FailureContract):
    channel = "sms"
    vendor_name = "aliyun"
    secret_values = (ACCESS_KEY_SECRET,)

    @pytest.fixture
    async def outbox(self, aliyun_server: FakeAliyun) -> FakeAliyun:
        return aliyun_server

    @pytest.fixture
    async def vendor(self, outbox: FakeAliyun) -> AsyncIterator[AliyunSms]:
        async with AliyunSms(make_settings(outbox.url)) as vendor:
            yield vendor

    def recipients(self, count: int) -> list[str]:
        # Mainland numbers: Aliyun's wire form (11 national digits) maps back unambiguously.
        return [f"+86139{i:08d}" for i in range(count)]

    async def make_failure(self, outbox: FakeAliyun, kind: FailureKind) -> None:
        outbox.fail_next = (
            "isv.BUSINESS_LIMIT_CONTROL" if kind == "retryable" else "isv.SMS_TEMPLATE_ILLEGAL"
        )
