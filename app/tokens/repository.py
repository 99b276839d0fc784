"""API token SQL, scoped by company."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from app.core.pagination import PageRequest, RawPage, SortField, Sorting, paginate
from app.models import ApiToken, User

_ID = SortField.of(ApiToken.id)
TOKEN_SORTING = Sorting(
    fields={"created_at": SortField.of(ApiToken.created_at)},
    tiebreak=_ID,
    default="created_at",
)


@dataclass
class TokenRepository:
    session: Session
    company_id: uuid.UUID

    def get(self, token_id: uuid.UUID) -> ApiToken | None:
        return self.session.scalar(
            select(ApiToken).where(ApiToken.company_id == self.company_id, ApiToken.id == token_id)
        )

    def list_(self, page: PageRequest) -> RawPage[tuple[ApiToken, User]]:
        stmt = (
            select(ApiToken, User)
            .join(User, (User.company_id == ApiToken.company_id) & (User.id == ApiToken.user_id))
            .where(ApiToken.company_id == self.company_id)
        )
        return paginate(self.session, stmt, sorting=TOKEN_SORTING, request=page)

    def count_active(self, now: datetime) -> int:
        return (
            self.session.scalar(
                select(func.count())
                .select_from(ApiToken)
                .where(
                    ApiToken.company_id == self.company_id,
                    or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
                )
            )
            or 0
        )

    def add(self, token: ApiToken) -> None:
        self.session.add(token)
        self.session.flush()

    def delete_named(self, user_id: uuid.UUID, name: str) -> int:
        result = self.session.execute(
            delete(ApiToken)
            .where(
                ApiToken.company_id == self.company_id,
                ApiToken.user_id == user_id,
                ApiToken.name == name,
            )
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def delete(self, token: ApiToken) -> None:
        self.session.delete(token)
        self.session.flush()
