"""Checks that every vendor package's own tests make the same way.

- :func:`shown_texts` and :func:`assert_not_shown`: after a failed send, no secret may appear in
  anything a user sees (the error, the vendor's and the settings' reprs, the log).
- :func:`assert_plugin_entry_point`: the installed distribution registers its vendor through
  the ``gocomm`` entry point, with the right channels and settings model.

The contract suite (:mod:`gocomm.testing.contract`) checks what a vendor does; these check how a
vendor package presents itself, where each package supplies its own names and values.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from pydantic import BaseModel

from gocomm.plugins import VendorSpec, load_registry

__all__ = ["assert_not_shown", "assert_plugin_entry_point", "shown_texts"]


def shown_texts(
    error: BaseException, vendor: object, settings: BaseModel, caplog: pytest.LogCaptureFixture
) -> list[str]:
    """Every text of a failed send a user may see: error, vendor, settings and the log."""
    texts = [str(error), repr(error), repr(vendor), str(vendor), repr(vars(vendor))]
    texts += [repr(settings), str(settings), settings.model_dump_json(), caplog.text]
    texts += [record.getMessage() for record in caplog.records]
    return texts


def assert_not_shown(texts: Iterable[str], *secrets: str) -> None:
    """Fail, naming the text, if any of ``secrets`` appears in any of ``texts``."""
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret appears in {text[:200]!r}"


def assert_plugin_entry_point(
    name: str, *, distribution: str, channels: Iterable[str], settings: type[BaseModel]
) -> VendorSpec:
    """The vendor ``name`` loads through the entry point of ``distribution``; return its spec."""
    registry = load_registry()
    assert not [f for f in registry.failures if f.name == name], registry.failures
    spec = registry.get(name)
    assert spec.distribution == distribution
    assert spec.channels == frozenset(channels)
    assert spec.settings is settings
    return spec
