"""The wheel carries what users need (py.typed, the Lua scripts, the defaults) and no tests."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contents(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path),
         str(ROOT)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("gocomm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gocomm/py.typed" in names
    lua_in_tree = sorted(p.name for p in (ROOT / "gocomm" / "ratelimit").glob("*.lua"))
    lua_in_wheel = sorted(Path(n).name for n in names if n.endswith(".lua"))
    assert lua_in_wheel == lua_in_tree
    assert all(n.startswith(("gocomm/", "gocomm-")) for n in names), names
    assert not any(n.startswith(("tests/", "providers/", "bench/")) for n in names)
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Requires-Python: >=3.11" in text


def test_the_build_requires_a_setuptools_that_reads_the_license_expression() -> None:
    # `license = "MIT"` (a PEP 639 expression) is refused by setuptools before 77 ("must be
    # valid exactly by one definition"), so the build system must not promise less.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert isinstance(project["project"]["license"], str)
    requirements = [
        *project["build-system"]["requires"],
        *project["project"]["optional-dependencies"]["test"],
    ]
    floors = [Requirement(r).specifier for r in requirements if r.startswith("setuptools")]
    assert len(floors) == 2
    for floor in floors:
        assert not floor.contains("76.1"), floor
