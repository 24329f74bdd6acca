"""The tencentcloud vendor passes gocomm's vendor contract suite against the local server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gocomm_tencentcloud import TencentCloudSms
from gocomm_tencentcloud.testing import SECRET_KEY, FakeTencentCloud

from gocomm.testing.contract import FailureContract, FailureKind, VendorContract

from .conftest import make_settings


class TestTencentCloudContract(VendorContract, FailureContract):
    channel = "sms"
    vendor_name = "tencentcloud"
    secret_values = (SECRET_KEY,)

    @pytest.fixture
    async def outbox(self, tencent_server: FakeTencentCloud) -> FakeTencentCloud:
        return tencent_server

    @pytest.fixture
    async def vendor(self, outbox: FakeTencentCloud) -> AsyncIterator[TencentCloudSms]:
        async with TencentCloudSms(make_settings(outbox.url)) as vendor:
            yield vendor

    async def make_failure(self, outbox: FakeTencentCloud, kind: FailureKind) -> None:
        outbox.fail_next = (
            "LimitExceeded.DeliveryFrequencyLimit"
            if kind == "retryable"
            else "FailedOperation.TemplateIncorrectOrUnapproved"
        )
