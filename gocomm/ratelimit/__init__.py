"""Rate and concurrency limits around a sender."""

from gocomm.errors import Limited, LimiterError
from gocomm.ratelimit.base import ActiveLimiter, Decision, DecisionLimiter, Limiter

__all__ = ["ActiveLimiter", "Decision", "DecisionLimiter", "Limited", "Limiter", "LimiterError"]
