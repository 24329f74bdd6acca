"""gocomm's strategies at work: validation -> rate limit -> retry -> failover over two
in-process vendors.

Run it with ``.venv/bin/python examples/strategies.py`` (``scripts/demo`` does). Nothing leaves
the process: the "vendors" are gocomm's test doubles, one flaky and one healthy, and every call
that reaches them is printed, so you can watch each stage do its job:

* failover moves to the healthy vendor when the flaky one fails, and stays there;
* retry sends again when every vendor failed for a reason that may pass;
* the rate limit refuses a send without calling any vendor;
* a bad recipient is refused first, by validation: no quota, no vendor, no retry.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

from gocomm import CommError, Receipt, SendError, is_retryable
from gocomm.failover import FailoverSender
from gocomm.ratelimit import RateLimitSender, SlidingWindowLimiter
from gocomm.recipients import ValidatingSender, validate_phone
from gocomm.retryable import IntervalRetrySender, fixed
from gocomm.testing import ScriptedSender


class Traced:
    """Prints every call that reaches a vendor and how it ended."""

    def __init__(self, vendor: ScriptedSender) -> None:
        self.vendor = vendor
        self.name = vendor.name

    async def send(self, biz: str, args: Any, *to: str) -> Receipt | None:
        try:
            for number in to:
                validate_phone(number)  # a real vendor checks recipients before any network call
            receipt = await self.vendor.send(biz, args, *to)
        except Exception as exc:
            print(f"      {self.name:>7}: {type(exc).__name__}: {exc}")
            raise
        print(f"      {self.name:>7}: delivered {biz!r} to {', '.join(to)}")
        return receipt

    async def aclose(self) -> None:
        await self.vendor.aclose()


def per_recipient(biz: str, args: Any, to: Sequence[str]) -> list[str]:
    """One rate-limit key per recipient: each phone gets at most 3 messages a minute."""
    return [f"sms:{number}" for number in to]


async def main() -> None:
    # The strategies log each failure they absorb; show those lines too, on stdout so that
    # they come out at the step that logged them even when the output is piped.
    logging.basicConfig(
        level=logging.WARNING, format="      log  %(name)s: %(message)s", stream=sys.stdout
    )
    unavailable = SendError("503 service unavailable", vendor="flaky", code="503")
    # Scripts: one step per call, an exception fails it, None (and past the end) succeeds.
    flaky = Traced(ScriptedSender([unavailable, unavailable], name="flaky"))
    healthy = Traced(ScriptedSender([None, None, unavailable], name="healthy"))

    failover = FailoverSender([flaky, healthy])
    # The stack the container builds: validation first, then the limit, retry and failover.
    stack = ValidatingSender(
        RateLimitSender(
            IntervalRetrySender(failover, 3, fixed(0.05)),
            per_recipient,
            SlidingWindowLimiter(window=60.0, rate=3),
        ),
        "sms",
    )

    steps = [
        ("1. the flaky vendor fails; failover moves on to the healthy one", "+8613800000001"),
        ("2. the failover index now points at the healthy vendor", "+8613800000001"),
        ("3. both vendors fail once; retry waits 50 ms and sends again", "+8613800000001"),
        ("4. a fourth message to the same phone within a minute is limited", "+8613800000001"),
        ("5. another phone has its own quota", "+8613800000002"),
        ("6. a bad phone number: refused before the limit and the vendors", "12345"),
    ]
    async with stack:
        for title, number in steps:
            print(f"\n{title}")
            print(f"   send('login', {{'code': '1234'}}, {number!r})")
            try:
                receipt = await stack.send("login", {"code": "1234"}, number)
            except CommError as exc:
                kind = "retryable" if is_retryable(exc) else "not retryable"
                print(f"   -> {type(exc).__name__} ({kind}): {exc}")
                print(f"   -> failover index is still {failover.current_index}")
            else:
                assert receipt is not None
                print(
                    f"   -> sent by {receipt.vendor!r} after {receipt.attempts} attempt(s); "
                    f"failover index is now {failover.current_index}"
                )


if __name__ == "__main__":
    asyncio.run(main())
