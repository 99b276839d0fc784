"""The CRM overview, its CSV and XLSX exports, the per-stage summary, and how a saved view
applies to them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any

from sqlalchemy.orm import Session

from app.auth.dependencies import Principal
from app.core.errors import ValidationFailed
from app.core.pagination import PageRequest, RawPage
from app.crm import xlsx
from app.crm.repository import OverviewRepository, money
from app.crm.schemas import StageSummary, Summary
from app.models.enums import STAGE_ORDER, CustomerStage
from app.partners.overview import columns_named
from app.partners.schemas import PartnerFilter
from app.views import service as views

__all__ = [
    "Applied",
    "all_rows",
    "apply_view",
    "overview",
    "summary",
    "view_columns",
    "xlsx_file",
]


@dataclass(frozen=True)
class Applied:
    """What a request of the overview asks for once its saved view (if any) is applied."""

    filters: PartnerFilter
    sort: str | None
    columns: tuple[str, ...] | None  # None: every column


def apply_view(
    *,
    session: Session,
    principal: Principal,
    view_id: uuid.UUID | None,
    filters: PartnerFilter,
    sort: str | None,
) -> Applied:
    """The view's filters, sort and columns, with the explicit query parameters over them
    parameter by parameter (``filters``: those given are set, the rest None; ``sort``: None
    when not given). 404 ``view_not_found`` for a view the caller cannot see."""
    if view_id is None:
        return Applied(filters, sort, None)
    found = views.get(session=session, principal=principal, view_id=view_id)
    explicit = {name: value for name, value in filters if value is not None}
    merged = views.filters_of(found.view).model_copy(update=explicit)
    return Applied(
        merged,
        sort if sort is not None else views.sort_of(found.view),
        views.columns_of(found.view),
    )


def view_columns(
    *, session: Session, principal: Principal, view_id: uuid.UUID
) -> tuple[str, ...] | None:
    """The columns of a view the caller can see (a cursor sent alone names its view)."""
    return views.columns_of(views.get(session=session, principal=principal, view_id=view_id).view)


def overview(
    *,
    session: Session,
    principal: Principal,
    filters: PartnerFilter,
    page: PageRequest,
    columns: Sequence[str] | None = None,
) -> RawPage[str]:
    """One page of the overview, each row as its JSON text (these ``columns``; None: all)."""
    return OverviewRepository(session, principal.company_id).page(filters, page, columns)


def all_rows(
    *, session: Session, principal: Principal, filters: PartnerFilter, sort: str | None
) -> Iterator[Any]:
    return OverviewRepository(session, principal.company_id).all_rows(filters, sort)


def xlsx_file(
    *,
    session: Session,
    principal: Principal,
    filters: PartnerFilter,
    sort: str | None,
    columns: tuple[str, ...] | None,
) -> IO[bytes]:
    """The matching rows as a workbook in a temporary file (the caller streams and closes it);
    422 ``too_many_rows`` past what a worksheet holds."""
    rows = OverviewRepository(session, principal.company_id).all_rows(filters, sort)
    try:
        return xlsx.build_xlsx(rows, columns=columns_named(columns))
    except xlsx.TooManyRows:
        detail = (
            f"More than {xlsx.MAX_ROWS} rows match: more than a worksheet holds. Narrow the "
            "filters, or export CSV."
        )
        raise ValidationFailed(detail, code="too_many_rows") from None


def summary(*, session: Session, principal: Principal, filters: PartnerFilter) -> Summary:
    # The measures, in StageSummary's order (after customer_stage) and in the query's.
    measures = [name for name in StageSummary.model_fields if name != "customer_stage"]
    zero = Decimal("0.00")

    def row(stage: CustomerStage | None, values: Sequence[Any]) -> StageSummary:
        return StageSummary(customer_stage=stage, **dict(zip(measures, values, strict=True)))

    found = {
        stage: (count, money(uninvoiced), money(balance), int(exceeded))
        for stage, count, uninvoiced, balance, exceeded in OverviewRepository(
            session, principal.company_id
        ).summary(filters)
    }
    stages = [row(stage, found.get(stage.value, (0, zero, zero, 0))) for stage in STAGE_ORDER]
    total = row(None, [sum((getattr(s, m) for s in stages), start=0) for m in measures])
    return Summary(stages=stages, total=total)
