"""gocomm-smtp: the ``smtp`` email vendor for gocomm.

``SmtpSettings`` is importable without aiosmtplib; ``SmtpSender`` loads it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gocomm_smtp.settings import SmtpSettings

if TYPE_CHECKING:
    from gocomm_smtp.vendor import SmtpSender

__all__ = ["SmtpSender", "SmtpSettings"]


def __getattr__(name: str) -> Any:
    if name == "SmtpSender":
        from gocomm_smtp.vendor import SmtpSender

        return SmtpSender
    raise AttributeError(f"module 'gocomm_smtp' has no attribute {name!r}")
