"""Each process remembers the tokens it has checked, for at most ``CRM_AUTH_CACHE_SECONDS``
(one second by default). A request whose token is remembered is authenticated on the event
loop, with no query and no worker thread.

What a remembered token can miss, and for how long:
- In this process, nothing. A commit that changes or deletes a token, a company or a user
  through a session (a revocation, a company's settings, a user's name) empties every cache of
  the process when it commits, before the request that made it answers.
- In another process (another worker, another machine, ``crm token revoke``), the change is
  seen within the cache's lifetime: a revoked token stops working within a second everywhere.

A lookup that began before such a commit is not remembered after it (``generation``), so a
thread that read the token just before its revocation cannot put it back.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cachetools import TTLCache
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from app.models import ApiToken, Company, User

# The most tokens one process remembers: far more than are used within one second.
MAX_TOKENS = 10_000
_CHANGED = "crm_auth_rows_changed"
# The execution option of a statement that changes nothing a cache holds (recording a token's
# use: the cache keeps that itself).
UNCACHED_ONLY = "crm_auth_cache_unaffected"
_WATCHED_CLASSES = (ApiToken, Company, User)
_WATCHED_TABLES = frozenset(c.__table__ for c in _WATCHED_CLASSES)


@dataclass
class CachedToken:
    """What authentication needs of a token row, once read: the caller, and when the token
    expires and was last recorded as used (updated when a request records a newer use)."""

    principal: Any  # app.auth.dependencies.Principal
    expires_at: datetime | None
    last_used_at: datetime | None


class TokenCache:
    """The tokens one process has checked in the last ``seconds``, by their hash; ``seconds``
    0 remembers nothing."""

    def __init__(
        self,
        seconds: float,
        maxsize: int = MAX_TOKENS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._entries: TTLCache[str, CachedToken] | None = (
            TTLCache(maxsize, seconds, timer=clock) if seconds > 0 else None
        )
        self._generation = 0
        _CACHES.add(self)

    @property
    def generation(self) -> int:
        """Read before a lookup, passed to :meth:`put` after it."""
        return self._generation

    def get(self, token_hash: str) -> CachedToken | None:
        if self._entries is None:
            return None
        with self._lock:
            return self._entries.get(token_hash)

    def put(self, token_hash: str, entry: CachedToken, generation: int) -> None:
        """Remember ``entry``, unless the cache was emptied since ``generation`` was read."""
        if self._entries is None:
            return
        with self._lock:
            if generation == self._generation:
                self._entries[token_hash] = entry

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            if self._entries is not None:
                self._entries.clear()


_CACHES: weakref.WeakSet[TokenCache] = weakref.WeakSet()


def forget_everything() -> None:
    """Empty every token cache of this process."""
    for cache in list(_CACHES):
        cache.clear()


# --- what empties the caches: a commit that changed a token, a company or a user ------------


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush: UOWTransaction) -> None:
    # Still the flush's own lists here: what it updated and deleted (a new row changes no
    # remembered token).
    if any(isinstance(obj, _WATCHED_CLASSES) for obj in (*session.dirty, *session.deleted)):
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    # UPDATE and DELETE statements (bulk, or Core through the session).
    if (state.is_update or state.is_delete) and not state.execution_options.get(UNCACHED_ONLY):
        table = getattr(state.statement, "table", None)
        if table is not None and table in _WATCHED_TABLES:
            state.session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        forget_everything()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)
