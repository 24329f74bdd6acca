"""The built-in development vendors (memory, console, file) against the vendor contract suite,
plus what is particular to each: the console's rendering and the file vendor's atomic files."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from gocomm.messages import Email
from gocomm.testing.contract import Delivery, VendorContract
from gocomm.vendors.console import HEADER, ConsoleVendor
from gocomm.vendors.file import FileVendor
from gocomm.vendors.memory import MemoryVendor


def _fingerprint(args: Any) -> str:
    if isinstance(args, Email):
        return "\n".join(p for p in (args.subject, args.text, args.html) if p)
    return json.dumps(dict(args))


# memory


class MemoryOutbox:
    def __init__(self, vendor: MemoryVendor) -> None:
        self.vendor = vendor

    async def received(self) -> list[Delivery]:
        return [
            Delivery(recipient, _fingerprint(sent.args), sent)
            for sent in self.vendor.sent
            for recipient in sent.to
        ]


class _MemoryContract(VendorContract):
    vendor_name = "memory"

    @pytest.fixture
    def memory_vendor(self) -> MemoryVendor:
        return MemoryVendor()

    @pytest.fixture
    def outbox(self, memory_vendor: MemoryVendor) -> MemoryOutbox:
        return MemoryOutbox(memory_vendor)

    @pytest_asyncio.fixture
    async def vendor(self, memory_vendor: MemoryVendor) -> AsyncIterator[MemoryVendor]:
        async with memory_vendor:
            yield memory_vendor


class TestMemoryEmail(_MemoryContract):
    channel = "email"


class TestMemorySms(_MemoryContract):
    channel = "sms"


# console


class ConsoleOutbox:
    """Reads what the console vendor printed, through pytest's capsys."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.printed = ""

    async def received(self) -> list[Delivery]:
        self.printed += self.capsys.readouterr().out
        deliveries = []
        for block in self.printed.split(HEADER)[1:]:
            to_line = next(line for line in block.splitlines() if line.startswith("To: "))
            for recipient in to_line.removeprefix("To: ").split(", "):
                deliveries.append(Delivery(recipient, block))
        return deliveries


class _ConsoleContract(VendorContract):
    vendor_name = "console"

    @pytest.fixture
    def outbox(self, capsys: pytest.CaptureFixture[str]) -> ConsoleOutbox:
        return ConsoleOutbox(capsys)

    @pytest_asyncio.fixture
    async def vendor(self) -> AsyncIterator[ConsoleVendor]:
        async with ConsoleVendor() as vendor:
            yield vendor


class TestConsoleEmail(_ConsoleContract):
    channel = "email"


class TestConsoleSms(_ConsoleContract):
    channel = "sms"


# file


def _parse_eml(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        message = BytesParser(policy=policy.default).parse(handle)
    assert isinstance(message, EmailMessage)
    return message


class FileOutbox:
    """Reads the files the file vendor wrote, parsing each as the format it claims to be."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def received(self) -> list[Delivery]:
        if not self.directory.exists():
            return []
        deliveries = []
        for path in sorted(self.directory.iterdir()):
            if path.suffix == ".eml":
                message = _parse_eml(path)
                body = message.get_body(preferencelist=("plain", "html"))
                assert body is not None
                text = f"{message['Subject']}\n{body.get_content()}"
                for _, address in getaddresses([str(message["To"])]):
                    deliveries.append(Delivery(address, text, path))
            elif path.suffix == ".json":
                record = json.loads(path.read_text())
                text = json.dumps(record["params"])
                deliveries.extend(Delivery(number, text, path) for number in record["to"])
            else:
                raise AssertionError(f"unexpected file {path.name} in the outbox")
        return deliveries


class _FileContract(VendorContract):
    vendor_name = "file"

    @pytest.fixture
    def outbox(self, tmp_path: Path) -> FileOutbox:
        return FileOutbox(tmp_path / "outbox")

    @pytest_asyncio.fixture
    async def vendor(self, outbox: FileOutbox) -> AsyncIterator[FileVendor]:
        async with FileVendor(outbox.directory) as vendor:
            yield vendor


class TestFileEmail(_FileContract):
    channel = "email"


class TestFileSms(_FileContract):
    channel = "sms"
