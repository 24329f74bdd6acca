"""Fixtures: the postmark vendor against the package's own token-checking fake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from gocomm_postmark import PostmarkEmail
from gocomm_postmark.testing import FakePostmark


@pytest.fixture
async def postmark_server() -> AsyncIterator[FakePostmark]:
    async with FakePostmark().serving() as fake:
        yield fake


@pytest.fixture
async def postmark(postmark_server: FakePostmark) -> AsyncIterator[PostmarkEmail]:
    async with PostmarkEmail(postmark_server.settings(sender="Shop <shop@example.com>")) as vendor:
        yield vendor
