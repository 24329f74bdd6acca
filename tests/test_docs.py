"""The documentation site: the generated configuration reference names every key, and the nav
lists every page (the strict mkdocs build in scripts/test checks the links)."""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from pathlib import Path
from types import ModuleType
from typing import get_args

import pytest
import yaml
from packaging.requirements import Requirement
from pydantic import BaseModel
from pymdownx import superfences

from gocomm.config import Settings
from gocomm.plugins import load_registry
from gocomm.reference import REFERENCE_SECTIONS

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def load_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gocomm_docs_hooks", DOCS / "hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _File:
    def __init__(self, src_uri: str) -> None:
        self.src_uri = src_uri


class _Page:
    def __init__(self, src_uri: str) -> None:
        self.file = _File(src_uri)


def test_reference_lists_every_configuration_and_vendor_key() -> None:
    hooks = load_hooks()
    stub = (DOCS / "reference.md").read_text()
    page = hooks.on_page_markdown(stub, _Page("reference.md"), None, None)
    missing = [
        f"{path}.{name}"
        for path, model in REFERENCE_SECTIONS
        for name in model.model_fields
        if name not in ("options", "settings") and f"`{name}`" not in page
    ]
    registry = load_registry()
    for name in registry.names():
        spec = registry.get(name)
        assert f"`plugin: {name}`" in page
        section = page.split(f"`plugin: {name}`", 1)[1].split("\n### ", 1)[0]
        missing += [
            f"{name}.{key}" for key in spec.settings.model_fields if f"`{key}`" not in section
        ]
    assert missing == []


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for argument in get_args(annotation) for model in _models_in(argument)]


def test_the_committed_reference_is_current() -> None:
    """docs/reference.md is committed so that it reads on the repository: it must be what the
    build would render."""
    hooks = load_hooks()
    committed = (DOCS / "reference.md").read_text(encoding="utf-8")
    assert committed == hooks.render_reference(), (
        "docs/reference.md is stale: a configuration or vendor settings model changed; "
        "regenerate it with `python docs/hooks.py` and commit it"
    )


def test_reference_documents_every_model_a_configuration_can_hold() -> None:
    """A section model added to Settings (a new failover mode, say) gets its own section."""
    reachable: set[type[BaseModel]] = set()
    pending: list[type[BaseModel]] = [Settings]
    while pending:
        model = pending.pop()
        if model not in reachable:
            reachable.add(model)
            pending += [m for f in model.model_fields.values() for m in _models_in(f.annotation)]
    reachable.discard(BaseModel)  # VendorEntry.settings: each vendor's model, listed apart
    assert reachable - {model for _, model in REFERENCE_SECTIONS} == set()


def test_other_pages_pass_through_the_hook() -> None:
    hooks = load_hooks()
    assert hooks.on_page_markdown("# hello", _Page("index.md"), None, None) == "# hello"


def _nav_pages(items: object) -> list[str]:
    if isinstance(items, str):
        return [items]
    if isinstance(items, list):
        return [page for item in items for page in _nav_pages(item)]
    if isinstance(items, dict):
        return [page for value in items.values() for page in _nav_pages(value)]
    return []


def test_nav_lists_every_page_and_only_pages_that_exist() -> None:
    class Loader(yaml.SafeLoader):
        pass  # mkdocs.yml names Python objects (the mermaid fence): keep them as strings

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda _, tag, node: tag)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)
    nav = _nav_pages(config["nav"])
    assert sorted(nav) == sorted(p.name for p in DOCS.glob("*.md"))
    assert config["strict"] is True


_DIAGRAM_KINDS = ("flowchart ", "sequenceDiagram", "stateDiagram-v2")


@pytest.mark.parametrize("page", ["index.md", "strategies.md", "configuration.md"])
def test_pictures_render_as_mermaid_diagrams(page: str) -> None:
    """The pictures are Mermaid fences that the site's superfences configuration turns into
    diagrams (a fence it did not know would come out as a code block)."""
    import markdown

    diagrams = _fenced(page, "mermaid")
    assert diagrams, f"{page} has no diagram"
    for diagram in diagrams:
        assert diagram.startswith(_DIAGRAM_KINDS), diagram.splitlines()[0]
        # Mermaid ends a statement at ';': in a label it cuts the diagram short.
        assert ";" not in diagram, diagram
    html = markdown.markdown(
        (DOCS / page).read_text(),
        extensions=["pymdownx.superfences"],
        extension_configs={
            "pymdownx.superfences": {
                "custom_fences": [
                    {
                        "name": "mermaid",
                        "class": "mermaid",
                        "format": superfences.fence_code_format,
                    }
                ]
            }
        },
    )
    assert html.count('<pre class="mermaid"><code>') == len(diagrams)


def test_the_site_renders_mermaid_fences() -> None:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda _, tag, node: tag)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)
    (fences,) = [
        e["pymdownx.superfences"]["custom_fences"]
        for e in config["markdown_extensions"]
        if isinstance(e, dict) and "pymdownx.superfences" in e
    ]
    assert {"name": "mermaid", "class": "mermaid"}.items() <= fences[0].items()
    assert fences[0]["format"].endswith("pymdownx.superfences.fence_code_format")


# -- the examples in the pages run as shown ----------------------------------------------------

_FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks(page: str) -> list[str]:
    return _FENCE.findall((DOCS / page).read_text())


def _scripts() -> list[tuple[str, str]]:
    """Every complete program of the pages (the blocks that run themselves with asyncio.run)."""
    return [
        (page.name, block)
        for page in sorted(DOCS.glob("*.md"))
        for block in _blocks(page.name)
        if "asyncio.run(" in block
    ]


@pytest.mark.parametrize(("page", "script"), _scripts())
def test_page_examples_run(
    page: str, script: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("GOCOMM_"):
            monkeypatch.delenv(name)  # the examples rely on the embedded default
    exec(compile(script, f"docs/{page}", "exec"), {"__name__": "__main__"})


def _fenced(page: str, language: str) -> list[str]:
    fence = re.compile(rf"^```{language}\n(.*?)^```", re.DOTALL | re.MULTILINE)
    return fence.findall((DOCS / page).read_text())


def test_the_pytest_extra_brings_what_the_testing_page_configures() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = {Requirement(r).name for r in project["optional-dependencies"]["pytest"]}
    assert extra == {"pytest", "pytest-asyncio"}
    (config,) = [b for b in _fenced("testing.md", "toml") if "[tool.pytest.ini_options]" in b]
    assert tomllib.loads(config)["tool"]["pytest"]["ini_options"]["asyncio_mode"] == "auto"


def test_the_testing_page_examples_pass_in_a_project_laid_out_as_it_says(
    pytester: pytest.Pytester,
) -> None:
    # A fresh project: its pyproject.toml holds the page's configuration and nothing else,
    # the examples live in tests/, and pytest runs in its own process, as in a user's shell.
    (config,) = [b for b in _fenced("testing.md", "toml") if "[tool.pytest.ini_options]" in b]
    pytester.makefile(".toml", pyproject=config)
    (pytester.path / "myapp").mkdir()
    (pytester.path / "myapp" / "__init__.py").write_text("")
    tests = pytester.mkdir("tests")
    blocks = [block for block in _blocks("testing.md") if "def test_" in block]
    assert len(blocks) >= 3
    tests_in_blocks = 0
    for index, block in enumerate(blocks):
        (tests / f"test_example_{index}.py").write_text(block)
        tests_in_blocks += len(re.findall(r"^(?:async )?def test_", block, re.MULTILINE))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=tests_in_blocks)
