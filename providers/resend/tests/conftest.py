"""Fixtures: the resend vendor against the package's own bearer-key-checking fake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gocomm_resend import ResendEmail
from gocomm_resend.testing import FakeResend


@pytest.fixture
async def resend_server() -> AsyncIterator[FakeResend]:
    async with FakeResend().serving() as fake:
        yield fake


@pytest.fixture
async def resend(resend_server: FakeResend) -> AsyncIterator[ResendEmail]:
    async with ResendEmail(resend_server.settings(sender="Shop <shop@example.com>")) as vendor:
        yield vendor
