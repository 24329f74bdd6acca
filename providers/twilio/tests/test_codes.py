"""Every documented Twilio code of the Messages API, classified: a table-driven test.

The ``twilio`` SDK ships no code list, so this table is built from Twilio's error dictionary
(https://www.twilio.com/docs/api/errors): the codes creating a message answers (2xxxx, as an
HTTP error) and the delivery codes a message can be created ``failed`` with (3xxxx). Each is
answered by :class:`FakeTwilio` for the first of two numbers, and must become what its kind
says, the other number going on or not.
"""

from __future__ import annotations

import pytest
from gocomm_twilio import TwilioSms
from gocomm_twilio.codes import ERROR_CODES, RECIPIENT_CODES, UNSERVED
from gocomm_twilio.testing import FakeTwilio

from gocomm.errors import InvalidRecipient, PermanentError, SendError, is_retryable
from gocomm.sender import Receipt

from .conftest import make_settings

ARGS = {"code": "4321", "minutes": "10"}
FIRST, SECOND = "+14155550000", "+14155550001"

# Creating the message fails with the code (an HTTP error answer).
REQUEST = {
    "retryable": [20429, 20500, 20503, 21611],
    "permanent": [
        20003, 20005, 20008, 20404, 21212, 21601, 21602, 21603, 21604, 21606, 21609, 21617,
        21619, 21620, 21621, 21623, 21703, 21704, 21705,
    ],
    "unserved": [21408, 21608, 21612],
    "refusing": [21265, 21266, 21610, 21635],
    "invalid": [21211, 21614],
}  # fmt: skip

# The message is created with status "failed" and the code as its error_code.
DELIVERY = {
    "retryable": [30001, 30003, 30008, 30009, 30017],
    "permanent": [30002, 30007, 30010, 30019, 30032, 30034],
    "refusing": [30004, 30005, 30006],
}

TABLE = [
    (where, code, kind)
    for where, table in (("request", REQUEST), ("delivery", DELIVERY))
    for kind, codes in table.items()
    for code in codes
]


@pytest.mark.parametrize(("where", "code", "kind"), TABLE)
def test_every_documented_code_is_classified_explicitly(where: str, code: int, kind: str) -> None:
    text = str(code)
    assert ERROR_CODES.knows(text), f"{code} falls to the default for unknown codes"
    assert ERROR_CODES.is_permanent(text) is (kind != "retryable")
    assert ERROR_CODES.refuses(text) is (kind in ("refusing", "invalid"))
    assert (text in UNSERVED) is (kind == "unserved")
    assert (text in RECIPIENT_CODES) is (kind in ("unserved", "refusing", "invalid"))


def test_the_table_holds_every_classified_code_once() -> None:
    codes = [str(code) for _, code, _ in TABLE]
    assert len(codes) == len(set(codes))
    classified = ERROR_CODES.permanent | ERROR_CODES.retryable | RECIPIENT_CODES
    assert classified == set(codes)


def _expected(where: str, kind: str) -> tuple[type[BaseException] | None, tuple[str, ...], bool]:
    """(the error raised or None for a receipt, who is owed, whether SECOND got it)."""
    goes_on = where == "delivery" or kind in ("unserved", "refusing", "invalid")
    if kind in ("refusing", "invalid"):
        return None, (), True  # refused for good; the others got it: a receipt naming it
    error = SendError if kind == "retryable" else PermanentError
    return error, ((FIRST,) if goes_on else (FIRST, SECOND)), goes_on


async def test_each_code_becomes_what_its_kind_says() -> None:
    wrong: list[str] = []
    async with FakeTwilio().serving() as fake:
        settings = make_settings(fake.url)
        async with TwilioSms(settings, max_concurrency=1) as twilio:
            for where, code, kind in [*TABLE, ("request", 29999, "retryable")]:
                fake.number_codes.clear()
                fake.number_failures.clear()
                (fake.number_codes if where == "request" else fake.number_failures)[FIRST] = code
                before = len(fake.deliveries)
                error_type, owed, second_sent = _expected(where, kind)
                try:
                    outcome: Receipt | SendError = await twilio.send("login", ARGS, FIRST, SECOND)
                except SendError as exc:
                    outcome = exc
                got_second = [d.recipient for d in fake.deliveries[before:]] == [SECOND]
                if error_type is None:
                    ok = isinstance(outcome, Receipt) and outcome.refused == (FIRST,)
                else:
                    ok = (
                        isinstance(outcome, SendError)
                        and is_retryable(outcome) is (kind == "retryable")
                        and isinstance(outcome, error_type)
                        and (outcome.unsent, outcome.refused) == (owed, ())
                    )
                if not ok or got_second is not second_sent:
                    wrong.append(f"{where} {code} ({kind}): {outcome!r}, second sent {got_second}")
    assert wrong == []


@pytest.mark.parametrize(
    ("where", "code", "invalid"),
    [("request", 21211, True), ("request", 21610, False), ("delivery", 30005, False)],
)
async def test_a_refused_number_alone_raises_naming_it(
    twilio_server: FakeTwilio, where: str, code: int, invalid: bool
) -> None:
    table = twilio_server.number_codes if where == "request" else twilio_server.number_failures
    table[FIRST] = code
    async with TwilioSms(make_settings(twilio_server.url)) as twilio:
        with pytest.raises(PermanentError) as caught:
            await twilio.send("login", ARGS, FIRST)
    assert isinstance(caught.value, InvalidRecipient) is invalid
    assert (caught.value.unsent, caught.value.refused) == ((), (FIRST,))
