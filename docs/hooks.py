"""mkdocs hooks: pages generated from the code at build time, so they cannot go stale.

``reference.md`` is replaced whole by :func:`gocomm.config.reference_markdown`, rendered from
the configuration models and from the settings model of every registered vendor.
"""

from __future__ import annotations

from typing import Any

GENERATED = {"reference.md"}


def render_reference() -> str:
    """The configuration reference, with the keys of every vendor installed here."""
    from gocomm.config import reference_markdown
    from gocomm.plugins import load_registry

    registry = load_registry()
    if registry.failures:
        failed = "; ".join(f"{f.name}: {f.error}" for f in registry.failures)
        raise RuntimeError(f"vendor plugins failed to load; the reference would lack: {failed}")
    return reference_markdown(registry)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri in GENERATED:
        return render_reference()
    return markdown
