"""gocomm against Twilio's official Python SDK (``twilio``, a test extra).

The SDK's async client creates a message on :class:`FakeTwilio` and is accepted, so code written
with the SDK can be tested against the fake; and the request it sends matches gocomm's: the same
Basic ``Authorization`` header, content type and form fields.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from gocomm_twilio import TwilioSms
from gocomm_twilio.testing import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, FakeTwilio
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from gocomm.testing.httpserver import HttpRequest

from .conftest import make_settings

# The SDK (9.13) still passes aiohttp's deprecated BasicAuth: its warning, not ours.
pytestmark = [
    pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning"),
]

TO = "+14155550100"
ARGS = {"code": "4321", "minutes": "10"}
BODY = "Your code is 4321, valid 10 minutes."  # what gocomm renders from ARGS


async def _sdk_send(fake: FakeTwilio, token: str = AUTH_TOKEN) -> str:
    """Create the message with the SDK's async client against ``fake``; its sid."""
    http = AsyncTwilioHttpClient()
    try:
        client = Client(ACCOUNT_SID, token, http_client=http)
        client.api.base_url = fake.url  # the SDK's one setting for where the API lives
        message = await client.messages.create_async(to=TO, from_=FROM_NUMBER, body=BODY)
    finally:
        await http.close()
    assert message.sid is not None
    return message.sid


def _form(request: HttpRequest) -> dict[str, list[str]]:
    return parse_qs(request.body.decode("ascii"), strict_parsing=True)


async def test_the_official_sdk_is_accepted_by_the_fake(twilio_server: FakeTwilio) -> None:
    sid = await _sdk_send(twilio_server)
    assert sid.startswith("SM")
    assert [(d.recipient, d.text) for d in twilio_server.deliveries] == [(TO, BODY)]


async def test_the_fake_refuses_the_sdk_with_a_wrong_token(twilio_server: FakeTwilio) -> None:
    with pytest.raises(TwilioRestException) as caught:
        await _sdk_send(twilio_server, token=AUTH_TOKEN + "x")
    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert twilio_server.deliveries == []


async def test_the_sdks_request_matches_gocomms(twilio_server: FakeTwilio) -> None:
    await _sdk_send(twilio_server)
    async with TwilioSms(make_settings(twilio_server.url)) as twilio:
        await twilio.send("login", ARGS, TO)
    assert twilio_server.server is not None
    sdk, ours = twilio_server.server.requests
    assert (ours.method, ours.path) == (sdk.method, sdk.path)
    assert ours.headers["authorization"] == sdk.headers["authorization"]
    assert ours.headers["content-type"] == sdk.headers["content-type"]
    assert _form(ours) == _form(sdk) == {"To": [TO], "From": [FROM_NUMBER], "Body": [BODY]}
