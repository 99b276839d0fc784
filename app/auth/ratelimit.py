"""Rate limits (OWASP API4) with ``limits``: sliding-window counters per token, per company and
per client address for failed authentication.

With ``CRM_REDIS_URL`` the counters live in Redis and hold across every server process and
machine; without it, they are per process. When Redis cannot be reached, counting falls back
to the process' memory at once (the API keeps answering), the change is logged once, and
``/readyz`` reports ``rate_limits: per_process`` until Redis answers again (tried again every
``RETRY_REDIS_AFTER`` seconds). Over a limit: 429 with ``Retry-After``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from app.core.config import Settings
from app.core.errors import AppError

log = structlog.get_logger("crm.ratelimit")

RETRY_REDIS_AFTER = 5.0  # seconds between attempts to go back to Redis
REDIS_TIMEOUT = 0.25  # seconds: a hanging Redis must not hold requests


class RateLimited(AppError):
    status, title, default_code = 429, "Too many requests", "rate_limited"


def _item(rate: str) -> RateLimitItem | None:
    return parse(rate) if rate and rate != "0" else None


@dataclass
class RateLimiter:
    token_item: RateLimitItem | None
    company_item: RateLimitItem | None
    auth_failure_item: RateLimitItem | None
    shared: Any | None  # the Redis storage, when configured
    prefix: str = "crm"
    clock: Callable[[], float] = time.monotonic
    _local: SlidingWindowCounterRateLimiter = field(
        default_factory=lambda: SlidingWindowCounterRateLimiter(MemoryStorage())
    )
    _shared_limiter: SlidingWindowCounterRateLimiter | None = None
    _down_since: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.shared is not None:
            self._shared_limiter = SlidingWindowCounterRateLimiter(self.shared)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        shared = None
        if settings.redis_url:
            shared = storage_from_string(
                settings.redis_url,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
            )
        return cls(
            token_item=_item(settings.rate_limit),
            company_item=_item(settings.rate_limit_company),
            auth_failure_item=_item(settings.rate_limit_auth_failures),
            shared=shared,
            prefix=settings.redis_key_prefix,
        )

    # -- where the counters live ------------------------------------------------------------

    @property
    def mode(self) -> str:
        """``shared`` (Redis), ``per_process`` (no Redis configured) or ``degraded`` (Redis
        configured but unreachable: counting per process meanwhile)."""
        if self._shared_limiter is None:
            return "per_process"
        return "degraded" if self._down_since is not None else "shared"

    @property
    def in_memory(self) -> bool:
        """Whether counting never leaves the process (no Redis configured): then it may run on
        the event loop."""
        return self._shared_limiter is None

    def _run(self, action: Callable[[SlidingWindowCounterRateLimiter], Any]) -> Any:
        shared = self._shared_limiter
        if shared is not None:
            down = self._down_since
            if down is None or self.clock() - down >= RETRY_REDIS_AFTER:
                try:
                    result = action(shared)
                except Exception as exc:  # any storage failure: count locally instead
                    with self._lock:
                        if self._down_since is None:
                            log.error("rate_limit_storage_unavailable", error=type(exc).__name__)
                        self._down_since = self.clock()
                else:
                    if down is not None:
                        with self._lock:
                            self._down_since = None
                        log.warning("rate_limit_storage_recovered")
                    return result
        return action(self._local)

    # -- the limits -------------------------------------------------------------------------

    def _hit(self, item: RateLimitItem | None, kind: str, key: str, what: str) -> None:
        if item is None:
            return
        if self._run(lambda limiter: limiter.hit(item, self.prefix, kind, key)):
            return
        stats = self._run(lambda limiter: limiter.get_window_stats(item, self.prefix, kind, key))
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"Too many requests for this {what}: the limit is {item}. Retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )

    def hit(self, *, token: str, company: str) -> None:
        """Count one authenticated request against its token and its company."""
        self._hit(self.token_item, "token", token, "token")
        self._hit(self.company_item, "company", company, "company")

    def check_auth_failures(self, client: str) -> None:
        """429 before any database work when this address failed authentication too often."""
        item = self.auth_failure_item
        if item is None:
            return
        if self._run(lambda limiter: limiter.test(item, self.prefix, "authfail", client)):
            return
        stats = self._run(
            lambda limiter: limiter.get_window_stats(item, self.prefix, "authfail", client)
        )
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"Too many failed authentications from this address: the limit is {item}. "
            f"Retry in {retry_after} s.",
            code="too_many_auth_failures",
            headers={"Retry-After": str(retry_after)},
        )

    def auth_failed(self, client: str) -> None:
        item = self.auth_failure_item
        if item is not None:
            self._run(lambda limiter: limiter.hit(item, self.prefix, "authfail", client))
