"""gocomm: high-availability SMS and email.

One async protocol, :class:`Sender`, wrapped by composable strategies (retry, rate limit,
failover) around vendor plugins.
"""

from gocomm.errors import (
    AllSendersFailed,
    CircuitOpen,
    CommError,
    ConfigError,
    DuplicateInFlight,
    IdempotencyConflict,
    InvalidMessage,
    InvalidRecipient,
    Limited,
    LimiterError,
    PermanentError,
    RetryExhausted,
    SendError,
    SendTimeout,
    is_retryable,
)
from gocomm.messages import Attachment, Email
from gocomm.sender import Receipt, Sender

__version__ = "0.1.0"

__all__ = [
    "AllSendersFailed",
    "Attachment",
    "CircuitOpen",
    "CommError",
    "ConfigError",
    "DuplicateInFlight",
    "Email",
    "IdempotencyConflict",
    "InvalidMessage",
    "InvalidRecipient",
    "Limited",
    "LimiterError",
    "PermanentError",
    "Receipt",
    "RetryExhausted",
    "SendError",
    "SendTimeout",
    "Sender",
    "is_retryable",
]
