"""The ``gocomm`` command through a real subprocess: commands, exit codes, batch and resume.

Deliveries are observed on disk: the built-in ``file`` vendor, or ``probe``
(``tests/probe_plugin``), a small vendor plugin registered through an entry point in a
dist-info directory on ``PYTHONPATH`` (exactly as a third-party plugin package is found).
``probe`` writes one JSON file per recipient reached, can fail chosen recipients, and can block
forever after a number of deliveries so that a test can kill a batch at a known point.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from gocomm.cli import app

SMS_HEADER = ["to", "biz", "param.code"]

#: The probe plugin and its dist-info, for PYTHONPATH.
PLUGIN_PATH = Path(__file__).parent / "probe_plugin"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of every run: no GOCOMM_ variable of the caller, the plugin on the path,
    batch journals remembered in the test's own state directory."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GOCOMM_")}
    clean.update(PYTHONPATH=str(PLUGIN_PATH), COLUMNS="200", NO_COLOR="1", TERM="dumb")
    clean.update(XDG_STATE_HOME=str(tmp_path / "state"))
    return clean


def gocomm(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gocomm", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )


def gocomm_together(
    *commands: tuple[Sequence[str], dict[str, str]],
) -> list[subprocess.CompletedProcess[str]]:
    """Several independent ``gocomm`` runs at once (each is mostly interpreter start-up)."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "gocomm", *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for args, env in commands
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=45)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def probe_config(tmp_path: Path, name: str, outbox: Path, **settings: object) -> Path:
    vendor = {"plugin": "probe", "directory": str(outbox), **settings}
    config = {"sms": {"vendors": [vendor]}, "email": {"vendors": [vendor]}}
    return write_config(tmp_path / name, json.dumps(config))  # JSON is YAML


def deliveries(outbox: Path) -> Counter[tuple[str, str]]:
    """(recipient, code or subject) of every message delivered, with how many times each."""
    seen: Counter[tuple[str, str]] = Counter()
    for path in outbox.glob("sent-*.json"):
        payload = json.loads(path.read_text())
        args = payload["args"]
        seen[payload["to"], args.get("code") or args.get("subject", "")] += 1
    return seen


def write_sms_csv(path: Path, rows: Sequence[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SMS_HEADER)
        for to, code in rows:
            writer.writerow([to, "login", code])
    return path


def phones(count: int, start: int = 1) -> list[str]:
    return [f"+86138000{n:05d}" for n in range(start, start + count)]


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    path = tmp_path / "outbox"
    path.mkdir()
    return path


# -- send ------------------------------------------------------------------------------------


def test_send_sms_and_email_on_the_embedded_default(env: dict[str, str]) -> None:
    sms, email = gocomm_together(
        (["send", "sms", "--to", "+8613800138000", "--biz", "login", "--param", "code=4321"], env),
        (["send", "email", "--to", "ada@example.com", "--subject", "Welcome", "--text", "Hi"], env),
    )
    assert sms.returncode == 0, sms.stderr
    assert "+8613800138000" in sms.stdout
    assert "4321" in sms.stdout  # the console vendor prints the message
    assert "via console" in sms.stdout
    assert email.returncode == 0, email.stderr
    assert "Welcome" in email.stdout
    assert "sent email to ada@example.com via console" in email.stdout


def test_send_through_the_file_vendor(env: dict[str, str], tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    config = write_config(
        tmp_path / "gocomm.yaml",
        f"sms:\n  vendors: [{{plugin: file, directory: '{outbox}'}}]\n"
        f"email:\n  vendors: [{{plugin: file, directory: '{outbox}'}}]\n",
    )
    sms, email = gocomm_together(
        (  # the configuration named by GOCOMM_CONFIG
            ["send", "sms", "--to", "+8613800138000", "--biz", "login", "-p", "code=9876"],
            {**env, "GOCOMM_CONFIG": str(config)},
        ),
        (
            ["--config", str(config), "send", "email", "--to", "ada@example.com", "--cc",
             "bob@example.com", "--subject", "Report", "--text", "plain", "--html", "<p>x</p>"],
            env,
        ),
    )
    assert sms.returncode == 0, sms.stderr
    assert email.returncode == 0, email.stderr
    sms_files = list(outbox.rglob("*.json"))
    eml_files = list(outbox.rglob("*.eml"))
    assert len(sms_files) == 1
    assert len(eml_files) == 1
    assert "9876" in sms_files[0].read_text()
    message = eml_files[0].read_text()
    assert "Subject: Report" in message
    assert "bob@example.com" in message


def test_an_invalid_phone_exits_2_before_sending(
    env: dict[str, str], tmp_path: Path, outbox: Path
) -> None:
    config = probe_config(tmp_path, "probe.yaml", outbox)
    run = gocomm(
        "--config", str(config), "send", "sms", "--to", "+8613800000001", "--to", "13800138000",
        "--biz", "login", env=env,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("error: invalid phone number '13800138000'")
    assert len(run.stderr.strip().splitlines()) == 1
    assert list(outbox.iterdir()) == []


def test_usage_errors_print_one_line(env: dict[str, str]) -> None:
    unknown, missing, bare = gocomm_together(
        (["batch", "fax", "rows.csv"], env),
        (["send", "sms", "--biz", "login"], env),
        ([], env),
    )
    assert unknown.returncode == 2
    (line,) = unknown.stderr.strip().splitlines()
    assert line.startswith("error: Invalid value for 'CHANNEL'")
    assert "'fax'" in line
    assert line.endswith("(see: gocomm batch --help)")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: Missing option '--to'. (see: gocomm send sms --help)"
    assert bare.returncode == 2
    assert "Usage: gocomm [OPTIONS] COMMAND" in bare.stdout  # no command: the help


# -- the same commands in process, for the many variants of bad input ------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Result]:
    """Runs the gocomm command in this process (no probe plugin here: it is not installed)."""
    for name in list(os.environ):
        if name.startswith("GOCOMM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})

    return run


@pytest.fixture
def file_config(tmp_path: Path, outbox: Path) -> Path:
    vendor = f"{{plugin: file, directory: '{outbox}'}}"
    return write_config(
        tmp_path / "file.yaml", f"sms:\n  vendors: [{vendor}]\nemail:\n  vendors: [{vendor}]\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["send", "sms", "--to", "13800138000", "--biz", "login"], "invalid phone number"),
        (["send", "email", "--to", "a@example.com", "--cc", "b@", "--subject", "s", "--text", "t"],
         "invalid email address 'b@'"),
        (["send", "sms", "--to", "+8613800138000", "--biz", "b", "-p", "code"], "NAME=VALUE"),
        (["send", "email", "--to", "not-an-address", "--subject", "s", "--text", "t"], "invalid"),
        (["send", "email", "--to", "a@example.com", "--subject", "s"], "text or an html"),
        (["send", "email", "--to", "a@example.com", "--subject", "a\nb", "--text", "t"], "CR"),
    ],
)
def test_bad_input_exits_2_before_sending(
    cli: Callable[..., Result], file_config: Path, outbox: Path, args: list[str], message: str
) -> None:
    run = cli("--config", str(file_config), *args)
    assert run.exit_code == 2, run.output
    assert run.stderr.startswith("error: ")
    assert message.lower() in run.stderr.lower()
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert list(outbox.iterdir()) == []


def test_usage_errors_exit_2(cli: Callable[..., Result]) -> None:
    assert cli("send", "fax").exit_code == 2
    assert cli("send", "sms", "--biz", "login").exit_code == 2  # no --to
    assert cli("batch", "sms").exit_code == 2  # no FILE
    assert cli("batch", "fax", "rows.csv").exit_code == 2
    assert cli("--config", "/nonexistent/gocomm.yaml", "config").exit_code == 2


def test_missing_secret_variable_exits_2(cli: Callable[..., Result], tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "secret.yaml",
        "sms:\n  vendors: [{plugin: smtp, host: x, password: '${SMTP_PASSWORD_UNSET}'}]\n",
    )
    run = cli("--config", str(config), "config")
    assert run.exit_code == 2
    assert "SMTP_PASSWORD_UNSET" in run.stderr


def test_config_on_the_embedded_default(cli: Callable[..., Result]) -> None:
    run = cli("config")
    assert run.exit_code == 0, run.output
    assert "plugin: console" in run.stdout
    assert "RateLimitSender" in run.stdout


def test_bad_configuration_exits_2_with_one_line(
    env: dict[str, str], tmp_path: Path, cli: Callable[..., Result]
) -> None:
    config = write_config(tmp_path / "bad.yaml", "sms:\n  vendors: [{plugin: nosuchvendor}]\n")
    args = ("--config", str(config), "send", "sms", "--to", "+8613800138000", "--biz", "x")
    run = gocomm(*args, env=env)
    assert run.returncode == 2
    assert run.stderr.startswith("error: ")
    assert "nosuchvendor" in run.stderr
    assert "Traceback" not in run.stderr
    debug = cli("--debug", *args)
    assert debug.exit_code == 2
    assert "Traceback" in debug.stderr
    assert "error: " in debug.stderr


def test_a_failed_send_exits_1(env: dict[str, str], tmp_path: Path, outbox: Path) -> None:
    config = probe_config(tmp_path, "failing.yaml", outbox, fail_to=["+8613800000009"])
    run = gocomm(
        "--config", str(config), "send", "sms", "--to", "+8613800000009", "--to",
        "+8613800000001", "--biz", "login", "-p", "code=7", env=env,
    )
    assert run.returncode == 1
    assert run.stderr.strip() == (
        "error: probe refuses 1 recipient(s) "
        "(sent to +8613800000001; not sent to +8613800000009)"
    )
    assert deliveries(outbox) == {("+8613800000001", "7"): 1}
    assert len(list(outbox.glob("closed-*.json"))) == 1  # the container shut the vendor down


def test_ctrl_c_stops_a_batch_and_still_shuts_down(
    env: dict[str, str], tmp_path: Path, outbox: Path
) -> None:
    source = write_sms_csv(tmp_path / "rows.csv", [(n, "x") for n in phones(4)])
    config = probe_config(tmp_path, "hanging.yaml", outbox, hang_after=1)
    process = subprocess.Popen(
        [sys.executable, "-m", "gocomm", "--config", str(config), "batch", "sms", str(source),
         "--concurrency", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(outbox, "blocked-*.json", 2, process)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, err
    assert "error: interrupted; run the same command again to resume" in err
    assert len(list(outbox.glob("closed-*.json"))) == 1
    assert (tmp_path / "rows.csv.journal").read_text().count("\n") == 1  # the one row sent


# -- batch -----------------------------------------------------------------------------------


def test_batch_failed_rows_are_resent_from_the_failed_file(
    env: dict[str, str], tmp_path: Path, outbox: Path
) -> None:
    numbers = phones(10)
    refused = {numbers[2], numbers[7]}
    rows = [(n, f"c{i}") for i, n in enumerate(numbers)]
    rows.append((f"{numbers[0]};{numbers[7]}", "pair"))  # reaches one, fails the other
    source = write_sms_csv(tmp_path / "rows.csv", rows)
    failing = probe_config(tmp_path, "failing.yaml", outbox, fail_to=sorted(refused))

    first = gocomm(
        "--config", str(failing), "batch", "sms", str(source), "--concurrency", "4",
        "--failed", str(tmp_path / "failed.csv"), env=env,
    )
    assert first.returncode == 1, first.stderr
    assert "batch summary" in first.stdout
    # Each failure is told on screen, with the recipients still owed and the reason.
    told = [line for line in first.stdout.splitlines() if "probe refuses" in line]
    assert len(told) == 3
    assert any(line.startswith("line ") and numbers[2] in line for line in told)
    sent_first = deliveries(outbox)
    assert sum(sent_first.values()) == 9  # 8 single rows, and the pair's first recipient
    assert all(count == 1 for count in sent_first.values())
    with (tmp_path / "failed.csv").open(newline="") as handle:
        failed_rows = list(csv.DictReader(handle))
    assert sorted((r["to"], r["param.code"]) for r in failed_rows) == sorted(
        [(numbers[2], "c2"), (numbers[7], "c7"), (numbers[7], "pair")]
    )
    assert all("probe refuses" in r["error"] for r in failed_rows)

    healthy = probe_config(tmp_path, "healthy.yaml", outbox)
    again = gocomm(
        "--config", str(healthy), "batch", "sms", str(tmp_path / "failed.csv"), env=env
    )
    assert again.returncode == 0, again.stderr
    resent = deliveries(outbox) - sent_first
    assert resent == Counter(
        {(numbers[2], "c2"): 1, (numbers[7], "c7"): 1, (numbers[7], "pair"): 1}
    )
    assert not (tmp_path / "failed.failed.csv").exists()

    # The original file's journal already names every row sent: running it again sends only
    # the rows that failed there (now healthy), and no one gets a second copy.
    rerun = gocomm("--config", str(healthy), "batch", "sms", str(source), env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert deliveries(outbox) - sent_first - resent == resent


def test_batch_summary_counts_retries_limits_and_the_journal(
    env: dict[str, str], tmp_path: Path, outbox: Path
) -> None:
    numbers = phones(5)
    lines = [{"to": n, "biz": "login", "args": {"code": str(i)}} for i, n in enumerate(numbers)]
    lines.append({"to": numbers[0], "biz": "login", "args": {"code": "again"}})
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    vendor = {"plugin": "probe", "directory": str(outbox), "flaky_to": [numbers[1]]}
    stack = {
        "vendors": [vendor],
        "retry": {"max_attempts": 2},
        "ratelimit": {"algorithm": "sliding_window", "key": "sms:{to}", "rate": 1, "window": 60},
    }
    config = write_config(tmp_path / "stack.yaml", json.dumps({"sms": stack}))
    run = gocomm(
        "--config", str(config), "batch", "sms", str(source), "--concurrency", "1", env=env
    )
    assert run.returncode == 1, run.stderr
    summary = _summary(run.stdout)
    assert summary["sent"] == "5"
    assert summary["failed"] == "1"
    assert summary["via probe"] == "5"
    assert summary["retries"] == "1"  # the flaky number's first attempt
    assert summary["limited"] == "1"  # the second code to the first number within the minute
    (failed,) = (tmp_path / "rows.failed.jsonl").read_text().splitlines()
    assert json.loads(failed)["args"] == {"code": "again"}
    assert "rate limit reached" in json.loads(failed)["error"]

    # A new process has a new in-memory limit (share one through Redis to hold it across
    # processes): the run sends the limited row, and the journal keeps the others from going
    # out twice.
    again = gocomm("--config", str(config), "batch", "sms", str(source), env=env)
    assert again.returncode == 0, again.stderr
    assert _summary(again.stdout)["already sent (journal)"] == "5"
    assert deliveries(outbox) == Counter(
        {(n, str(i)): 1 for i, n in enumerate(numbers)} | {(numbers[0], "again"): 1}
    )


def test_batch_email_csv(env: dict[str, str], tmp_path: Path, outbox: Path) -> None:
    source = tmp_path / "mail.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["to", "subject", "text", "html", "cc"])
        writer.writerow(["ada@example.com", "one", "hello", "", ""])
        writer.writerow(["bob@example.com;cy@example.com", "two", "", "<b>hi</b>", "d@example.com"])
    config = probe_config(tmp_path, "probe.yaml", outbox)
    run = gocomm("--config", str(config), "batch", "email", str(source), env=env)
    assert run.returncode == 0, run.stderr
    assert deliveries(outbox) == {
        ("ada@example.com", "one"): 1,
        ("bob@example.com", "two"): 1,
        ("cy@example.com", "two"): 1,
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("to,biz,param.code\n+8613800000001,login,1\n13800,login,2\n", "rows.csv:3"),
        ("to,biz,colour\n+8613800000001,login,red\n", "unknown column 'colour'"),
        ("to,param.code\n+8613800000001,1\n", "no 'biz' column"),
        ("to,biz\n+8613800000001\n", "1 cells"),
    ],
)
def test_batch_bad_file_exits_2_and_sends_nothing(
    cli: Callable[..., Result],
    tmp_path: Path,
    outbox: Path,
    file_config: Path,
    content: str,
    message: str,
) -> None:
    source = tmp_path / "rows.csv"
    source.write_text(content)
    run = cli("--config", str(file_config), "batch", "sms", str(source))
    assert run.exit_code == 2, run.output
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert list(outbox.iterdir()) == []
    assert not (tmp_path / "rows.csv.journal").exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        pytest.param(
            "rows.jsonl",
            '{"to": "+8613800000001", "biz": "login"}\n' + "[" * 100_000 + "]" * 100_000 + "\n",
            "rows.jsonl:2: JSON nested too deeply",
            id="jsonl-nested-100000-deep",
        ),
        pytest.param(
            "rows.jsonl",
            '{"to": "+8613800000001", "biz": "login", "args": {"code": ' + "7" * 5000 + "}}\n",
            "rows.jsonl:1: a number has too many digits",
            id="integer-of-5000-digits",
        ),
        pytest.param(
            "rows.jsonl",
            '{"to": "+8613800000001", "biz": "login", "args": {"code": "\\ud83d"}}\n',
            "rows.jsonl:1: 'args.code' holds a lone surrogate",
            id="lone-surrogate",
        ),
        pytest.param(
            "rows.csv",
            "to,biz,param.code\n+8613800000001,login," + "x" * (17 * 2**20) + "\n",
            "rows.csv:2: not valid CSV (a cell is larger than 16 MiB)",
            id="csv-cell-over-the-limit",
        ),
        pytest.param(
            "rows.csv",
            "to,biz,param.code\n+8613800000001,login,1\n" + "+86138" * 30_000 + ",login,1\n",
            "rows.csv:3: invalid phone number",
            id="csv-cell-over-128-KiB-of-garbage",
        ),
    ],
)
def test_hostile_batch_rows_are_one_line_errors_naming_file_and_row(
    cli: Callable[..., Result],
    tmp_path: Path,
    outbox: Path,
    file_config: Path,
    name: str,
    content: str,
    message: str,
) -> None:
    source = tmp_path / name
    source.write_text(content, encoding="utf-8", errors="surrogatepass")
    run = cli("--config", str(file_config), "batch", "sms", str(source))
    assert run.exit_code == 2, run.output
    (line,) = run.stderr.strip().splitlines()
    assert message in line, line
    assert str(source) in line
    assert "Traceback" not in run.stderr and len(line) < 600
    assert list(outbox.iterdir()) == []


def test_a_row_for_20000_recipients_in_one_cell_is_sent(
    cli: Callable[..., Result], tmp_path: Path, outbox: Path, file_config: Path
) -> None:
    numbers = [f"+86139{n:08d}" for n in range(20_000)]
    source = tmp_path / "wide.csv"
    source.write_text(f"to,biz,param.code\n{';'.join(numbers)},login,1234\n")
    assert len(source.read_bytes()) > 128 * 1024  # over the csv module's default cell limit
    run = cli("--config", str(file_config), "batch", "sms", str(source))
    assert run.exit_code == 0, run.output
    (sent,) = outbox.glob("*.json")
    assert json.loads(sent.read_text())["to"] == numbers


def _summary(stdout: str) -> dict[str, str]:
    """The rows of the summary table: label -> count."""
    figures: dict[str, str] = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃|").split("│")]
        if len(cells) == 2 and cells[1].isdigit():
            figures[cells[0]] = cells[1]
    return figures


def wait_for(directory: Path, pattern: str, count: int, process: subprocess.Popen[Any]) -> None:
    """Wait (30 s at most) until ``count`` files match ``pattern``, the process still running."""
    deadline = time.monotonic() + 30
    while len(list(directory.glob(pattern))) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no {count} {pattern} files within 30 s"
        time.sleep(0.02)


@pytest.fixture
def killed_batch(
    env: dict[str, str], tmp_path: Path, outbox: Path
) -> Iterator[tuple[Path, list[tuple[str, str]]]]:
    """A batch of 12 rows SIGKILLed after 5 deliveries with 3 sends in flight."""
    rows = [(n, f"k{i}") for i, n in enumerate(phones(12, start=100))]
    source = write_sms_csv(tmp_path / "big.csv", rows)
    config = probe_config(tmp_path, "hanging.yaml", outbox, hang_after=5)
    process = subprocess.Popen(
        [sys.executable, "-m", "gocomm", "--config", str(config), "batch", "sms", str(source),
         "--concurrency", "3"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        # Once all three workers are blocked in a send, every earlier send has been journaled.
        wait_for(outbox, "blocked-*.json", 3, process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        yield source, rows
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_one_file_two_names_one_journal_and_one_lock(
    env: dict[str, str], tmp_path: Path, outbox: Path, link: str
) -> None:
    # Issue 17.1: a run through a second name of the same file must neither send alongside a
    # run through the first nor, after it died, send again what it sent.
    rows = [(n, f"k{i}") for i, n in enumerate(phones(8, start=300))]
    source = write_sms_csv(tmp_path / "rows.csv", rows)
    other = tmp_path / "elsewhere" / "alias.csv"
    other.parent.mkdir()
    if link == "symlink":
        other.symlink_to(source)
    else:
        os.link(source, other)
    hanging = probe_config(tmp_path, "hanging.yaml", outbox, hang_after=3)
    first = subprocess.Popen(
        [sys.executable, "-m", "gocomm", "--config", str(hanging), "batch", "sms", str(source),
         "--concurrency", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_for(outbox, "blocked-*.json", 1, first)  # three rows sent and journaled
        healthy = probe_config(tmp_path, "healthy.yaml", outbox)
        second = gocomm("--config", str(healthy), "batch", "sms", str(other), env=env)
        assert second.returncode == 2, second.stderr
        assert "being sent by another gocomm batch" in second.stderr
        assert sum(deliveries(outbox).values()) == 3  # the second run sent nothing
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    resumed = gocomm("--config", str(healthy), "batch", "sms", str(other), env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert _summary(resumed.stdout)["already sent (journal)"] == "3"
    assert deliveries(outbox) == Counter({row: 1 for row in rows})
    assert not (other.parent / "alias.csv.journal").exists()  # the file's own journal was used


def test_batch_killed_with_sigkill_resumes_sending_each_row_once(
    env: dict[str, str],
    tmp_path: Path,
    outbox: Path,
    killed_batch: tuple[Path, list[tuple[str, str]]],
) -> None:
    source, rows = killed_batch
    assert sum(deliveries(outbox).values()) == 5
    healthy = probe_config(tmp_path, "healthy.yaml", outbox)
    resumed = gocomm("--config", str(healthy), "batch", "sms", str(source), env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert _summary(resumed.stdout)["already sent (journal)"] == "5"
    assert deliveries(outbox) == Counter({row: 1 for row in rows})


# -- plugins and config ----------------------------------------------------------------------


def test_plugins_lists_vendors_with_their_distribution(env: dict[str, str]) -> None:
    run = gocomm("plugins", env=env)
    assert run.returncode == 0, run.stderr
    lines = {line.split("│")[1].strip(): line for line in run.stdout.splitlines() if "│" in line}
    assert "probe" in lines
    assert "gocomm-probe" in lines["probe"]
    assert "0.3.0" in lines["probe"]
    for builtin in ("memory", "console", "file"):
        assert "gocomm " in lines[builtin].replace("│", " ")
        assert "email, sms" in lines[builtin]


def test_plugins_reports_a_plugin_that_fails_to_import(
    env: dict[str, str], tmp_path: Path
) -> None:
    site = tmp_path / "broken"
    dist = site / "gocomm_broken-1.0.dist-info"
    dist.mkdir(parents=True)
    (site / "gocomm_broken.py").write_text("raise ImportError('needs libfoo')\n")
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gocomm-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[gocomm]\nbroken = gocomm_broken\n")
    pythonpath = os.pathsep.join([str(site), env["PYTHONPATH"]])
    run = gocomm("plugins", env={**env, "PYTHONPATH": pythonpath})
    assert run.returncode == 0, run.stderr
    assert "broken" in run.stdout
    assert "needs libfoo" in run.stdout
    assert "probe" in run.stdout  # the others still load


def test_config_shows_the_stack_and_never_a_secret(
    env: dict[str, str], tmp_path: Path, outbox: Path
) -> None:
    secrets = {
        "PROBE_TOKEN": "tok-3f9a1c77",
        "SECOND_TOKEN": "tok-b0b0b0b0",
        "REDIS_PASSWORD": "pw-5e5e5e5e",
    }
    config = write_config(
        tmp_path / "gocomm.yaml",
        f"""
redis: {{url: "redis://app:${{REDIS_PASSWORD}}@127.0.0.1:6390/0"}}
sms:
  vendors:
    - {{plugin: probe, directory: "{outbox}", token: "${{PROBE_TOKEN}}"}}
    - {{plugin: probe, directory: "{outbox}", token: "${{SECOND_TOKEN}}"}}
  failover: {{mode: timeout, threshold: 3, restore_after: 600}}
  ratelimit: {{backend: redis, algorithm: sliding_window, key: "sms:{{to}}", rate: 1, window: 60}}
  retry: {{max_attempts: 3, interval: {{kind: fixed, seconds: 1}}}}
email:
  vendors: [{{plugin: file, directory: "{outbox}"}}]
""",
    )
    run, env_run = gocomm_together(
        (["--config", str(config), "config"], {**env, **secrets}),
        (  # passwords set through the environment never show either
            ["--config", str(config), "config"],
            {**env, **secrets, "GOCOMM_REDIS__URL": "redis://:envpw-77aa@127.0.0.1:6391/0"},
        ),
    )
    assert run.returncode == 0, run.stderr
    output = run.stdout + run.stderr
    for secret in secrets.values():
        assert secret not in output
    assert "127.0.0.1:6390" in output
    for stage in ("sliding_window", "IntervalRetrySender", "TimeoutFailoverSender", "probe"):
        assert stage in output
    assert env_run.returncode == 0, env_run.stderr
    assert "envpw-77aa" not in env_run.stdout + env_run.stderr
    assert "127.0.0.1:6391" in env_run.stdout


def test_example_configuration_never_shows_a_secret(cli: Callable[..., Result]) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "gocomm.yaml"
    secrets = {
        "REDIS_PASSWORD": "redis-pw-0a1b",
        "ALIYUN_ACCESS_KEY_ID": "LTAI-public-id",
        "ALIYUN_ACCESS_KEY_SECRET": "ali-secret-2c3d",
        "TENCENT_SECRET_ID": "AKID-public-id",
        "TENCENT_SECRET_KEY": "tc-secret-4e5f",
        "SMTP_PASSWORD": "smtp-pw-6a7b",
    }
    runner = CliRunner()
    run = runner.invoke(
        app,
        ["--config", str(example), "config"],
        env={**secrets, "GOCOMM_SMS__RETRY__MAX_ATTEMPTS": "5", "COLUMNS": "200"},
    )
    assert run.exit_code == 0, run.output
    for name, value in secrets.items():
        assert (value in run.output) == name.endswith("_ID"), name  # ids are not secrets
    assert "redis://localhost:6379/0" in run.output
    assert "5 attempts" in run.output  # the environment wins over the file
    tree = run.output[run.output.index("\nsms\n") :]
    stages = ("ValidatingSender", "RateLimitSender", "IntervalRetrySender", "FailoverSender")
    positions = [tree.index(stage) for stage in (*stages, "aliyun", "tencent")]
    assert positions == sorted(positions)  # outermost first: validation starts the stack
    assert "E.164 numbers checked first" in tree


def test_processes_share_a_redis_rate_limit(
    env: dict[str, str], tmp_path: Path, outbox: Path, redis_url: str
) -> None:
    """Three processes send to one number at once under "1 per minute" kept in Redis: one
    sends, the others are refused (exit code 1) without calling the vendor."""
    key = f"cli-{uuid.uuid4().hex}:{{to}}"  # a fresh limit, whatever the database holds
    config = write_config(
        tmp_path / "redis.yaml",
        json.dumps(
            {
                "redis": {"url": redis_url},
                "sms": {
                    "vendors": [{"plugin": "probe", "directory": str(outbox)}],
                    "ratelimit": {
                        "backend": "redis", "algorithm": "sliding_window", "key": key,
                        "rate": 1, "window": 60,
                    },
                },
            }
        ),
    )
    args = ["--config", str(config), "send", "sms", "--to", "+8613800138000", "--biz", "login"]
    runs = gocomm_together(*[([*args, "-p", f"code={i}"], env) for i in range(3)])
    assert sorted(run.returncode for run in runs) == [0, 1, 1], [r.stderr for r in runs]
    for run in runs:
        if run.returncode:
            assert run.stderr.startswith("error: rate limit reached")
    assert sum(deliveries(outbox).values()) == 1


def test_an_unconfigured_channel_exits_2(cli: Callable[..., Result], tmp_path: Path) -> None:
    config = write_config(tmp_path / "sms-only.yaml", "sms:\n  vendors: [{plugin: memory}]\n")
    run = cli(
        "--config", str(config), "send", "email", "--to", "a@example.com", "--subject", "s",
        "--text", "t",
    )
    assert run.exit_code == 2, run.output
    assert run.stderr.startswith("error: ")
    assert "email" in run.stderr
