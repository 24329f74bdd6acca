"""The built-in development vendors (memory, console, file) against the vendor contract suite,
plus what is particular to each: the console's rendering and the file vendor's atomic files."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from gocomm.errors import InvalidMessage, SendError, is_retryable
from gocomm.messages import Attachment, Email
from gocomm.sender import Receipt
from gocomm.testing.contract import Delivery, VendorContract, mime_text
from gocomm.vendors.console import HEADER, MAX_BODY_CHARS, ConsoleVendor
from gocomm.vendors.file import FileVendor, write_atomically
from gocomm.vendors.memory import MemoryVendor


def _fingerprint(args: Any) -> str:
    if isinstance(args, Email):
        return "\n".join(p for p in (args.subject, args.text, args.html) if p)
    return json.dumps(dict(args), ensure_ascii=False)


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
    holds_connections = False

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
    holds_connections = False

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


def _names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


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
                text = mime_text(path.read_bytes())
                for _, address in getaddresses([str(message["To"])]):
                    deliveries.append(Delivery(address, text, path))
            elif path.suffix == ".json":
                record = json.loads(path.read_text())
                text = json.dumps(record["params"], ensure_ascii=False)
                deliveries.extend(Delivery(number, text, path) for number in record["to"])
            else:
                raise AssertionError(f"unexpected file {path.name} in the outbox")
        return deliveries


class _FileContract(VendorContract):
    vendor_name = "file"
    holds_connections = False

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


# what is particular to each vendor

RICH = Email(
    subject="Quarterly report",
    text="Plain body",
    html="<p>HTML body</p>",
    sender="reports@example.com",
    reply_to=("replies@example.com",),
    cc=("cc@example.com",),
    bcc=("hidden@example.com",),
    headers={"X-Campaign": "q3"},
    attachments=(
        Attachment("report.csv", b"a,b\n1,2\n", "text/csv"),
        Attachment("logo.png", b"\x89PNG fake", "image/png", content_id="logo"),
    ),
)


async def test_file_eml_is_a_complete_parseable_message(tmp_path: Path) -> None:
    async with FileVendor(tmp_path) as vendor:
        receipt = await vendor.send("report", RICH, "alice@example.com", "bob@example.com")
    (name,) = receipt.message_ids
    assert _names(tmp_path) == [name]
    message = _parse_eml(tmp_path / name)
    assert message["Subject"] == "Quarterly report"
    assert message["From"] == "reports@example.com"
    assert message["To"] == "alice@example.com, bob@example.com"
    assert message["Cc"] == "cc@example.com"
    assert message["Reply-To"] == "replies@example.com"
    assert message["X-Campaign"] == "q3"
    assert message["X-Gocomm-Biz"] == "report"
    assert message["Message-ID"].endswith("@example.com>")
    assert "hidden@example.com" not in (tmp_path / name).read_text()  # bcc: never a header
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    assert plain.get_content().strip() == "Plain body"
    assert html.get_content().strip() == "<p>HTML body</p>"
    attachments = {part.get_filename(): part for part in message.iter_attachments()}
    assert attachments["report.csv"].get_content_type() == "text/csv"
    assert attachments["report.csv"].get_payload(decode=True) == b"a,b\n1,2\n"
    # An inline image sits beside the HTML that refers to it (multipart/related).
    (logo,) = [part for part in message.walk() if part.get_filename() == "logo.png"]
    assert logo["Content-ID"] == "<logo>"
    assert logo.get_content_disposition() == "inline"


async def test_file_sms_json_holds_biz_numbers_and_params(tmp_path: Path) -> None:
    async with FileVendor(tmp_path) as vendor:
        receipt = await vendor.send("login", {"code": "4711"}, "+1 (555) 010-0199")
    record = json.loads((tmp_path / receipt.message_ids[0]).read_text())
    assert record["biz"] == "login"
    assert record["to"] == ["+15550100199"]  # normalised to E.164
    assert record["params"] == {"code": "4711"}
    assert receipt.message_ids[0].endswith(".json")


async def test_file_concurrent_sends_leave_only_whole_files(tmp_path: Path) -> None:
    body = "x" * 200_000  # large enough that a non-atomic write could be seen half done
    async with FileVendor(tmp_path) as vendor:
        receipts = await asyncio.gather(
            *(vendor.send("big", Email(subject=f"n{i}", text=body), "a@example.com")
              for i in range(20))
        )  # fmt: skip
    names = sorted(r.message_ids[0] for r in receipts)
    assert _names(tmp_path) == names  # no temporary leftovers
    for name in names:
        body_part = _parse_eml(tmp_path / name).get_body(preferencelist=("plain",))
        assert body_part is not None
        assert body_part.get_content().rstrip("\n") == body


_DISK_FULL_MIDWAY = """
import asyncio, resource, signal, sys
from gocomm.errors import SendError
from gocomm.messages import Email
from gocomm.vendors.file import FileVendor

# The file size limit makes the write fail after 4 KiB of the message (EFBIG), as a full disk
# or a crash would: whatever the vendor writes to, it has begun writing.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))

async def main():
    try:
        await FileVendor(sys.argv[1]).send("b", Email(subject="s", text="x" * 100_000), "a@b.com")
    except SendError as exc:
        print("SendError", exc)

asyncio.run(main())
"""


def test_file_write_cut_off_midway_leaves_no_file(tmp_path: Path) -> None:
    # A write that stops part way leaves nothing behind: not a half .eml, not a temporary file.
    result = subprocess.run(
        [sys.executable, "-c", _DISK_FULL_MIDWAY, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.startswith("SendError"), result.stdout + result.stderr
    assert _names(tmp_path) == []


def test_write_atomically_removes_its_temporary_file_on_failure(tmp_path: Path) -> None:
    (tmp_path / "taken.eml").mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(OSError):
        write_atomically(tmp_path, "taken.eml", b"data")
    assert [p.name for p in tmp_path.iterdir()] == ["taken.eml"]
    assert list((tmp_path / "taken.eml").iterdir()) == []


async def test_file_write_failure_is_a_retryable_send_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    async with FileVendor(blocker / "outbox") as vendor:
        with pytest.raises(SendError) as caught:
            await vendor.send("login", {"code": "1"}, "+15550100")
    assert caught.value.vendor == "file"
    assert is_retryable(caught.value)
    assert str(blocker) in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)


async def test_file_creates_the_directory_on_first_send(tmp_path: Path) -> None:
    vendor = FileVendor(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()  # building the vendor touches no disk
    await vendor.send("login", {"code": "1"}, "+15550100")
    assert len(list((tmp_path / "a" / "b").iterdir())) == 1
    await vendor.aclose()


async def test_console_renders_every_part_and_clips_huge_bodies() -> None:
    stream = io.StringIO()
    vendor = ConsoleVendor(stream=stream)
    receipt = await vendor.send("report", RICH, "alice@example.com")
    out = stream.getvalue()
    for expected in (
        "biz=report",
        receipt.message_ids[0],
        "To: alice@example.com",
        "Cc: cc@example.com",
        "Bcc: hidden@example.com",
        "Reply-To: replies@example.com",
        "From: reports@example.com",
        "Subject: Quarterly report",
        "X-Campaign: q3",
        "Plain body",
        "[html body, 16 characters]",
        "[attachment report.csv (text/csv, 8 B)]",
    ):
        assert expected in out
    stream.truncate(0)
    await vendor.send("big", Email(subject="big", text="y" * (MAX_BODY_CHARS + 500)), "a@b.io")
    out = stream.getvalue()
    assert "y" * MAX_BODY_CHARS in out
    assert "y" * (MAX_BODY_CHARS + 1) not in out
    assert "(500 more characters)" in out


async def test_console_html_only_email_prints_the_html() -> None:
    stream = io.StringIO()
    await ConsoleVendor(stream=stream).send("x", Email(subject="s", html="<b>hi</b>"), "a@b.io")
    assert "<b>hi</b>" in stream.getvalue()


@pytest.mark.parametrize("vendor_class", [MemoryVendor, ConsoleVendor])
async def test_wrong_argument_types_are_invalid_messages(vendor_class: type[Any]) -> None:
    vendor = vendor_class(stream=io.StringIO()) if vendor_class is ConsoleVendor else vendor_class()
    with pytest.raises(InvalidMessage, match="not str"):
        await vendor.send("login", "just a string", "+15550100")
    with pytest.raises(InvalidMessage, match="'code' must map a str name to a str value"):
        await vendor.send("login", {"code": 1234}, "+15550100")


async def test_memory_records_numbers_in_e164() -> None:
    vendor = MemoryVendor()
    receipt = await vendor.send("login", {"code": "1"}, "+44 20 7946 0958")
    assert isinstance(receipt, Receipt)
    assert vendor.sent[0].to == ("+442079460958",)


# the contract suite itself, as a third-party package would run it

THIRD_PARTY_TESTS = '''
import pytest
import pytest_asyncio

from gocomm.testing.contract import Delivery, VendorContract, mime_text
from gocomm.vendors.memory import MemoryVendor


class Outbox:
    def __init__(self, vendor):
        self.vendor = vendor

    async def received(self):
        return [Delivery(r, str(s.args), s) for s in self.vendor.sent for r in s.to]


class TestThirdParty(VendorContract):
    channel = "sms"
    vendor_name = "memory"
    holds_connections = False  # a vendor in memory: no connection to count

    @pytest.fixture
    def memory(self):
        return MemoryVendor()

    @pytest.fixture
    def outbox(self, memory):
        return Outbox(memory)

    @pytest_asyncio.fixture
    async def vendor(self, memory):
        async with memory:
            yield memory
'''


def test_contract_runs_in_a_plain_project_in_auto_mode(tmp_path: Path) -> None:
    # Strict mode is proven by the docs example (tests/test_plugins.py), which runs in it.
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    (tmp_path / "test_third_party.py").write_text(THIRD_PARTY_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    contract_tests = [n for n in dir(VendorContract) if n.startswith("test_")]
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary.startswith(f"{len(contract_tests)} passed"), summary


async def test_file_cancelled_send_finishes_its_write_before_propagating(tmp_path: Path) -> None:
    vendor = FileVendor(tmp_path)
    big = Email(subject="big", text="z" * 2_000_000)
    task = asyncio.create_task(vendor.send("big", big, "a@example.com"))
    await asyncio.sleep(0)  # the send is now waiting for its write thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The write was not orphaned: by the time the cancellation arrived it was complete.
    (name,) = _names(tmp_path)
    assert name.endswith(".eml")
    body = _parse_eml(tmp_path / name).get_body(preferencelist=("plain",))
    assert body is not None
    assert len(body.get_content().rstrip("\n")) == 2_000_000
