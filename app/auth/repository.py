"""API token SQL, scoped by company."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.pagination import PageRequest, RawPage, SortField, Sorting, paginate
from app.models import ApiToken, User

_ID = SortField(ApiToken.id, uuid.UUID, lambda row: row[0].id, nullable=False)
TOKEN_SORTING = Sorting(
    fields={
        "created_at": SortField(
            ApiToken.created_at, datetime, lambda row: row[0].created_at, nullable=False
        ),
    },
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
        return paginate(self.session, stmt, sorting=TOKEN_SORTING, request=page, scalars=False)

    def add(self, token: ApiToken) -> None:
        self.session.add(token)
        self.session.flush()

    def delete(self, token: ApiToken) -> None:
        self.session.delete(token)
        self.session.flush()
