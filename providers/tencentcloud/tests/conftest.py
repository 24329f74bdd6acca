"""Fixtures: the tencentcloud vendor against the package's own signature-checking fake server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gocomm_tencentcloud import TencentCloudSettings, TencentCloudSms
from gocomm_tencentcloud.testing import SDK_APP_ID, SECRET_ID, SECRET_KEY, FakeTencentCloud


@pytest.fixture
async def tencent_server() -> AsyncIterator[FakeTencentCloud]:
    async with FakeTencentCloud().serving() as fake:
        yield fake


def make_settings(endpoint: str, **overrides: object) -> TencentCloudSettings:
    values: dict[str, object] = {
        "secret_id": SECRET_ID,
        "secret_key": SECRET_KEY,
        "sdk_app_id": SDK_APP_ID,
        "sign_name": "gocomm",
        "templates": {"login": {"id": "1234", "params": ["code", "minutes"]}, "plain": "5678"},
        "endpoint": endpoint,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
    }
    values.update(overrides)
    return TencentCloudSettings.model_validate(values)


@pytest.fixture
async def tencent(tencent_server: FakeTencentCloud) -> AsyncIterator[TencentCloudSms]:
    async with TencentCloudSms(make_settings(tencent_server.url)) as vendor:
        yield vendor
