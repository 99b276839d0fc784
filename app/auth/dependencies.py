"""The request's database session and its principal: company, user and scope, from the token."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

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
class Principal:
    company: Company
    user: User
    scope: Scope
    token_id: uuid.UUID

    @property
    def company_id(self) -> uuid.UUID:
        return self.company.id


def authenticate(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    challenge = {"WWW-Authenticate": 'Bearer realm="crm-overview"'}
    if credentials is None:
        raise Unauthorized(
            "Send an API token: Authorization: Bearer <token>.",
            code="missing_token",
            headers=challenge,
        )
    secret = credentials.credentials
    row = None
    if len(secret) <= MAX_TOKEN_LENGTH:
        row = session.execute(
            select(ApiToken, User, Company)
            .join(User, (User.company_id == ApiToken.company_id) & (User.id == ApiToken.user_id))
            .join(Company, Company.id == ApiToken.company_id)
            .where(ApiToken.token_hash == hash_secret(secret))
        ).one_or_none()
    if row is None:
        raise Unauthorized(
            "The API token is unknown or has been revoked.",
            code="invalid_token",
            headers={
                **challenge,
                "WWW-Authenticate": challenge["WWW-Authenticate"] + ', error="invalid_token"',
            },
        )
    token, user, company = row
    # Detach them: they describe the caller for the whole request, whatever the session does.
    session.expunge_all()
    principal = Principal(company=company, user=user, scope=Scope(token.scope), token_id=token.id)
    request.state.principal = principal
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
