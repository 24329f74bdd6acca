"""examples/strategies.py, the first part of scripts/demo, does what it says at each step."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "strategies.py"


def test_strategies_example_tells_each_step(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    outcomes = [line.strip() for line in out.splitlines() if "-> " in line]
    assert outcomes[0] == "-> sent by 'healthy' after 1 attempt(s); failover index is now 1"
    assert outcomes[1] == outcomes[0]  # the index stayed on the healthy vendor
    assert outcomes[2] == "-> sent by 'healthy' after 2 attempt(s); failover index is now 1"
    assert outcomes[3].startswith("-> Limited (not retryable)")
    assert outcomes[5].startswith("-> sent by 'healthy'")
    # Validation refused it before any stage: no vendor was called.
    assert outcomes[6].startswith("-> InvalidRecipient (not retryable)")
    assert "'12345'" in outcomes[6]
    last_step = out[out.index("\n6. ") :]
    assert "flaky:" not in last_step and "healthy:" not in last_step


def test_strategies_example_logs_at_the_step_that_logged() -> None:
    # Piped, as in CI: the strategies' log lines must come out among the step they belong to.
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, check=True, timeout=60
    )
    lines = done.stdout.splitlines()
    first_step = next(i for i, line in enumerate(lines) if line.startswith("1."))
    second_step = next(i for i, line in enumerate(lines) if line.startswith("2."))
    logged = [line for line in lines[first_step:second_step] if line.strip().startswith("log")]
    assert len(logged) == 1
    assert "failing over to vendor 1 (healthy)" in logged[0]
    assert "log " not in done.stderr


@pytest.mark.parametrize(
    ("channel", "name", "rows"), [("sms", "sms.csv", 6), ("email", "email.jsonl", 3)]
)
def test_demo_batch_files_are_valid(channel: str, name: str, rows: int) -> None:
    """scripts/demo sends these; a row that no longer validates would stop the demo."""
    from gocomm.batch import check_rows, detect_format

    path = EXAMPLE.parent / "batch" / name
    assert check_rows(path, channel, detect_format(path)) == (rows, [])
