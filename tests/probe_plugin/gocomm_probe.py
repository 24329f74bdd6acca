"""probe: a vendor for gocomm's CLI tests (tests/test_cli.py).

It writes one JSON file per recipient reached to ``directory``, can fail chosen recipients
(``fail_to`` permanently, ``flaky_to`` once and retryably), and can block forever after
``hang_after`` deliveries so that a test can kill a batch at a known point.

The CLI tests run ``gocomm`` subprocesses with this directory on ``PYTHONPATH``: the entry point
of the ``*.dist-info`` next to it registers it, exactly as a third-party plugin package is found.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from typing import Any

from pydantic import SecretStr

from gocomm.errors import PermanentError, SendError
from gocomm.plugins import VendorRegistry, VendorSettings, VendorSpec, hookimpl
from gocomm.recipients import validate_email, validate_phone
from gocomm.sender import AsyncCloseable, Receipt


class ProbeSettings(VendorSettings):
    directory: str
    fail_to: tuple[str, ...] = ()
    flaky_to: tuple[str, ...] = ()
    hang_after: int | None = None
    token: SecretStr | None = None


class ProbeSender(AsyncCloseable):
    name = "probe"

    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings
        self.delivered = 0
        self.flaked: set[str] = set()

    def _write(self, prefix: str, payload: dict[str, Any]) -> None:
        path = os.path.join(self.settings.directory, f"{prefix}-{uuid.uuid4().hex}.json")
        with open(path + ".tmp", "w") as handle:
            json.dump(payload, handle)
        os.replace(path + ".tmp", path)

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        for address in to:
            if "@" in address:
                validate_email(address)
            else:
                validate_phone(address)
        if self.settings.hang_after is not None and self.delivered >= self.settings.hang_after:
            self._write("blocked", {"to": list(to)})
            await asyncio.Event().wait()  # until the test kills the process
        flaky = set(to) & set(self.settings.flaky_to) - self.flaked
        if flaky:  # the first send to a flaky recipient fails, retryably, reaching nobody
            self.flaked |= flaky
            raise SendError("probe is busy", vendor="probe", code="busy")
        failing = [t for t in to if t in self.settings.fail_to]
        body = dict(args) if isinstance(args, dict) else {"subject": args.subject}
        for address in to:
            if address not in failing:
                self._write("sent", {"biz": biz, "args": body, "to": address})
        self.delivered += 1
        if failing:
            raise PermanentError(
                f"probe refuses {len(failing)} recipient(s)", vendor="probe", unsent=failing
            )
        return Receipt(vendor="probe", message_ids=(f"probe-{self.delivered}",))

    async def _aclose(self) -> None:
        self._write("closed", {})


@hookimpl
def gocomm_register_vendors(registry: VendorRegistry) -> None:
    registry.add(
        VendorSpec(
            name="probe",
            channels=frozenset({"sms", "email"}),
            settings=ProbeSettings,
            factory=ProbeSender,
            description="writes each delivery to a directory (gocomm CLI tests)",
        )
    )
