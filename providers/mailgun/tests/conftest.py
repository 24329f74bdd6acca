"""Fixtures: the mailgun vendor against the package's own basic-auth-checking fake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gocomm_mailgun import MailgunEmail
from gocomm_mailgun.testing import FakeMailgun


@pytest.fixture
async def mailgun_server() -> AsyncIterator[FakeMailgun]:
    async with FakeMailgun().serving() as fake:
        yield fake


@pytest.fixture
async def mailgun(mailgun_server: FakeMailgun) -> AsyncIterator[MailgunEmail]:
    async with MailgunEmail(mailgun_server.settings(sender="Shop <shop@example.com>")) as vendor:
        yield vendor
