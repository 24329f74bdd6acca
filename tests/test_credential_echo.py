"""A server or proxy echoing the Authorization header back never gets the credential into an
error or the failed-rows file (issue 17.6): Twilio's Basic ``base64(sid:token)`` is redacted in
every form the vendor sent it, not only the token's literal text."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest
from gocomm_twilio import TwilioSms
from gocomm_twilio.testing import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

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
