"""gocomm-smtp: the ``smtp`` email vendor for gocomm.

``SmtpSettings`` is importable without aiosmtplib; ``SmtpSender`` loads it on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gocomm.lazy import lazy_attributes
from gocomm_smtp.settings import SmtpSettings

if TYPE_CHECKING:
    from gocomm_smtp.vendor import SmtpSender

__all__ = ["SmtpSender", "SmtpSettings"]


__getattr__ = lazy_attributes(__name__, {"SmtpSender": "gocomm_smtp.vendor"})
