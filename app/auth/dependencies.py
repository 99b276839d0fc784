"""The request's database session and its principal: company, user and scope, from the token."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.ratelimit import RateLimiter
from app.auth.tokens import MAX_TOKEN_LENGTH, hash_secret
from app.core.errors import Forbidden, Unauthorized
from app.db.session import Database
from app.models import ApiToken, Company, User
from app.models.enums import Scope

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="An API token: `Authorization: Bearer crm_...`",
)


def get_database(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_session(
    request: Request, db: Annotated[Database, Depends(get_database)]
) -> Iterator[Session]:
    """One session per request; changes open a write transaction from the start."""
    with db.session(write=request.method not in SAFE_METHODS) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


@dataclass(frozen=True)
class CompanyInfo:
    """The caller's company as read at authentication (plain values, no session needed)."""

    id: uuid.UUID
    slug: str
    name: str
    base_currency: str
    credit_check: str
    credit_enforcement: str
    created_at: datetime
    updated_at: datetime


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
    select(ApiToken.id, ApiToken.scope, *_COMPANY_COLUMNS, *_USER_COLUMNS)
    .join(User, (User.company_id == ApiToken.company_id) & (User.id == ApiToken.user_id))
    .join(Company, Company.id == ApiToken.company_id)
)


def authenticate(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    challenge = 'Bearer realm="crm-overview"'
    if credentials is None:
        raise Unauthorized(
            "Send an API token: Authorization: Bearer <token>.",
            code="missing_token",
            headers={"WWW-Authenticate": challenge},
        )
    secret = credentials.credentials
    row = None
    if len(secret) <= MAX_TOKEN_LENGTH:
        row = session.execute(
            _AUTH_QUERY.where(ApiToken.token_hash == hash_secret(secret))
        ).one_or_none()
    if row is None:
        raise Unauthorized(
            "The API token is unknown or has been revoked.",
            code="invalid_token",
            headers={"WWW-Authenticate": challenge + ', error="invalid_token"'},
        )
    n_company = len(_COMPANY_COLUMNS)
    principal = Principal(
        company=CompanyInfo(*row[2 : 2 + n_company]),
        user=UserInfo(*row[2 + n_company :]),
        scope=Scope(row.scope),
        token_id=row.id,
    )
    request.state.principal = principal
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        limiter.hit(str(principal.token_id))
    return principal


def require(needed: Scope) -> Callable[..., Principal]:
    def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
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
