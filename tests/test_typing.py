"""Users' code type-checks under mypy --strict against the shipped annotations (py.typed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

USER_CODE = '''
from gocomm import Email, Receipt, Sender
from gocomm.containers import build_container
from gocomm.failover import FailoverSender
from gocomm.ratelimit import RateLimitSender, SlidingWindowLimiter
from gocomm.retryable import IntervalRetrySender, fixed
from gocomm.testing import MemorySender


async def main() -> None:
    container = build_container({"sms": {"vendors": [{"plugin": "memory"}]}})
    with container.sms.vendors.override([MemorySender()]):
        sms = await container.sms.sender()
        receipt = await sms.send("login", {"code": "1"}, "+15550001111")
    await container.shutdown_resources()

    email: Sender[Email] = RateLimitSender(
        IntervalRetrySender(FailoverSender([MemorySender(), MemorySender()]), 3, fixed(1)),
        "email",
        SlidingWindowLimiter(60, 10),
    )
    sent: Receipt | None = await email.send("hi", Email(subject="Hi", text="x"), "a@example.com")
    print(receipt, sent)
'''


def mypy(tmp_path: Path, code: str) -> subprocess.CompletedProcess[str]:
    source = tmp_path / "app.py"
    source.write_text(code)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(source)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        check=False,
    )


def test_user_code_type_checks_strictly(tmp_path: Path) -> None:
    result = mypy(tmp_path, USER_CODE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_container_is_typed_not_any(tmp_path: Path) -> None:
    # Were build_container() typed Any, a misspelt channel would pass unnoticed.
    result = mypy(tmp_path, USER_CODE.replace("container.sms.sender()", "container.smss.sender()"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "has no attribute" in result.stdout
