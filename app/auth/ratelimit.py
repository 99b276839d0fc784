"""Per-token rate limiting (OWASP API4) with ``limits``: a sliding-window counter per token,
shared across server processes through Redis when ``CRM_REDIS_URL`` is set, in memory (per
process) otherwise. Over the limit: 429 with ``Retry-After``."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from app.core.errors import AppError


class RateLimited(AppError):
    status, title, default_code = 429, "Too many requests", "rate_limited"


@dataclass
class RateLimiter:
    item: RateLimitItem | None
    limiter: SlidingWindowCounterRateLimiter

    @classmethod
    def from_settings(cls, rate: str, redis_url: str | None) -> RateLimiter:
        item = parse(rate) if rate and rate != "0" else None
        storage: Any = storage_from_string(redis_url) if redis_url else MemoryStorage()
        return cls(item=item, limiter=SlidingWindowCounterRateLimiter(storage))

    def hit(self, key: str) -> None:
        """Count one request of ``key``; 429 when it is over the limit."""
        if self.item is None:
            return
        if self.limiter.hit(self.item, "token", key):
            return
        stats = self.limiter.get_window_stats(self.item, "token", key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"Too many requests for this token: the limit is {self.item}. "
            f"Retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )
