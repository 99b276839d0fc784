"""API token use-cases."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.auth.repository import TokenRepository
from app.auth.tokens import display_prefix, hash_secret, new_secret
from app.core.errors import FieldError, NotFound, ValidationFailed
from app.core.pagination import PageRequest, RawPage
from app.models import ApiToken, User
from app.models.enums import Scope
from app.users.repository import UserRepository


@dataclass
class IssuedToken:
    token: ApiToken
    user: User
    secret: str


def create(
    *, session: Session, company_id: uuid.UUID, user_id: uuid.UUID, name: str, scope: Scope
) -> IssuedToken:
    user = UserRepository(session, company_id).get(user_id)
    if user is None:
        raise ValidationFailed(
            f"User {user_id} does not exist.",
            code="unknown_user",
            errors=[FieldError(("body", "user_id"), "no such user", "unknown_user")],
        )
    secret = new_secret()
    token = ApiToken(
        company_id=company_id,
        user_id=user.id,
        name=name,
        scope=scope.value,
        token_hash=hash_secret(secret),
        token_prefix=display_prefix(secret),
    )
    TokenRepository(session, company_id).add(token)
    session.commit()
    return IssuedToken(token=token, user=user, secret=secret)


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


def get(*, session: Session, company_id: uuid.UUID, token_id: uuid.UUID) -> tuple[ApiToken, User]:
    token = TokenRepository(session, company_id).get(token_id)
    user = UserRepository(session, company_id).get(token.user_id) if token else None
    if token is None or user is None:
        raise NotFound(f"Token {token_id} does not exist.", code="token_not_found")
    return token, user
