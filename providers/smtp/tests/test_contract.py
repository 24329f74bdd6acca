"""The gocomm vendor contract suite, run against SmtpSender and a real aiosmtpd server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest_asyncio
from gocomm_smtp import SmtpSender

from gocomm.testing.contract import FailureContract, FailureKind, VendorContract

from .conftest import PASSWORD, USERNAME, Certs, SmtpTestServer, make_settings


class TestSmtpContract(VendorContract, FailureContract):
    """STARTTLS with AUTH, the production setup, through the whole contract."""

    channel = "email"
    vendor_name = "smtp"
    secret_values = (PASSWORD,)

    @pytest_asyncio.fixture
    async def outbox(
        self, smtp_server: Callable[..., SmtpTestServer], certs: Certs
    ) -> SmtpTestServer:
        return smtp_server(tls="starttls", certs=certs, auth=True)

    @pytest_asyncio.fixture
    async def vendor(self, outbox: SmtpTestServer, certs: Certs) -> AsyncIterator[SmtpSender]:
        settings = make_settings(
            outbox, tls="starttls", ca_file=certs.ca_file, username=USERNAME, password=PASSWORD
        )
        async with SmtpSender(settings) as sender:
            yield sender

    async def make_failure(self, outbox: SmtpTestServer, kind: FailureKind) -> None:
        reply = "451 4.3.0 try again later" if kind == "retryable" else "554 5.7.1 rejected"
        outbox.behaviour.data_replies.append(reply)
