"""Fixtures: the sendgrid vendor against the package's own bearer-key-checking fake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gocomm_sendgrid import SendGridEmail
from gocomm_sendgrid.testing import FakeSendGrid


@pytest.fixture
async def sendgrid_server() -> AsyncIterator[FakeSendGrid]:
    async with FakeSendGrid().serving() as fake:
        yield fake


@pytest.fixture
async def sendgrid(sendgrid_server: FakeSendGrid) -> AsyncIterator[SendGridEmail]:
    async with SendGridEmail(sendgrid_server.settings(sender="Shop <shop@example.com>")) as vendor:
        yield vendor
