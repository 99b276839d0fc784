"""The CRM overview, its CSV export and the per-stage summary."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from app.auth.dependencies import Principal
from app.core.pagination import PageRequest, RawPage
from app.crm.repository import OverviewRepository, money
from app.crm.schemas import StageSummary, Summary
from app.models.enums import STAGE_ORDER
from app.partners.overview import row_of
from app.partners.schemas import PartnerFilter

__all__ = ["all_rows", "overview", "row_of", "summary"]


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
