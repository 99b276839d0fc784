"""User use-cases."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import Conflict, FieldError, NotFound
from app.core.etags import etag, moment
from app.core.pagination import PageRequest, RawPage
from app.idempotency.service import Idempotency
from app.models import User
from app.users.repository import UserRepository
from app.users.schemas import UserCreate


def etag_of(user: User) -> str:
    """Users do not change once made: the moment of creation tells them apart."""
    return etag(moment(user.created_at))


def get(*, session: Session, company_id: uuid.UUID, user_id: uuid.UUID) -> User:
    user = UserRepository(session, company_id).get(user_id)
    if user is None:
        raise NotFound(f"User {user_id} does not exist.", code="user_not_found")
    return user


def list_(*, session: Session, company_id: uuid.UUID, page: PageRequest) -> RawPage[User]:
    return UserRepository(session, company_id).list_(page)


def create(
    *,
    session: Session,
    company_id: uuid.UUID,
    data: UserCreate,
    idempotency: Idempotency[User] | None = None,
) -> User:
    repo = UserRepository(session, company_id)
    taken = Conflict(
        f"A user with the email {data.email!r} exists already.",
        code="email_taken",
        errors=[FieldError(("body", "email"), "already in use", "email_taken")],
    )
    if repo.get_by_email(data.email) is not None:
        raise taken
    user = User(
        company_id=company_id, name=data.name, email=data.email, email_key=data.email.lower()
    )
    try:
        repo.add(user)
        if idempotency is not None:
            idempotency.record(session, user)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise taken from exc
    return user
