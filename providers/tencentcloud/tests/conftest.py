"""Fixtures: the tencentcloud vendor against the package's own signature-checking fake server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gocomm_tencentcloud import TencentCloudSettings, TencentCloudSms
from gocomm_tencentcloud.testing import FakeTencentCloud


@pytest.fixture
async def tencent_server() -> AsyncIterator[FakeTencentCloud]:
    async with FakeTencentCloud().serving() as fake:
        yield fake


def make_settings(endpoint: str, **overrides: object) -> TencentCloudSettings:
    """The fake's own settings (its credentials) with these tests' templates, at ``endpoint``."""
    values: dict[str, object] = {
        "templates": {"login": {"id": "1234", "params": ["code", "minutes"]}, "plain": "5678"},
        "endpoint": endpoint,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
    }
    return FakeTencentCloud().settings(**{**values, **overrides})


@pytest.fixture
async def tencent(tencent_server: FakeTencentCloud) -> AsyncIterator[TencentCloudSms]:
    async with TencentCloudSms(make_settings(tencent_server.url)) as vendor:
        yield vendor
