"""Fixtures: the ses vendor against the package's own SigV4-checking fake SendEmail."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gocomm_ses import SesEmail
from gocomm_ses.testing import FakeSes


@pytest.fixture
async def ses_server() -> AsyncIterator[FakeSes]:
    async with FakeSes().serving() as fake:
        yield fake


@pytest.fixture
async def ses(ses_server: FakeSes) -> AsyncIterator[SesEmail]:
    async with SesEmail(ses_server.settings(sender="Shop <shop@example.com>")) as vendor:
        yield vendor
