"""A vendor for the queue tests that records every delivery durably, one line per call.

Each line is JSON: ``{"pid", "biz", "to", "params"}``, appended with ``O_APPEND`` (one ``write``
per line, so lines from several processes never interleave). A line is written when the vendor
call delivers; ``linger`` seconds later the call returns (the call is then still "in flight",
as a real vendor's would be while its answer travels back). It refuses each ``refuse_biz``
permanently, and fails its first ``transient_failures`` calls in each process retryably.

The queue tests load it in-process (``load_registry(plugins=[gocomm_recorder])``) and in
``gocomm worker`` subprocesses through the entry point of the ``*.dist-info`` next to it (put
this directory on ``PYTHONPATH``).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from gocomm.errors import PermanentError, SendError
from gocomm.plugins import VendorRegistry, VendorSettings, VendorSpec, hookimpl
from gocomm.sender import Receipt


class RecorderSettings(VendorSettings):
    path: str
    linger: float = 0.0
    refuse_biz: tuple[str, ...] = ()
    transient_failures: int = 0


class Recorder:
    name = "recorder"

    def __init__(self, settings: RecorderSettings) -> None:
        self.settings = settings
        self.calls = 0

    async def send(self, biz: str, args: Any, *to: str) -> Receipt:
        self.calls += 1
        if biz in self.settings.refuse_biz:
            raise PermanentError(f"template {biz!r} is not configured", vendor=self.name)
        if self.calls <= self.settings.transient_failures:
            raise SendError("vendor busy", vendor=self.name, retry_after=0.05)
        params = dict(args) if isinstance(args, dict) else {"subject": args.subject}
        line = json.dumps({"pid": os.getpid(), "biz": biz, "to": list(to), "params": params})
        fd = os.open(self.settings.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode() + b"\n")
        finally:
            os.close(fd)
        if self.settings.linger:
            await asyncio.sleep(self.settings.linger)
        return Receipt(vendor=self.name, message_ids=(f"{os.getpid()}-{self.calls}",))


def read_deliveries(path: str) -> list[dict[str, Any]]:
    """Every delivery recorded at ``path`` (none if the file does not exist)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []


@hookimpl
def gocomm_register_vendors(registry: VendorRegistry) -> None:
    registry.add(
        VendorSpec(
            "recorder",
            frozenset({"email", "sms"}),
            RecorderSettings,
            Recorder,
            "records deliveries to a file (queue tests)",
        )
    )
