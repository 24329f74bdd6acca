"""The vendor registry and the plugin loader, with real installed distributions: each test
writes packages and ``*.dist-info`` folders (METADATA and entry_points.txt) into a directory
put on ``sys.path``, which is what ``pip install`` leaves behind, so importlib.metadata and
pluggy run for real."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import textwrap
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pluggy
import pytest

from gocomm import hookspecs
from gocomm.errors import ConfigError
from gocomm.plugins import (
    DISABLE_ENV,
    PluginFailure,
    VendorRegistry,
    VendorSettings,
    VendorSpec,
    hookimpl,
    load_registry,
)
from gocomm.testing import MemorySender
from gocomm.testing.contract import VendorContract
from gocomm.vendors.file import FileSettings, FileVendor
from gocomm.vendors.memory import MemoryVendor


class FakeSite:
    """A site-packages directory on ``sys.path`` holding fake installed distributions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.suffix = uuid.uuid4().hex[:8]  # module names unique to this test
        self.modules: list[str] = []

    def module(self, stem: str) -> str:
        """A module name unique to this test, for ``stem``."""
        return f"gocomm_fake_{stem}_{self.suffix}"

    def install(self, distribution: str, entry_points: dict[str, str], **sources: str) -> None:
        """Install ``distribution`` with ``entry_points`` (name -> module stem) in the group
        ``gocomm`` and a module per keyword (stem -> source)."""
        for stem, source in sources.items():
            name = self.module(stem)
            (self.root / f"{name}.py").write_text(textwrap.dedent(source))
            self.modules.append(name)
        info = self.root / f"{distribution.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n"
        )
        lines = [f"{ep} = {self.module(stem)}" for ep, stem in entry_points.items()]
        (info / "entry_points.txt").write_text("[gocomm]\n" + "\n".join(lines) + "\n")
        importlib.invalidate_caches()  # also drops importlib.metadata's directory caches


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSite]:
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    root = tmp_path / "site-packages"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    fake = FakeSite(root)
    yield fake
    for name in fake.modules:
        sys.modules.pop(name, None)


def vendor_plugin(*names: str, then: str = "") -> str:
    """Source of a plugin module registering an SMS vendor per name, then running ``then``."""
    adds = "\n".join(
        f"    registry.add(VendorSpec({n!r}, {{'sms'}}, AcmeSettings, make, 'test vendor'))"
        for n in names
    )
    return f"""
from gocomm.plugins import VendorSettings, VendorSpec, hookimpl
from gocomm.testing import MemorySender
from gocomm.testing.contract import VendorContract


class AcmeSettings(VendorSettings):
    api_key: str = "unset"


def make(settings):
    return MemorySender("acme")


@hookimpl
def gocomm_register_vendors(registry):
{adds}
{textwrap.indent(then, "    ")}
"""


def failure_of(registry: VendorRegistry, name: str) -> PluginFailure:
    matches = [f for f in registry.failures if f.name == name]
    assert len(matches) == 1, registry.failures
    return matches[0]


# the built-in vendors


def test_builtins_registered_without_entry_points(site: FakeSite) -> None:
    site.install("fake-acme", {"acme": "acme"}, acme=vendor_plugin("acme"))
    registry = load_registry(entry_points=False)
    assert registry.names() == ["console", "file", "memory"]
    for spec in registry:
        assert spec.distribution == "gocomm"
        assert spec.channels == frozenset({"email", "sms"})
    assert registry.failures == []


async def test_builtin_factories_build_working_vendors(tmp_path: Path) -> None:
    registry = load_registry(entry_points=False)
    spec = registry.get("file")
    settings = spec.settings.model_validate({"directory": str(tmp_path)})
    assert isinstance(settings, FileSettings)
    vendor = spec.factory(settings)
    assert isinstance(vendor, FileVendor)
    async with vendor:
        receipt = await vendor.send("login", {"code": "1234"}, "+15550100")
    assert (tmp_path / receipt.message_ids[0]).is_file()
    memory = registry.get("memory")
    assert isinstance(memory.factory(memory.settings()), MemoryVendor)
    with pytest.raises(ValueError, match="extra"):  # settings models refuse unknown keys
        memory.settings.model_validate({"colour": "blue"})


# entry points


def test_entry_point_plugin_registers_attributed_to_its_distribution(site: FakeSite) -> None:
    # The plugin claims distribution="gocomm"; the loader attributes it to its real one.
    source = vendor_plugin("acme").replace("'test vendor'", "'test vendor', distribution='gocomm'")
    assert "distribution='gocomm'" in source
    site.install("fake-acme", {"acme": "acme"}, acme=source)
    registry = load_registry()
    spec = registry.get("acme")
    assert spec.distribution == "fake-acme"
    assert spec.channels == frozenset({"sms"})
    assert isinstance(spec.factory(spec.settings()), MemorySender)
    assert "acme" in registry.names()


def test_plugin_that_fails_to_import_is_reported_and_others_load(site: FakeSite) -> None:
    site.install(
        "fake-broken", {"broken": "broken"}, broken="import gocomm_no_such_dependency_xyz\n"
    )
    site.install("fake-good", {"good": "good"}, good=vendor_plugin("good"))
    registry = load_registry()
    failure = failure_of(registry, "broken")
    assert failure.distribution == "fake-broken"
    assert "gocomm_no_such_dependency_xyz" in failure.error
    assert site.module("broken") in failure.error  # names what it tried to import
    assert registry.get("good").distribution == "fake-good"
    with pytest.raises(ConfigError, match="plugin 'broken' failed to load"):
        registry.get("broken")


def test_hook_that_raises_is_reported_and_keeps_nothing(site: FakeSite) -> None:
    raising = vendor_plugin("halfway", then="raise RuntimeError('template table missing')")
    site.install("fake-raising", {"raising": "raising"}, raising=raising)
    site.install("fake-good", {"good": "good"}, good=vendor_plugin("good"))
    registry = load_registry()
    failure = failure_of(registry, "raising")
    assert failure.distribution == "fake-raising"
    assert "RuntimeError: template table missing" in failure.error
    assert "halfway" not in registry  # added before the raise, rolled back
    assert "good" in registry


def test_failures_are_logged_once(site: FakeSite, caplog: pytest.LogCaptureFixture) -> None:
    site.install("fake-broken", {"broken": "broken"}, broken="raise ImportError('nope')\n")
    with caplog.at_level(logging.WARNING, logger="gocomm.plugins"):
        load_registry()
    lines = [r.getMessage() for r in caplog.records if "'broken'" in r.getMessage()]
    assert len(lines) == 1
    assert "fake-broken" in lines[0]
    assert "nope" in lines[0]


def test_duplicate_vendor_between_plugins_names_both_distributions(site: FakeSite) -> None:
    site.install("fake-twin-a", {"twin-a": "twin_a"}, twin_a=vendor_plugin("twin"))
    site.install("fake-twin-b", {"twin-b": "twin_b"}, twin_b=vendor_plugin("twin"))
    registry = load_registry()
    failures = [f for f in registry.failures if f.name in ("twin-a", "twin-b")]
    assert len(failures) == 1  # the first one to load keeps the name
    (failure,) = failures
    winner = registry.get("twin").distribution
    assert {winner, failure.distribution} == {"fake-twin-a", "fake-twin-b"}
    assert "'fake-twin-a'" in failure.error
    assert "'fake-twin-b'" in failure.error


def test_same_entry_point_name_in_two_distributions_names_both(site: FakeSite) -> None:
    site.install("fake-sms-a", {"sms": "sms_a"}, sms_a=vendor_plugin("vend-a"))
    site.install("fake-sms-b", {"sms": "sms_b"}, sms_b=vendor_plugin("vend-b"))
    registry = load_registry()
    failure = failure_of(registry, "sms")
    winner = "fake-sms-a" if "vend-a" in registry else "fake-sms-b"
    assert {winner, failure.distribution} == {"fake-sms-a", "fake-sms-b"}
    assert f"already taken by distribution {winner!r}" in failure.error
    assert repr(failure.distribution) in failure.error
    assert "<module" not in failure.error  # pluggy's own refusal dumps its plugin table


def test_plugin_cannot_replace_a_builtin_vendor(site: FakeSite) -> None:
    site.install(
        "fake-impostor", {"impostor": "impostor"}, impostor=vendor_plugin("extra", "memory")
    )
    registry = load_registry()
    failure = failure_of(registry, "impostor")
    assert "'memory'" in failure.error
    assert "'fake-impostor'" in failure.error
    assert "'gocomm'" in failure.error
    spec = registry.get("memory")
    assert spec.distribution == "gocomm"
    assert isinstance(spec.factory(spec.settings()), MemoryVendor)
    assert "extra" not in registry  # the plugin is refused whole, not half-registered


def test_disable_plugins_by_entry_point_name(
    site: FakeSite, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The broken plugin would fail on import: disabled, it is never imported at all.
    site.install("fake-broken", {"broken": "broken"}, broken="raise ImportError('nope')\n")
    site.install("fake-acme", {"acme": "acme"}, acme=vendor_plugin("acme"))
    site.install("fake-good", {"good": "good"}, good=vendor_plugin("good"))
    monkeypatch.setenv(DISABLE_ENV, " broken,acme ,, memory")
    with caplog.at_level(logging.WARNING, logger="gocomm.plugins"):
        registry = load_registry()
    assert sorted(registry.disabled) == ["acme", "broken"]
    assert [f for f in registry.failures if f.name == "broken"] == []
    assert site.module("broken") not in sys.modules
    assert "acme" not in registry
    assert "good" in registry
    assert "memory" in registry  # built-ins cannot be disabled ...
    assert "built-in vendors cannot be disabled" in caplog.text  # ... and the user is told
    with pytest.raises(ConfigError, match=f"disabled by {DISABLE_ENV}"):
        registry.get("acme")


def test_unknown_hook_and_missing_hookimpl_are_reported(site: FakeSite) -> None:
    typo = """
    from gocomm.plugins import hookimpl

    @hookimpl
    def gocomm_register_vendor(registry):
        pass
    """
    unmarked = """
    def gocomm_register_vendors(registry):
        pass
    """
    site.install("fake-typo", {"typo": "typo", "unmarked": "unmarked"}, typo=typo,
                 unmarked=unmarked)  # fmt: skip
    registry = load_registry()
    assert "unknown hook(s) ['gocomm_register_vendor']" in failure_of(registry, "typo").error
    assert "no @hookimpl" in failure_of(registry, "unmarked").error


def test_hookimpl_with_wrong_argument_is_reported(site: FakeSite) -> None:
    wrong = """
    from gocomm.plugins import hookimpl

    @hookimpl
    def gocomm_register_vendors(registry, settings):
        pass
    """
    site.install("fake-wrong", {"wrong": "wrong"}, wrong=wrong)
    registry = load_registry()
    error = failure_of(registry, "wrong").error
    assert "cannot register the plugin" in error
    assert "settings" in error


# plugins given directly


class AppPlugin:
    """A plugin object an application passes to load_registry."""

    @hookimpl
    def gocomm_register_vendors(self, registry: VendorRegistry) -> None:
        email = frozenset({"email"})
        registry.add(VendorSpec("app", email, VendorSettings, lambda s: MemorySender("app")))


def test_plugins_argument_registers_objects_without_entry_points() -> None:
    registry = load_registry(entry_points=False, plugins=[AppPlugin()])
    assert registry.get("app").distribution == "AppPlugin"
    assert registry.get("app").channels == frozenset({"email"})
    assert registry.for_channel("email")[-1].name == "app"
    assert registry.failures == []


def test_plugins_argument_duplicate_is_a_failure_not_a_crash() -> None:
    registry = load_registry(entry_points=False, plugins=[AppPlugin(), AppPlugin()])
    assert "app" in registry
    assert len(registry.failures) == 1  # the same plugin name twice: pluggy refuses it


# the registry on its own


def _spec(name: str, distribution: str | None = None) -> VendorSpec:
    sms = frozenset({"sms"})
    return VendorSpec(name, sms, VendorSettings, MemorySender, distribution=distribution)


def test_add_refuses_duplicate_naming_both_distributions() -> None:
    registry = VendorRegistry()
    registry.add(_spec("acme", "gocomm-acme"))
    with pytest.raises(ConfigError) as caught:
        registry.add(_spec("acme", "acme-fork"))
    message = str(caught.value)
    assert "'acme'" in message
    assert "'gocomm-acme'" in message
    assert "'acme-fork'" in message
    assert registry.get("acme").distribution == "gocomm-acme"


def test_get_unknown_lists_registered_names() -> None:
    registry = load_registry(entry_points=False)
    with pytest.raises(ConfigError) as caught:
        registry.get("sendgrid")
    assert "unknown vendor 'sendgrid'" in str(caught.value)
    assert "registered vendors: console, file, memory" in str(caught.value)


@pytest.mark.parametrize(
    ("spec_args", "problem"),
    [
        (("Bad Name", {"sms"}), "vendor name 'Bad Name' is not valid"),
        (("acme", {"fax"}), "must be a non-empty subset"),
        (("acme", set()), "must be a non-empty subset"),
    ],
)
def test_add_refuses_malformed_specs(spec_args: tuple[str, set[str]], problem: str) -> None:
    name, channels = spec_args
    with pytest.raises(ConfigError, match=problem):
        VendorRegistry().add(VendorSpec(name, frozenset(channels), VendorSettings, MemorySender))


def test_add_refuses_settings_that_are_not_a_model() -> None:
    with pytest.raises(ConfigError, match="settings must be a pydantic model"):
        VendorRegistry().add(VendorSpec("acme", frozenset({"sms"}), dict, MemorySender))  # type: ignore[arg-type]


def test_hookspec_declares_the_registry_argument() -> None:
    manager = pluggy.PluginManager("gocomm")
    manager.add_hookspecs(hookspecs)
    caller = manager.hook.gocomm_register_vendors
    assert caller.spec is not None
    assert caller.spec.argnames == ("registry",)
    assert "Register the vendors" in (caller.spec.function.__doc__ or "")


# the example plugin of docs/plugins.md, installed and run as its author would


def _code_blocks(markdown: str, language: str) -> list[str]:
    blocks, current = [], None
    for line in markdown.splitlines():
        if current is None and line == f"```{language}":
            current = []
        elif current is not None and line == "```":
            blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def _docs_example_project(tmp_path: Path, vendor_edit: tuple[str, str] | None = None) -> Path:
    """The example plugin of docs/plugins.md laid out in ``tmp_path`` as its author would,
    with ``vendor_edit`` (old, new) applied to the vendor's source; returns the site dir."""
    docs = Path(__file__).parents[1] / "docs" / "plugins.md"
    markdown = docs.read_text()
    (pyproject,) = _code_blocks(markdown, "toml")
    plugin, vendor, contract_tests = _code_blocks(markdown, "python")[:3]
    if vendor_edit is not None:
        old, new = vendor_edit
        assert old in vendor, old
        vendor = vendor.replace(old, new)
    project = tomllib.loads(pyproject)["project"]
    site = tmp_path / "site"
    package = site / "gocomm_acme"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text(plugin)
    (package / "vendor.py").write_text(vendor)
    info = site / "gocomm_acme-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: 1\n")
    entry_points = "".join(f"{k} = {v}\n" for k, v in project["entry-points"]["gocomm"].items())
    (info / "entry_points.txt").write_text("[gocomm]\n" + entry_points)
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_contract.py").write_text(contract_tests)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    return site


def _run_example_tests(tmp_path: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )


def test_docs_example_plugin_passes_the_contract_suite(tmp_path: Path) -> None:
    site = _docs_example_project(tmp_path)
    # Its fake counts connections: the suite checked them, and never warned it could not.
    result = _run_example_tests(
        tmp_path, site, "-W", "error::gocomm.testing.contract.ConnectionsNotCounted"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    # every contract test, both failure kinds, and the entry point check of the example
    expected = len([n for n in dir(VendorContract) if n.startswith("test_")]) + 2 + 1
    assert summary.startswith(f"{expected} passed"), summary


@pytest.mark.parametrize(
    ("bug", "edit", "caught_by"),
    [
        (
            "a new client per send",
            (
                "        try:\n            response = await self._client.post(",
                "        self._client = httpx.AsyncClient(\n"
                "            base_url=self._settings.endpoint, timeout=self._settings.timeout\n"
                "        )\n"
                "        try:\n            response = await self._client.post(",
            ),
            "test_sequential_sends_reuse_connections",
        ),
        (
            "an aclose() that leaves the client open",
            ("        await self._client.aclose()", "        pass"),
            "test_aclose_is_idempotent_and_releases_connections",
        ),
    ],
)
def test_the_contract_suite_catches_connection_bugs(
    tmp_path: Path, bug: str, edit: tuple[str, str], caught_by: str
) -> None:
    site = _docs_example_project(tmp_path, vendor_edit=edit)
    result = _run_example_tests(
        tmp_path, site, "-k", "reuse_connections or releases_connections", "-o", "timeout=20"
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, f"{bug} went unnoticed: {output}"
    failed = [line for line in output.splitlines() if line.startswith("FAILED")]
    assert [caught_by in line for line in failed] == [True], output


def test_the_contract_suite_warns_when_it_cannot_count_connections(tmp_path: Path) -> None:
    site = _docs_example_project(tmp_path)
    contract = tmp_path / "tests" / "test_contract.py"
    source = contract.read_text()
    one_line = "class FakeAcme(ServerConnections):"
    assert one_line in source
    contract.write_text(source.replace(one_line, "class FakeAcme:"))
    result = _run_example_tests(tmp_path, site, "-k", "connections")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ConnectionsNotCounted" in output
    assert "connection reuse across sends was not checked" in output
