"""Names a package imports on first use, so that importing the package stays light."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` importing each name of ``modules`` from the
    module it maps to, on first use.

    A vendor package exports its vendor class this way, so that loading the plugin (which
    imports the package for its settings) does not import the HTTP or SMTP client::

        __getattr__ = lazy_attributes(__name__, {"AliyunSms": "gocomm_aliyun.vendor"})
    """

    def __getattr__(name: str) -> Any:
        if name not in modules:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(modules[name]), name)

    return __getattr__
