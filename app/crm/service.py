"""The CRM overview, its CSV export and the per-stage summary."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from app.auth.dependencies import Principal
from app.core.pagination import PageRequest, RawPage
from app.crm.repository import OverviewRepository, money, split_tags
from app.crm.schemas import OverviewRow, StageSummary, Summary
from app.models.enums import STAGE_ORDER, CustomerStage
from app.partners.schemas import PartnerFilter
from app.users.schemas import UserRef


def row_of(row: Any) -> OverviewRow:
    """An overview row from a result row, without validation: the database is the source."""
    return OverviewRow.model_construct(
        number=row.number,
        name=row.name,
        country=row.country,
        credit_limit=row.credit_limit,
        debtor_balance=row.debtor_balance,
        debtor_balance_synced_at=row.debtor_balance_synced_at,
        credit_limit_exceeded=row.credit_limit_exceeded,
        uninvoiced_total=row.uninvoiced_total,
        tags=split_tags(row.tags),
        latest_sales_delivery_date=row.latest_sales_delivery_date,
        owner=UserRef.model_construct(id=row.owner_id, name=row.owner_name)
        if row.owner_id
        else None,
        customer_stage=CustomerStage(row.customer_stage),
    )


def overview(
    *, session: Session, principal: Principal, filters: PartnerFilter, page: PageRequest
) -> RawPage[Any]:
    return OverviewRepository(session, principal.company_id).page(filters, page)


def all_rows(
    *, session: Session, principal: Principal, filters: PartnerFilter, sort: str | None
) -> Iterator[Any]:
    return OverviewRepository(session, principal.company_id).all_rows(filters, sort)


def summary(*, session: Session, principal: Principal, filters: PartnerFilter) -> Summary:
    found = {
        stage: (count, money(uninvoiced), money(balance), int(exceeded))
        for stage, count, uninvoiced, balance, exceeded in OverviewRepository(
            session, principal.company_id
        ).summary(filters)
    }
    zero = Decimal("0.00")
    stages = [
        StageSummary(
            customer_stage=stage,
            partners=found.get(stage.value, (0, zero, zero, 0))[0],
            uninvoiced_total=found.get(stage.value, (0, zero, zero, 0))[1],
            debtor_balance=found.get(stage.value, (0, zero, zero, 0))[2],
            credit_limit_exceeded=found.get(stage.value, (0, zero, zero, 0))[3],
        )
        for stage in STAGE_ORDER
    ]
    total = StageSummary(
        customer_stage=None,
        partners=sum(s.partners for s in stages),
        uninvoiced_total=sum((s.uninvoiced_total for s in stages), zero),
        debtor_balance=sum((s.debtor_balance for s in stages), zero),
        credit_limit_exceeded=sum(s.credit_limit_exceeded for s in stages),
    )
    return Summary(stages=stages, total=total)
