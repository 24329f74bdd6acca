"""Rate and concurrency limits around a sender."""

from gocomm.errors import Limited, LimiterError
from gocomm.ratelimit.base import ActiveLimiter, Decision, DecisionLimiter, Limiter
from gocomm.ratelimit.memory import ConcurrencyLimiter, SlidingWindowLimiter, TokenBucketLimiter

__all__ = [
    "ActiveLimiter",
    "ConcurrencyLimiter",
    "Decision",
    "DecisionLimiter",
    "Limited",
    "Limiter",
    "LimiterError",
    "SlidingWindowLimiter",
    "TokenBucketLimiter",
]
