"""Every distribution of the checkout (the core and each folder under providers/) builds as
an sdist and a wheel; the wheels carry what users need (py.typed, the Lua scripts, the
defaults) and no tests; and installed into a new virtual environment, the way docs/index.md
says, they work: ``gocomm plugins`` lists every vendor."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def distributions() -> list[Path]:
    """The core and every provider package: found, not listed, so new ones are covered."""
    return [ROOT, *sorted(p.parent for p in ROOT.glob("providers/*/pyproject.toml"))]


def project_of(directory: Path) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((directory / "pyproject.toml").read_text())[
        "project"
    ]
    return project


@dataclass(frozen=True)
class Built:
    directory: Path
    name: str
    sdist: Path
    wheel: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> list[Built]:
    """``python -m build`` of every distribution (an sdist, then the wheel built from it, which
    proves the sdist complete), all at once; no network (--no-isolation)."""
    out = tmp_path_factory.mktemp("dist")
    jobs = [
        (
            directory,
            subprocess.Popen(
                [sys.executable, "-m", "build", "--no-isolation", "--outdir",
                 str(out / directory.name), str(directory)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=out,
            ),
        )
        for directory in distributions()
    ]  # fmt: skip
    results = []
    for directory, job in jobs:
        output, _ = job.communicate(timeout=240)
        assert job.returncode == 0, f"building {directory} failed:\n{output}"
        name = str(project_of(directory)["name"]).replace("-", "_")
        (sdist,) = (out / directory.name).glob(f"{name}-*.tar.gz")
        (wheel,) = (out / directory.name).glob(f"{name}-*.whl")
        results.append(Built(directory, name, sdist, wheel))
    return results


def test_wheel_contents(built: list[Built]) -> None:
    core = next(b for b in built if b.directory == ROOT)
    names = zipfile.ZipFile(core.wheel).namelist()
    assert "gocomm/py.typed" in names
    lua_in_tree = sorted(p.name for p in (ROOT / "gocomm" / "ratelimit").glob("*.lua"))
    lua_in_wheel = sorted(Path(n).name for n in names if n.endswith(".lua"))
    assert lua_in_wheel == lua_in_tree
    assert all(n.startswith(("gocomm/", "gocomm-")) for n in names), names
    assert not any(n.startswith(("tests/", "providers/", "bench/")) for n in names)
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(core.wheel).read(metadata).decode()
    assert "Requires-Python: >=3.11" in text


def test_every_provider_wheel_ships_its_package_typed_and_no_tests(built: list[Built]) -> None:
    for provider in (b for b in built if b.directory != ROOT):
        names = zipfile.ZipFile(provider.wheel).namelist()
        assert f"{provider.name}/py.typed" in names, provider.wheel.name
        assert all(n.startswith(provider.name) for n in names), names
        metadata = next(n for n in names if n.endswith("METADATA"))
        text = zipfile.ZipFile(provider.wheel).read(metadata).decode()
        assert "Requires-Dist: gocomm" in text  # by name: installed together, see docs


@pytest.fixture
def fresh_venv(tmp_path: Path) -> Path:
    """A new virtual environment that sees this one's third-party packages (pydantic, redis,
    ...) but nothing of gocomm: a directory of links to every other entry of our
    site-packages, named by a .pth file. So nothing is downloaded, and gocomm and its vendors
    can come only from the wheels installed into it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    ours = Path(sysconfig.get_paths()["purelib"])
    shared = tmp_path / "third-party"
    shared.mkdir()
    for entry in ours.iterdir():
        lowered = entry.name.lower()
        if lowered.startswith(("gocomm", "__editable__", "_gocomm")) or entry.suffix == ".pth":
            continue
        (shared / entry.name).symlink_to(entry)
    python = venv / "bin" / "python"
    theirs = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(theirs, "third-party.pth").write_text(f"{shared}\n")
    return venv


def test_the_wheels_install_into_a_new_venv_and_every_vendor_loads(
    built: list[Built], fresh_venv: Path, tmp_path: Path
) -> None:
    python = fresh_venv / "bin" / "python"
    wheels = sorted({str(b.wheel.parent) for b in built})
    # Providers require `gocomm` by name: installed in one command, pip takes it from the
    # core's wheel. No index: every other requirement is already there.
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index",
         "--disable-pip-version-check", *(f"--find-links={w}" for w in wheels),
         *(str(b.wheel) for b in built)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOCOMM_", "PYTHON"))}
    env.update(COLUMNS="250", NO_COLOR="1", TERM="dumb")
    where = subprocess.run(
        [str(python), "-c", "import gocomm, gocomm_smtp; print(gocomm.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env=env, check=True,
    )  # fmt: skip
    assert where.stdout.startswith(str(fresh_venv)), where.stdout  # the wheel, not the checkout
    listing = subprocess.run(
        [str(fresh_venv / "bin" / "gocomm"), "plugins"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stdout + listing.stderr
    assert "failed to load" not in listing.stdout, listing.stdout
    for provider in (b for b in built if b.directory != ROOT):
        project = project_of(provider.directory)
        assert str(project["name"]) in listing.stdout, listing.stdout
        entry_points = project["entry-points"]
        assert isinstance(entry_points, dict)
        for vendor in entry_points["gocomm"]:
            assert f"\n {vendor} " in listing.stdout or f"│ {vendor} " in listing.stdout, vendor


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
