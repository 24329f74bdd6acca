"""Fixtures: the aliyun vendor against the package's own signature-checking fake Dysmsapi."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gocomm_aliyun import AliyunSettings, AliyunSms
from gocomm_aliyun.testing import FakeAliyun


@pytest.fixture
async def aliyun_server() -> AsyncIterator[FakeAliyun]:
    async with FakeAliyun().serving() as fake:
        yield fake


def make_settings(endpoint: str, **overrides: object) -> AliyunSettings:
    """The fake's own settings (its credentials) with these tests' templates, at ``endpoint``."""
    values: dict[str, object] = {
        "templates": {"login": "SMS_123456", "order": {"id": "SMS_777", "params": ["code"]}},
        "endpoint": endpoint,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
    }
    return FakeAliyun().settings(**{**values, **overrides})


@pytest.fixture
async def aliyun(aliyun_server: FakeAliyun) -> AsyncIterator[AliyunSms]:
    async with AliyunSms(make_settings(aliyun_server.url)) as vendor:
        yield vendor
