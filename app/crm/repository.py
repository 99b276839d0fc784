"""The overview's SQL: one statement per page, tags and owner included, no per-row queries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, case, func, literal, select
from sqlalchemy.orm import Session

from app.core.money import quantize_money
from app.core.pagination import PageRequest, RawPage, SortField, Sorting, iterate, paginate
from app.models import Partner, PartnerTag, Tag
from app.partners.repository import PARTNER_NUMBER, STAGE_RANK, _stage_rank, filter_conditions
from app.partners.schemas import PartnerFilter

TAG_SEPARATOR = "\x1f"  # tag names cannot contain control characters


def _col(name: str, value_type: type, *, nullable: bool = True) -> SortField:
    return SortField(
        getattr(Partner, name), value_type, lambda row: getattr(row, name), nullable=nullable
    )


OVERVIEW_SORTING = Sorting(
    fields={
        "number": PARTNER_NUMBER,
        "name": _col("name", str, nullable=False),
        "country": _col("country", str, nullable=False),
        "credit_limit": _col("credit_limit", Decimal),
        "debtor_balance": _col("debtor_balance", Decimal),
        "credit_limit_exceeded": _col("credit_limit_exceeded", bool, nullable=False),
        "uninvoiced_total": _col("uninvoiced_total", Decimal, nullable=False),
        "latest_sales_delivery_date": _col("latest_sales_delivery_date", date),
        "owner": _col("owner_name", str),
        "customer_stage": SortField(STAGE_RANK, int, _stage_rank, nullable=False),
    },
    tiebreak=PARTNER_NUMBER,
    default="number",
)


def _tags_column(dialect: str) -> Any:
    names = (
        select(Tag.name)
        .join(PartnerTag, (PartnerTag.company_id == Tag.company_id) & (PartnerTag.tag_id == Tag.id))
        .where(PartnerTag.company_id == Partner.company_id, PartnerTag.partner_id == Partner.id)
    )
    if dialect == "postgresql":
        agg = func.string_agg(Tag.name, literal(TAG_SEPARATOR))
    else:
        agg = func.group_concat(Tag.name, TAG_SEPARATOR)
    return names.with_only_columns(agg).scalar_subquery().label("tags")


@dataclass
class OverviewRepository:
    session: Session
    company_id: uuid.UUID

    def select_rows(self, f: PartnerFilter) -> Any:
        """The overview rows matching ``f``, unordered: the base of every page."""
        dialect = self.session.get_bind().dialect.name
        return (
            select(
                Partner.number,
                Partner.name,
                Partner.country,
                Partner.credit_limit,
                Partner.debtor_balance,
                Partner.debtor_balance_synced_at,
                Partner.credit_limit_exceeded,
                Partner.uninvoiced_total,
                Partner.latest_sales_delivery_date,
                Partner.customer_stage,
                Partner.owner_id,
                Partner.owner_name,
                _tags_column(dialect),
            )
            .where(Partner.company_id == self.company_id, Partner.customer_stage.is_not(None))
            .where(*filter_conditions(self.company_id, f))
        )

    def page(self, f: PartnerFilter, page: PageRequest) -> RawPage[Any]:
        return paginate(
            self.session, self.select_rows(f), sorting=OVERVIEW_SORTING, request=page, scalars=False
        )

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


def split_tags(value: str | None) -> list[str]:
    return sorted(value.split(TAG_SEPARATOR), key=str.lower) if value else []


def money(value: Any) -> Decimal:
    return quantize_money(Decimal(str(value)))
