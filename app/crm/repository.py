"""The overview's SQL: one statement per page, tags and owner included, no per-row queries."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, case, func, select
from sqlalchemy.orm import Session

from app.core.money import quantize_money
from app.core.pagination import PageRequest, RawPage, iterate, paginate
from app.models import Partner
from app.partners.overview import (
    OVERVIEW_SORTING,
    overview_json_select,
    overview_select,
    row_of,
)
from app.partners.repository import filter_conditions
from app.partners.schemas import PartnerFilter

__all__ = ["OVERVIEW_SORTING", "OverviewRepository", "money"]


@dataclass
class OverviewRepository:
    session: Session
    company_id: uuid.UUID

    def select_rows(self, f: PartnerFilter) -> Any:
        """The overview rows matching ``f``, unordered: the base of every page."""
        return overview_select(self.session.get_bind().dialect.name, self.company_id, f)

    def page(
        self, f: PartnerFilter, page: PageRequest, columns: Sequence[str] | None = None
    ) -> RawPage[str]:
        """One page, each row as its JSON text (``row_of``'s object with these ``columns``;
        None: all): on PostgreSQL rendered by the database, elsewhere here."""
        if self.session.get_bind().dialect.name == "postgresql":
            stmt = overview_json_select(self.company_id, f, columns)
            found = paginate(self.session, stmt, sorting=OVERVIEW_SORTING, request=page)
            return RawPage([row.item for row in found.rows], found.next_cursor, found.total)
        found = paginate(self.session, self.select_rows(f), sorting=OVERVIEW_SORTING, request=page)
        rows = [_dumps(row_of(row, columns)) for row in found.rows]
        return RawPage(rows, found.next_cursor, found.total)

    def all_rows(self, f: PartnerFilter, sort: str | None) -> Iterator[Any]:
        return iterate(self.session, self.select_rows(f), sorting=OVERVIEW_SORTING, sort=sort)

    def summary(self, f: PartnerFilter) -> list[Any]:
        stmt = (
            select(
                Partner.customer_stage,
                func.count(),
                func.coalesce(func.sum(Partner.uninvoiced_total), Decimal("0")),
                func.coalesce(func.sum(Partner.debtor_balance), Decimal("0")),
                func.coalesce(
                    func.sum(case((Partner.credit_limit_exceeded.is_(True), 1), else_=0)), 0
                ).cast(Integer),
            )
            .where(Partner.company_id == self.company_id, Partner.customer_stage.is_not(None))
            .where(*filter_conditions(self.company_id, f))
            .group_by(Partner.customer_stage)
        )
        return list(self.session.execute(stmt).all())


def _dumps(item: dict[str, Any]) -> str:
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"))


def money(value: Any) -> Decimal:
    return quantize_money(Decimal(str(value)))
