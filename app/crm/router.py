"""The CRM overview routes: the page, the CSV and XLSX exports and the summary; each page and
export can apply a saved view (``view``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.auth.dependencies import Principal, Reader, ReadSessionDep, SessionDep
from app.core.errors import problem_responses
from app.core.http import json_response
from app.core.pagination import (
    Page,
    PageParams,
    PageRequest,
    list_params,
    page_json_response,
    page_params,
)
from app.core.query import query_model_dependency
from app.core.types import StrictBool
from app.crm import service, xlsx
from app.crm.csv import stream_csv
from app.crm.repository import OVERVIEW_SORTING
from app.crm.schemas import OverviewFilter, Summary
from app.partners.filters import Filters
from app.partners.overview import OverviewRow, OverviewSort, columns_named

router = APIRouter(prefix="/api/v1/crm", tags=["crm"])

SORT_DESCRIPTION = "Column; prefix - to reverse. Nulls last, ties by number."
SortParam = Annotated[OverviewSort | None, Query(description=SORT_DESCRIPTION)]  # type: ignore[valid-type]
ViewParam = Annotated[
    uuid.UUID | None,
    Query(
        description=(
            "A saved view's id (`/api/v1/crm/views`): its filters and sort apply, and its "
            "`columns` pick the fields. Explicit filter parameters and `sort` replace the "
            "view's, one by one. A view the caller cannot see: 404 `view_not_found`."
        )
    ),
]

# The overview's list as the project's one paging mechanism resolves it: sort, filters and
# cursor. The filters it carries in its cursors are the applied ones (the view's with the
# explicit parameters over them) plus the view's id, so a cursor sent alone continues the
# same rows in the same columns, and one sent with parameters that now mean other rows (the
# view changed) is 422 ``invalid_cursor``. Called as a function by ``overview_list``, after
# the view is applied; its ``filters`` dependency is only the cursor's reader.
_resolve_page = list_params(
    OVERVIEW_SORTING,
    sort=OverviewSort,
    sort_description=SORT_DESCRIPTION,
    filters=query_model_dependency(OverviewFilter, "overview_filters"),
)


@dataclass(frozen=True)
class OverviewList:
    page: PageRequest[OverviewFilter]
    columns: tuple[str, ...] | None  # None: every column


async def applied_view(
    principal: Reader,
    session: SessionDep,
    filters: Filters,
    sort: SortParam = None,
    view: ViewParam = None,
) -> service.Applied:
    """The filters, sort and columns a request of the overview or its exports asks for, its
    saved view (``view``) applied under the explicit parameters. Only a named view is read
    from the database (in the thread pool); without one this runs on the event loop."""
    chosen = sort.value if sort else None  # type: ignore[attr-defined]
    if view is None:
        return service.Applied(filters, chosen, None)
    return await run_in_threadpool(
        service.apply_view,
        session=session,
        principal=principal,
        view_id=view,
        filters=filters,
        sort=chosen,
    )


Applied = Annotated[service.Applied, Depends(applied_view)]


async def overview_list(
    principal: Reader,
    session: SessionDep,
    applied: Applied,
    page: Annotated[PageParams, Depends(page_params)],
    view: ViewParam = None,
) -> OverviewList:
    """Sort, filters, columns and paging of one page of the overview."""
    carried = OverviewFilter.model_construct(**dict(applied.filters), view=view)
    request = await _resolve_page(
        sort=OverviewSort(applied.sort) if applied.sort else None,
        filters=carried,
        page=page,
    )
    columns = applied.columns
    cursor_view = request.filters.view if request.filters is not None else None
    if view is None and cursor_view is not None:  # a cursor sent alone, made with a view
        columns = await run_in_threadpool(
            service.view_columns, session=session, principal=principal, view_id=cursor_view
        )
    return OverviewList(request, columns)


@router.get(
    "/overview",
    response_model=Page[OverviewRow],
    operation_id="get_crm_overview",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def get_crm_overview(
    principal: Reader,
    session: ReadSessionDep,
    query: Annotated[OverviewList, Depends(overview_list)],
) -> Response:
    """One row per partner that has a customer stage."""
    page = query.page
    result = service.overview(
        session=session, principal=principal, filters=page.filters, page=page, columns=query.columns
    )
    return page_json_response(result)


def _export_name(principal: Principal, extension: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return f"crm-overview-{principal.company.slug}-{stamp}.{extension}"


@router.get(
    "/overview.csv",
    operation_id="export_crm_overview_csv",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every matching row; the header line holds the JSON field names",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **problem_responses(401, 403, 404, 409, 422),
    },
)
def export_crm_overview_csv(
    principal: Reader,
    applied: Applied,
    read_session: ReadSessionDep,
    bom: Annotated[
        StrictBool, Query(description="Start with a UTF-8 byte-order mark, for spreadsheets")
    ] = True,
) -> StreamingResponse:
    # Fail on a bad sort now, as a 422, rather than in the middle of the stream.
    OVERVIEW_SORTING.parse(applied.sort)
    columns = columns_named(applied.columns)

    def body() -> Iterator[bytes]:
        # The request's read session stays open while the body streams: a request's
        # session closes after its response is sent.
        rows = service.all_rows(
            session=read_session,
            principal=principal,
            filters=applied.filters,
            sort=applied.sort,
        )
        yield from stream_csv(rows, bom=bom, columns=columns)

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_export_name(principal, "csv")}"'},
    )


@router.get(
    "/overview.xlsx",
    operation_id="export_crm_overview_xlsx",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": (
                "Every matching row as a spreadsheet: one sheet, the header row (the JSON field "
                "names) frozen and filterable; numbers and money as numbers (two decimals), "
                "dates and datetimes (UTC) as dates, booleans as booleans, `tags` joined "
                "with `;`, `owner` as the owner's name"
            ),
            "content": {xlsx.MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        },
        **problem_responses(401, 403, 404, 409, 422),
    },
)
def export_crm_overview_xlsx(
    principal: Reader, applied: Applied, read_session: ReadSessionDep
) -> StreamingResponse:
    """The same rows, filters, sort and saved views as the CSV."""
    file = service.xlsx_file(
        session=read_session,
        principal=principal,
        filters=applied.filters,
        sort=applied.sort,
        columns=applied.columns,
    )
    name = _export_name(principal, "xlsx")
    return StreamingResponse(
        xlsx.chunks(file),
        media_type=xlsx.MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(xlsx.size_of(file)),
        },
    )


@router.get(
    "/summary",
    response_model=Summary,
    operation_id="get_crm_summary",
    responses=problem_responses(401, 403, 422),
)
def get_crm_summary(principal: Reader, session: ReadSessionDep, filters: Filters) -> Response:
    """Per stage: partners, uninvoiced and debtor-balance sums, and how many are over limit."""
    return json_response(service.summary(session=session, principal=principal, filters=filters))
