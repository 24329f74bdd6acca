"""gocomm.batch in process: file layouts, the journal, the send loop and the failed-rows file."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from gocomm import events
from gocomm.batch import (
    BatchInputError,
    FailedRowWriter,
    Journal,
    JournalError,
    Outcome,
    check_rows,
    detect_format,
    read_rows,
    run_batch,
)
from gocomm.errors import PermanentError, SendError
from gocomm.messages import Email
from gocomm.ratelimit import RateLimitSender, SlidingWindowLimiter
from gocomm.retryable import RetrySender
from gocomm.sender import Receipt
from gocomm.testing import MemorySender, ScriptedSender


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_sms_csv_layout(tmp_path: Path) -> None:
    source = write(
        tmp_path / "rows.csv",
        "to,biz,param.code,param.name\n"
        "+86 138 0013 8000,login,1234,Ada\n"
        "\n"
        '"+8613800000001;+8613800000002",promo,,"multi\nline"\n',
    )
    rows = list(read_rows(source, "sms", "csv"))
    assert [(r.line, r.biz, r.to, r.args) for r in rows] == [
        (2, "login", ("+8613800138000",), {"code": "1234", "name": "Ada"}),
        (4, "promo", ("+8613800000001", "+8613800000002"), {"name": "multi\nline"}),
    ]
    assert rows[0].key != rows[1].key


def test_sms_jsonl_layout(tmp_path: Path) -> None:
    source = write(
        tmp_path / "rows.jsonl",
        '{"to": "+8613800138000", "biz": "login", "args": {"code": 1234}}\n'
        "\n"
        '{"to": ["+8613800000001", "+8613800000002"], "biz": "promo", "error": "old"}\n',
    )
    rows = list(read_rows(source, "sms", "jsonl"))
    assert [(r.line, r.to, r.args) for r in rows] == [
        (1, ("+8613800138000",), {"code": "1234"}),
        (3, ("+8613800000001", "+8613800000002"), {}),
    ]
    assert "error" not in rows[1].raw


def test_email_layouts(tmp_path: Path) -> None:
    source = write(
        tmp_path / "mail.csv",
        "to,subject,text,html,cc,bcc,biz\n"
        "ada@example.com,Hi,plain,<p>x</p>,b@example.com;c@example.com,d@example.com,welcome\n",
    )
    (row,) = read_rows(source, "email", "csv")
    assert row.biz == "welcome"
    assert row.args == Email(
        subject="Hi",
        text="plain",
        html="<p>x</p>",
        cc=("b@example.com", "c@example.com"),
        bcc=("d@example.com",),
    )
    lines = write(tmp_path / "mail.jsonl", '{"to": ["a@example.com"], "subject": "S", "text": "t"}')
    (row,) = read_rows(lines, "email", "jsonl")
    assert row.to == ("a@example.com",)
    assert row.biz == "email"


@pytest.mark.parametrize(
    ("name", "content", "channel", "message"),
    [
        ("a.csv", "to,biz,bogus\n", "sms", "unknown column 'bogus'"),
        ("a.csv", "to,biz,to\n", "sms", "appears twice"),
        ("a.csv", "to,text\n", "email", "no 'subject' column"),
        ("a.jsonl", "[1, 2]\n", "sms", "a.jsonl:1: expected a JSON object"),
        ("a.jsonl", "{oops\n", "sms", "a.jsonl:1: not valid JSON"),
        ("a.jsonl", '{"to": "+8613800000001"}\n', "sms", "'biz' is missing"),
        ("a.jsonl", '{"to": "12345", "biz": "x"}\n', "sms", "invalid phone number '12345'"),
        ("a.jsonl", '{"to": "x@y.com", "biz": "x", "colour": 1}\n', "sms", "unknown key 'colour'"),
        ("a.jsonl", '{"to": "+8613800000001", "biz": "x", "args": {"a": true}}\n', "sms", "'a'"),
        ("a.jsonl", '{"to": "a@example.com", "subject": "S"}\n', "email", "text or an html"),
        ("a.jsonl", '{"to": "a@example.com", "subject": "S\\r\\nBcc: x", "text": "t"}\n', "email",
         "CR"),
        ("a.jsonl", '{"to": "", "subject": "S", "text": "t"}\n', "email", "'to' is missing"),
    ],
)
def test_bad_files_name_the_line_and_the_field(
    tmp_path: Path, name: str, content: str, channel: str, message: str
) -> None:
    source = write(tmp_path / name, content)
    fmt = detect_format(source)
    with pytest.raises(BatchInputError) as caught:
        list(read_rows(source, channel, fmt))
    assert message in str(caught.value)


def test_check_rows_collects_several_bad_rows(tmp_path: Path) -> None:
    good = "+8613800000001,login,1\n"
    source = write(tmp_path / "a.csv", "to,biz,param.code\n" + good + "123,login,2\n" * 3 + good)
    count, errors = check_rows(source, "sms", "csv", max_errors=2)
    assert count == 5
    assert [str(e).split(": ")[0] for e in errors] == [f"{source}:3", f"{source}:4"]


def test_format_detection(tmp_path: Path) -> None:
    assert detect_format(tmp_path / "a.CSV") == "csv"
    assert detect_format(tmp_path / "a.ndjson") == "jsonl"
    assert detect_format(tmp_path / "a.txt", "csv") == "csv"
    with pytest.raises(BatchInputError, match="--format"):
        detect_format(tmp_path / "a.txt")


def test_journal_survives_a_torn_line_and_narrows_partly_sent_rows(tmp_path: Path) -> None:
    source = write(
        tmp_path / "rows.csv",
        "to,biz\n+8613800000001,a\n+8613800000002;+8613800000003,b\n+8613800000004,c\n",
    )
    first, second, third = read_rows(source, "sms", "csv")
    path = tmp_path / "rows.journal"
    journal = Journal(path)
    journal.open()
    journal.record(first, first.to)
    journal.record(second, ["+8613800000002"])
    journal.close()
    with path.open("ab") as handle:
        handle.write(b'{"key": "4:')  # the process died mid-write

    resumed = Journal(path)
    assert resumed.owed(first) == ()
    assert resumed.owed(second) == ("+8613800000003",)
    assert resumed.owed(third) == third.to
    resumed.open()
    resumed.record(third, third.to)
    resumed.close()
    assert Journal(path).owed(third) == ()
    assert path.read_bytes().count(b"\n") == 4  # the torn line was ended, not extended


def test_one_run_per_journal_and_the_next_reads_what_the_last_wrote(tmp_path: Path) -> None:
    source = write(tmp_path / "rows.csv", "to,biz\n+8613800000001,a\n")
    (row,) = read_rows(source, "sms", "csv")
    path = tmp_path / "rows.journal"
    running, waiting = Journal(path), Journal(path)
    running.open()
    with pytest.raises(BatchInputError, match="in use by another gocomm batch"):
        waiting.open()
    running.record(row, row.to)  # after `waiting` read the journal, before it could lock it
    running.close()
    waiting.open()
    assert waiting.owed(row) == ()  # read again under the lock: nothing is sent twice
    waiting.close()


def test_journal_ignores_a_row_whose_content_changed(tmp_path: Path) -> None:
    path = tmp_path / "rows.journal"
    before = write(tmp_path / "rows.csv", "to,biz,param.code\n+8613800000001,login,1\n")
    (row,) = read_rows(before, "sms", "csv")
    journal = Journal(path)
    journal.open()
    journal.record(row, row.to)
    journal.close()
    after = write(tmp_path / "rows.csv", "to,biz,param.code\n+8613800000001,login,2\n")
    (changed,) = read_rows(after, "sms", "csv")
    assert Journal(path).owed(changed) == changed.to


async def test_rows_added_above_do_not_resend_the_rows_below(tmp_path: Path) -> None:
    """The journal knows a row by its content, not its line: editing the file between runs
    sends only the new rows; two identical rows are still two sends."""
    source = write(
        tmp_path / "rows.csv",
        "to,biz\n+8613800000001,a\n+8613800000002,b\n+8613800000002,b\n",
    )
    vendor = MemorySender()
    await run_batch(vendor, read_rows(source, "sms", "csv"), Journal(tmp_path / "j"))
    assert sorted(m.to for m in vendor.sent) == [
        ("+8613800000001",),
        ("+8613800000002",),
        ("+8613800000002",),
    ]
    write(
        tmp_path / "rows.csv",
        "to,biz\n+8613800000009,new\n+8613800000001,a\n+8613800000002,b\n"
        "+8613800000002,b\n+8613800000002,b\n",
    )
    vendor.sent.clear()
    again = await run_batch(vendor, read_rows(source, "sms", "csv"), Journal(tmp_path / "j"))
    assert (again.skipped, again.sent) == (3, 2)
    assert sorted((m.biz, m.to) for m in vendor.sent) == [
        ("b", ("+8613800000002",)),
        ("new", ("+8613800000009",)),
    ]


async def test_run_batch_bounds_concurrency_and_journals_each_send(tmp_path: Path) -> None:
    numbers = [f"+86138000{n:05d}" for n in range(20)]
    source = write(tmp_path / "rows.csv", "to,biz\n" + "".join(f"{n},x\n" for n in numbers))
    in_flight = peak = 0
    gate = asyncio.Event()

    class Slow(MemorySender):
        async def send(self, biz: str, args: Any, *to: str) -> Receipt:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            if peak == 4:
                gate.set()
            await gate.wait()
            in_flight -= 1
            return await super().send(biz, args, *to)

    vendor = Slow()
    journal = Journal(tmp_path / "j")
    summary = await run_batch(vendor, read_rows(source, "sms", "csv"), journal, concurrency=4)
    journal.close()
    assert peak == 4
    assert summary.sent == 20
    assert summary.per_vendor == {"memory": 20}
    assert sorted(m.to[0] for m in vendor.sent) == numbers
    again = await run_batch(vendor, read_rows(source, "sms", "csv"), Journal(tmp_path / "j"))
    assert (again.skipped, again.sent, len(vendor.sent)) == (20, 0, 20)


async def test_run_batch_counts_failures_retries_and_limits_from_events(tmp_path: Path) -> None:
    """Retries and limits are what the strategies' events said (gocomm.events), not guessed
    from the errors: a real limit stage over a real retry stage over a scripted vendor."""
    numbers = ["+8613800000000"] * 2 + [f"+861380000000{i}" for i in (2, 3, 4)]
    source = write(
        tmp_path / "rows.jsonl",
        "".join(
            json.dumps({"to": to, "biz": "x", "args": {"n": str(i)}}) + "\n"
            for i, to in enumerate(numbers)
        ),
    )
    down = SendError("down", vendor="v")
    vendor = ScriptedSender(
        [
            down, down, None,  # row 0: sent at the third attempt
            # row 1: the same number within the window: limited, the vendor is not called
            down, down, down,  # row 2: RetryExhausted after 3 attempts
            PermanentError("no", vendor="v"),  # row 3: not retried
            None,  # row 4
        ],
        name="v",
    )  # fmt: skip
    limiter = SlidingWindowLimiter(60, 1)
    stack = RateLimitSender(RetrySender(vendor, 3), lambda b, a, to: f"sms:{to[0]}", limiter)
    outcomes: list[Outcome] = []
    journal = Journal(tmp_path / "j")
    summary = await run_batch(
        stack, read_rows(source, "sms", "jsonl"), journal, concurrency=1,
        on_outcome=outcomes.append,
    )  # fmt: skip
    journal.close()
    assert (summary.sent, summary.failed, summary.limited) == (2, 3, 1)
    assert summary.retries == 2 + 2  # row 0 and row 2 each retried twice
    assert summary.per_vendor == {"v": 2}
    assert [(o.ok, o.retries, o.limited) for o in outcomes] == [
        (True, 2, False),
        (False, 0, True),
        (False, 2, False),
        (False, 0, False),
        (True, 0, False),
    ]
    assert not events._listeners  # the run's listener is gone with it


async def test_cancellation_stops_the_batch(tmp_path: Path) -> None:
    source = write(tmp_path / "rows.csv", "to,biz\n+8613800000001,x\n+8613800000002,x\n")
    both_in_flight = asyncio.Event()

    class Hanging(ScriptedSender):
        async def send(self, biz: str, args: Any, *to: str) -> Receipt:
            if len(self.calls) == 1:
                both_in_flight.set()
            return await super().send(biz, args, *to)

    vendor = Hanging([60.0, 60.0])
    journal = Journal(tmp_path / "j")
    task = asyncio.create_task(run_batch(vendor, read_rows(source, "sms", "csv"), journal))
    await both_in_flight.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    journal.close()
    assert not (tmp_path / "j").read_bytes()


def test_failed_rows_are_written_in_the_input_format(tmp_path: Path) -> None:
    for name, content in [
        ("rows.csv", "to,biz,param.code\n+8613800000001;+8613800000002,login,7\n"),
        ("rows.jsonl", '{"to": "+8613800000001;+8613800000002", "biz": "login", '
         '"args": {"code": "7"}}\n'),
    ]:
        source = write(tmp_path / name, content)
        fmt = detect_format(source)
        (row,) = read_rows(source, "sms", fmt)
        out = tmp_path / f"failed-{name}"
        writer = FailedRowWriter(out, fmt)
        error = SendError("quota\nexceeded", unsent=["+8613800000002"])
        writer.write(Outcome(row, error=error, unsent=("+8613800000002",)))
        writer.close()
        (again,) = read_rows(out, "sms", fmt)
        assert again.to == ("+8613800000002",)
        assert again.args == {"code": "7"}
        assert "SendError: quota exceeded" in out.read_text()


async def test_concurrent_sends_share_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    numbers = [f"+86138000{n:05d}" for n in range(40)]
    source = write(tmp_path / "rows.csv", "to,biz\n" + "".join(f"{n},x\n" for n in numbers))
    fsyncs = 0
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        nonlocal fsyncs
        fsyncs += 1
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    release = asyncio.Event()

    class Together(MemorySender):
        """Holds every send until ten are in flight, so that they finish in one round."""

        async def send(self, biz: str, args: Any, *to: str) -> Receipt:
            receipt = await super().send(biz, args, *to)
            if len(self.sent) % 10 == 0:
                release.set()
            await release.wait()
            if len(self.sent) % 10 == 0:
                release.clear()
            return receipt

    journal = Journal(tmp_path / "j")
    summary = await run_batch(
        Together(), read_rows(source, "sms", "csv"), journal, concurrency=10
    )
    journal.close()
    assert summary.sent == 40
    assert fsyncs < 40  # grouped: typically one per round of ten
    resumed = Journal(tmp_path / "j")
    assert all(resumed.owed(row) == () for row in read_rows(source, "sms", "csv"))


async def test_a_journal_that_cannot_be_written_stops_the_batch(tmp_path: Path) -> None:
    source = write(tmp_path / "rows.csv", "to,biz\n+8613800000001,x\n+8613800000002,x\n")
    journal = Journal(tmp_path / "j")
    journal.open()
    os.close(journal._fd)  # type: ignore[arg-type]
    journal._fd = os.open("/dev/full", os.O_WRONLY)  # every write fails: no space left
    vendor = MemorySender()
    with pytest.raises(JournalError, match=r"cannot write \(No space left") as caught:
        await run_batch(vendor, read_rows(source, "sms", "csv"), journal, concurrency=1)
    journal.close()
    assert "resumed run sends nobody a second copy" in str(caught.value)
    assert len(vendor.sent) == 1  # the first send's entry failed: nothing more was sent
