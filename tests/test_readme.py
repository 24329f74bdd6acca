"""Every Python block of the README runs as shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_the_five_go_comm_examples() -> None:
    text = README.read_text(encoding="utf-8")
    for name in ("RetrySender", "IntervalRetrySender", "RateLimitSender", "FailoverSender",
                 "TimeoutFailoverSender"):
        assert any(name in block for block in BLOCKS), name
    assert "scripts/test" in text
    assert "scripts/demo" in text


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(block: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(block, str(README), "exec"), {"__name__": "__readme__"})
    capsys.readouterr()
