"""The CRM overview routes: the page, the CSV export and the summary."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse

from app.auth.dependencies import Reader, SessionDep, get_database
from app.core.errors import problem_responses
from app.core.http import json_response
from app.core.pagination import Page, PageRequest, list_params, page_response, sort_enum
from app.core.types import StrictBool
from app.crm import service
from app.crm.csv import stream_csv
from app.crm.repository import OVERVIEW_SORTING
from app.crm.schemas import Summary
from app.db.session import Database
from app.partners.filters import Filters, partner_filters
from app.partners.overview import OverviewRow
from app.partners.schemas import PartnerFilter

router = APIRouter(prefix="/api/v1/crm", tags=["crm"])

OverviewSort = sort_enum("OverviewSort", OVERVIEW_SORTING)
SORT_DESCRIPTION = "Column; prefix - to reverse. Nulls last, ties by number."
SortParam = Annotated[OverviewSort | None, Query(description=SORT_DESCRIPTION)]  # type: ignore[valid-type]
# Sort, filters and paging of the overview, resolved with the cursor.
OverviewList = Annotated[
    PageRequest[PartnerFilter],
    Depends(
        list_params(
            OVERVIEW_SORTING,
            sort=OverviewSort,
            sort_description=SORT_DESCRIPTION,
            filters=partner_filters,
        )
    ),
]


@router.get(
    "/overview",
    response_model=Page[OverviewRow],
    operation_id="get_crm_overview",
    responses=problem_responses(401, 403, 422),
)
def get_crm_overview(principal: Reader, session: SessionDep, page: OverviewList) -> Response:
    """One row per partner that has a customer stage."""
    result = service.overview(session=session, principal=principal, filters=page.filters, page=page)
    return page_response(result, [service.row_of(r) for r in result.rows])


@router.get(
    "/overview.csv",
    operation_id="export_crm_overview_csv",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every matching row; the header line holds the JSON field names",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **problem_responses(401, 403, 422),
    },
)
def export_crm_overview_csv(
    principal: Reader,
    filters: Filters,
    db: Annotated[Database, Depends(get_database)],
    sort: SortParam = None,
    bom: Annotated[
        StrictBool, Query(description="Start with a UTF-8 byte-order mark, for spreadsheets")
    ] = True,
) -> StreamingResponse:
    sort_value: str | None = sort.value if sort else None  # type: ignore[attr-defined]
    # Fail on a bad sort now, as a 422, rather than in the middle of the stream.
    OVERVIEW_SORTING.parse(sort_value)

    def body() -> Iterator[bytes]:
        with db.session(write=False) as session:
            rows = service.all_rows(
                session=session, principal=principal, filters=filters, sort=sort_value
            )
            yield from stream_csv(rows, bom=bom)

    stamp = datetime.now(UTC).strftime("%Y%m%d")
    filename = f"crm-overview-{principal.company.slug}-{stamp}.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/summary",
    response_model=Summary,
    operation_id="get_crm_summary",
    responses=problem_responses(401, 403, 422),
)
def get_crm_summary(principal: Reader, session: SessionDep, filters: Filters) -> Response:
    """Per stage: partners, uninvoiced and debtor-balance sums, and how many are over limit."""
    return json_response(service.summary(session=session, principal=principal, filters=filters))
