"""Rate and concurrency limits around a sender."""

from gocomm.errors import Limited, LimiterError
from gocomm.ratelimit.base import (
    ActiveLimiter,
    Decision,
    DecisionLimiter,
    Limiter,
    RefundableLimiter,
)
from gocomm.ratelimit.memory import ConcurrencyLimiter, SlidingWindowLimiter, TokenBucketLimiter
from gocomm.ratelimit.redis import (
    RedisConcurrencyLimiter,
    RedisSlidingWindowLimiter,
    RedisTokenBucketLimiter,
)
from gocomm.ratelimit.sender import ConcurrencyLimitSender, RateLimitSender

__all__ = [
    "ActiveLimiter",
    "ConcurrencyLimitSender",
    "ConcurrencyLimiter",
    "Decision",
    "DecisionLimiter",
    "Limited",
    "Limiter",
    "LimiterError",
    "RateLimitSender",
    "RedisConcurrencyLimiter",
    "RedisSlidingWindowLimiter",
    "RedisTokenBucketLimiter",
    "RefundableLimiter",
    "SlidingWindowLimiter",
    "TokenBucketLimiter",
]
