"""Saved view SQL, scoped by company; reads also by who may see a view (its creator, or
anyone of the company when it is shared)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.core.pagination import PageRequest, RawPage, SortField, Sorting, paginate
from app.models import SavedView, User

VIEW_SORTING = Sorting(
    fields={
        "name": SortField.of(SavedView.name),
        "created_at": SortField.of(SavedView.created_at),
    },
    tiebreak=SortField.of(SavedView.id),
    default="name",
)


@dataclass
class ViewRepository:
    session: Session
    company_id: uuid.UUID

    def _visible(self, viewer_id: uuid.UUID) -> Any:
        """The company's views ``viewer_id`` may see, each with its creator's name."""
        return (
            select(SavedView, User.name.label("owner_name"))
            .join(User, (User.company_id == SavedView.company_id) & (User.id == SavedView.owner_id))
            .where(
                SavedView.company_id == self.company_id,
                or_(SavedView.shared.is_(True), SavedView.owner_id == viewer_id),
            )
        )

    def get(
        self, view_id: uuid.UUID, viewer_id: uuid.UUID, *, for_update: bool = False
    ) -> tuple[SavedView, str] | None:
        stmt = self._visible(viewer_id).where(SavedView.id == view_id)
        if for_update:
            stmt = stmt.with_for_update(of=SavedView)
        row = self.session.execute(stmt.execution_options(populate_existing=True)).one_or_none()
        return None if row is None else (row[0], row[1])

    def list_(self, viewer_id: uuid.UUID, page: PageRequest) -> RawPage[Any]:
        """Rows of (view, owner name)."""
        return paginate(self.session, self._visible(viewer_id), sorting=VIEW_SORTING, request=page)

    def count_owned(self, owner_id: uuid.UUID) -> int:
        return int(
            self.session.scalar(
                select(func.count()).where(
                    SavedView.company_id == self.company_id, SavedView.owner_id == owner_id
                )
            )
            or 0
        )

    def add(self, view: SavedView) -> None:
        self.session.add(view)
        self.session.flush()

    def delete(self, view: SavedView) -> None:
        self.session.delete(view)
        self.session.flush()
