"""API token use-cases."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.auth.tokens import display_prefix, hash_secret, new_secret
from app.companies import repository as companies
from app.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.core.etags import etag, moment
from app.core.pagination import PageRequest, RawPage
from app.db.base import utcnow
from app.models import ApiToken, User
from app.models.enums import Scope
from app.tokens.repository import TokenRepository
from app.users.repository import UserRepository


@dataclass
class IssuedToken:
    token: ApiToken
    user: User
    secret: str


def create(
    *,
    session: Session,
    company_id: uuid.UUID,
    user_id: uuid.UUID,
    name: str,
    scope: Scope,
    max_active: int,
    expires_at: datetime | None = None,
) -> IssuedToken:
    """A new token, unless the company already holds ``max_active`` unexpired ones (409).

    The company's row is locked first, so concurrent creations cannot pass the cap together."""
    companies.lock(session, company_id)
    repo = TokenRepository(session, company_id)
    active = repo.count_active(utcnow())
    if active >= max_active:
        raise Conflict(
            f"The company holds {active} active tokens, the most allowed ({max_active}); "
            "revoke one first.",
            code="token_limit_reached",
        )
    user = UserRepository(session, company_id).get(user_id)
    if user is None:
        raise ValidationFailed(
            f"User {user_id} does not exist.",
            code="unknown_user",
            errors=[FieldError(("body", "user_id"), "no such user", "unknown_user")],
        )
    secret = new_secret(company_id)
    token = ApiToken(
        company_id=company_id,
        user_id=user.id,
        name=name,
        scope=scope.value,
        token_hash=hash_secret(secret),
        token_prefix=display_prefix(secret),
        expires_at=expires_at,
    )
    repo.add(token)
    session.commit()
    return IssuedToken(token=token, user=user, secret=secret)


def etag_of(token: ApiToken) -> str:
    """A token changes only by being used."""
    return etag(moment(token.created_at), moment(token.last_used_at))


def list_(
    *, session: Session, company_id: uuid.UUID, page: PageRequest
) -> RawPage[tuple[ApiToken, User]]:
    return TokenRepository(session, company_id).list_(page)


def revoke(*, session: Session, company_id: uuid.UUID, token_id: uuid.UUID) -> None:
    """Deletes the token: the very next request with it answers 401."""
    repo = TokenRepository(session, company_id)
    token = repo.get(token_id)
    if token is None:
        raise NotFound(f"Token {token_id} does not exist.", code="token_not_found")
    repo.delete(token)
    session.commit()


def revoke_named(*, session: Session, company_id: uuid.UUID, user_id: uuid.UUID, name: str) -> int:
    """Delete the user's tokens of this name (the caller commits); returns how many."""
    return TokenRepository(session, company_id).delete_named(user_id, name)


def get(*, session: Session, company_id: uuid.UUID, token_id: uuid.UUID) -> tuple[ApiToken, User]:
    token = TokenRepository(session, company_id).get(token_id)
    user = UserRepository(session, company_id).get(token.user_id) if token else None
    if token is None or user is None:
        raise NotFound(f"Token {token_id} does not exist.", code="token_not_found")
    return token, user
