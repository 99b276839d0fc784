"""User SQL, scoped by company."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.pagination import PageRequest, RawPage, SortField, Sorting, paginate
from app.models import User

_ID = SortField.of(User.id)
USER_SORTING = Sorting(
    fields={"name": SortField.of(User.name), "id": _ID},
    tiebreak=_ID,
    default="name",
)


@dataclass
class UserRepository:
    session: Session
    company_id: uuid.UUID

    def get(self, user_id: uuid.UUID) -> User | None:
        return self.session.scalar(
            select(User).where(User.company_id == self.company_id, User.id == user_id)
        )

    def get_by_email(self, email: str) -> User | None:
        return self.session.scalar(
            select(User).where(User.company_id == self.company_id, User.email_key == email.lower())
        )

    def list_(self, page: PageRequest) -> RawPage[User]:
        stmt = select(User).where(User.company_id == self.company_id)
        return paginate(self.session, stmt, sorting=USER_SORTING, request=page)

    def add(self, user: User) -> None:
        self.session.add(user)
        self.session.flush()
