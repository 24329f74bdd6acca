"""A server or proxy echoing the Authorization header back never gets the credential into an
error or the failed-rows file (issue 17.6): Twilio's Basic ``base64(sid:token)`` is redacted in
every form the vendor sent it, not only the token's literal text."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import pytest
from gocomm_twilio import TwilioSms
from gocomm_twilio.testing import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

from gocomm.batch import FailedRowWriter, Journal, read_rows, run_batch
from gocomm.errors import SendError
from gocomm.testing.httpserver import HttpRequest, HttpResponse

BASIC = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode("ascii")


@dataclass
class EchoingTwilio(FakeTwilio):
    """Answers every request with an error whose message quotes the Authorization header."""

    echo: str = "header"

    def _answer(self, request: HttpRequest) -> HttpResponse:
        header = request.headers.get("authorization", "")
        if self.echo == "header":
            text = f"bad request; you sent Authorization: {header}"
        else:  # only the base64 part, as a proxy's debug page might
            text = f"credentials {header.partition(' ')[2]} rejected"
        return self.error(20500, text)


@pytest.mark.parametrize("echo", ["header", "base64"])
async def test_an_echoed_basic_authorization_is_redacted(echo: str) -> None:
    async with EchoingTwilio(echo=echo).serving() as fake:
        sms = TwilioSms(fake.settings(templates={"login": "code {code}"}))
        async with sms:
            with pytest.raises(SendError) as info:
                await sms.send("login", {"code": "1234"}, "+14155550100")
    message = str(info.value)
    assert "***" in message
    assert BASIC not in message and BASIC[:20] not in message
    assert AUTH_TOKEN not in message
    assert "20500" in message  # the rest of the vendor's answer is kept


async def test_the_failed_rows_file_never_holds_the_echoed_credential(tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("to,biz,param.code\n+14155550100,login,1234\n+14155550101,login,5678\n")
    failed = FailedRowWriter(tmp_path / "rows.failed.csv", "csv")
    async with EchoingTwilio().serving() as fake:
        sms = TwilioSms(fake.settings(templates={"login": "code {code}"}))
        async with sms:
            summary = await run_batch(
                sms,
                read_rows(source, "sms", "csv"),
                Journal(tmp_path / "rows.csv.journal"),
                on_outcome=lambda outcome: None if outcome.ok else failed.write(outcome),
            )
    failed.close()
    assert summary.failed == 2
    written = (tmp_path / "rows.failed.csv").read_text()
    assert "***" in written and "20500" in written
    assert BASIC not in written and AUTH_TOKEN not in written
