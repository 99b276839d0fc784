"""The request's database session and its principal: company, user and scope, from the token."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Annotated

import anyio
import structlog
from fastapi import BackgroundTasks, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.auth import repository
from app.auth.cache import CachedToken, TokenCache
from app.auth.ratelimit import RateLimiter
from app.auth.tokens import MAX_TOKEN_LENGTH, company_of, hash_secret
from app.core.config import Settings
from app.core.errors import Forbidden, Unauthorized
from app.db.base import utcnow
from app.db.session import Database
from app.models import ApiToken, Company, User
from app.models.enums import Scope

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="An API token: `Authorization: Bearer crm_...`",
)


async def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_session(
    request: Request, db: Annotated[Database, Depends(get_database)]
) -> AsyncIterator[Session]:
    """One session per request; changes open a write transaction from the start.

    The request first takes one of the process's request slots (``Database.request_slot``),
    waiting on the event loop, not in a worker thread. Making the session connects nothing;
    closing it (a rollback when the request failed) runs in a worker thread, shielded from
    cancellation so that a client that goes away still gives the connection back."""
    async with db.request_slot():
        write = request.method not in SAFE_METHODS
        async with _closed_in_thread(db.session(write=write), connects=False) as session:
            yield session


@asynccontextmanager
async def _closed_in_thread(
    opening: AbstractContextManager[Session], *, connects: bool
) -> AsyncIterator[Session]:
    """A session's context, entered on the event loop unless it ``connects``, and exited
    (a rollback when the request failed, the close) in a worker thread, shielded from
    cancellation."""
    opened = ExitStack()
    if connects:
        session = await run_in_threadpool(opened.enter_context, opening)
    else:
        session = opened.enter_context(opening)
    try:
        yield session
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(opened.__exit__, type(exc), exc, exc.__traceback__)
        raise
    with anyio.CancelScope(shield=True):
        await run_in_threadpool(opened.close)


SessionDep = Annotated[Session, Depends(get_session)]


async def get_read_session(
    db: Annotated[Database, Depends(get_database)], primary: SessionDep
) -> AsyncIterator[Session]:
    """The session of reads that tolerate a replica's lag (the overview, its exports, the
    summary, the lists): the replica's when ``CRM_DATABASE_REPLICA_URL`` is set and it answers,
    else the request's own. Authentication and everything that writes, checks ``If-Match`` or
    reads its own writes (the event feed) stay on the request's session, on the primary."""
    if db.replica is None:
        yield primary
        return
    async with _closed_in_thread(db.reader(), connects=True) as session:  # it pings
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session)]


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


@dataclass(frozen=True)
class CompanyInfo:
    """The caller's company as read at authentication (plain values, no session needed)."""

    id: uuid.UUID
    slug: str
    name: str
    base_currency: str
    credit_check: str
    credit_enforcement: str
    dormancy_days: int | None
    created_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class UserInfo:
    id: uuid.UUID
    name: str
    email: str
    created_at: datetime


@dataclass(frozen=True)
class Principal:
    company: CompanyInfo
    user: UserInfo
    scope: Scope
    token_id: uuid.UUID

    @property
    def company_id(self) -> uuid.UUID:
        return self.company.id

    @classmethod
    def acting_as(cls, company: Company, user: User, scope: Scope = Scope.admin) -> Principal:
        """A principal for work done outside a request (CLI, demo, seed), as ``user``."""
        return cls(
            company=CompanyInfo(*(getattr(company, f.name) for f in fields(CompanyInfo))),
            user=UserInfo(*(getattr(user, f.name) for f in fields(UserInfo))),
            scope=scope,
            token_id=uuid.UUID(int=0),
        )


_COMPANY_COLUMNS = [getattr(Company, f.name) for f in fields(CompanyInfo)]
_USER_COLUMNS = [getattr(User, f.name) for f in fields(UserInfo)]
_AUTH_QUERY = (
    select(
        ApiToken.id,
        ApiToken.scope,
        ApiToken.expires_at,
        ApiToken.last_used_at,
        *_COMPANY_COLUMNS,
        *_USER_COLUMNS,
    )
    .join(User, (User.company_id == ApiToken.company_id) & (User.id == ApiToken.user_id))
    .join(Company, Company.id == ApiToken.company_id)
)
# The two lookups, built once with their values as parameters: building a comparison (and its
# cache key) per request costs more than running the statement.
_AUTH_BY_HASH = _AUTH_QUERY.where(ApiToken.token_hash == bindparam("token_hash"))
_AUTH_IN_COMPANY = _AUTH_BY_HASH.where(ApiToken.company_id == bindparam("company_id"))
_FIRST_COMPANY_COLUMN = 4
# ``last_used_at`` is written at most this often per token: a write per request would cost
# more than the request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
CHALLENGE = 'Bearer realm="crm-overview"'

log = structlog.get_logger("crm.auth")


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _refused(
    limiter: RateLimiter | None, client: str, detail: str, code: str, error: str | None
) -> Unauthorized:
    if limiter is not None:
        limiter.auth_failed(client)
    challenge = CHALLENGE + (f', error="{error}"' if error else "")
    return Unauthorized(detail, code=code, headers={"WWW-Authenticate": challenge})


def _touch(session: Session, company_id: uuid.UUID, token_id: uuid.UUID, now: datetime) -> None:
    """Record a read request's token use after the answer is sent, in a short transaction
    of its own on the request's session (still open: a request's session closes after its
    background tasks), so a read never holds two connections; never fails the request."""
    try:
        session.rollback()  # the reads' transaction ends (SQLite: its snapshot)
        repository.touch(session, company_id, token_id, now, LAST_USED_RESOLUTION)
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        log.warning("token_last_used_not_recorded", error=type(exc).__name__)


async def authenticate(
    request: Request,
    session: SessionDep,
    background: BackgroundTasks,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller, from the bearer token. On the event loop when this process remembers the
    token (``app.auth.cache``) and the rate limits are counted in its memory; otherwise the
    token is read (and Redis asked) in a worker thread."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None or limiter.in_memory:
        principal = _authenticate(request, session, background, credentials, on_loop=True)
        if principal is not None:
            return principal
    found = await run_in_threadpool(
        _authenticate, request, session, background, credentials, on_loop=False
    )
    assert found is not None  # a worker thread reads the token when it is not remembered
    return found


def _authenticate(
    request: Request,
    session: Session,
    background: BackgroundTasks,
    credentials: HTTPAuthorizationCredentials | None,
    *,
    on_loop: bool,
) -> Principal | None:
    """The caller, or (``on_loop``) None when that would take a query."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    cache: TokenCache | None = getattr(request.app.state, "token_cache", None)
    client = _client_address(request)
    if limiter is not None:
        # Before any database work: guessing tokens costs the guesser, not the database.
        limiter.check_auth_failures(client)
    if credentials is None:
        raise _refused(
            limiter,
            client,
            "Send an API token: Authorization: Bearer <token>.",
            "missing_token",
            None,
        )
    secret = credentials.credentials
    token_hash = hash_secret(secret) if len(secret) <= MAX_TOKEN_LENGTH else None
    entry = cache.get(token_hash) if cache is not None and token_hash is not None else None
    if entry is None:
        if on_loop:
            return None
        generation = cache.generation if cache is not None else 0
        entry = _read_token(session, secret, token_hash)
        if entry is None:
            raise _refused(
                limiter,
                client,
                "The API token is unknown or has been revoked.",
                "invalid_token",
                "invalid_token",
            )
        if cache is not None and token_hash is not None:
            cache.put(token_hash, entry, generation)
    now = utcnow()
    if entry.expires_at is not None and entry.expires_at <= now:
        raise _refused(
            limiter, client, "The API token has expired.", "token_expired", "invalid_token"
        )
    stale_use = entry.last_used_at is None or now - entry.last_used_at >= LAST_USED_RESOLUTION
    writing = request.method not in SAFE_METHODS
    if on_loop and stale_use and writing:
        # A write records the use in its own transaction, which takes a query: in a thread.
        return None
    principal: Principal = entry.principal
    request.state.principal = principal
    if limiter is not None:
        limiter.hit(token=str(principal.token_id), company=str(principal.company_id))
    if stale_use:
        entry.last_used_at = now  # the next minute's requests need not record it again
        if writing:
            # A write's transaction holds SQLite's write lock already (a second transaction
            # would wait for it): the use is recorded in it, committed with the change.
            repository.touch(
                session, principal.company_id, principal.token_id, now, LAST_USED_RESOLUTION
            )
        else:
            # A read holds no write lock: its own short transaction, after the answer.
            background.add_task(_touch, session, principal.company_id, principal.token_id, now)
    return principal


def _read_token(session: Session, secret: str, token_hash: str | None) -> CachedToken | None:
    if token_hash is None:
        return None
    company_id = company_of(secret)
    if company_id is not None:  # the company's own tokens only: one key, one shard
        result = session.execute(
            _AUTH_IN_COMPANY, {"token_hash": token_hash, "company_id": company_id}
        )
    else:
        result = session.execute(_AUTH_BY_HASH, {"token_hash": token_hash})
    row = result.one_or_none()
    if row is None:
        return None
    n_company = len(_COMPANY_COLUMNS)
    first = _FIRST_COMPANY_COLUMN
    principal = Principal(
        company=CompanyInfo(*row[first : first + n_company]),
        user=UserInfo(*row[first + n_company :]),
        scope=Scope(row.scope),
        token_id=row.id,
    )
    return CachedToken(principal, row.expires_at, row.last_used_at)


def require(needed: Scope) -> Callable[..., Awaitable[Principal]]:
    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.scope.allows(needed):
            raise Forbidden(
                f"This needs a token with the {needed.value!r} scope; yours has "
                f"{principal.scope.value!r}.",
                code="insufficient_scope",
            )
        return principal

    dependency.__name__ = f"require_{needed.value}"
    return dependency


Reader = Annotated[Principal, Depends(require(Scope.read))]
Writer = Annotated[Principal, Depends(require(Scope.write))]
Admin = Annotated[Principal, Depends(require(Scope.admin))]
