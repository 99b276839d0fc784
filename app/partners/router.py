"""Partner routes: parse, call one service function, answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.convertors import Convertor, register_url_convertor

from app.auth.dependencies import Admin, Reader, ReadSessionDep, SessionDep, Writer, get_database
from app.core.answer import Answer
from app.core.config import Settings
from app.core.errors import problem_responses
from app.core.http import cached_json_response, json_response, links
from app.core.pagination import Page, PageRequest, list_params, page_response, sort_enum
from app.core.types import StrictBool
from app.db.session import Database
from app.idempotency.dependencies import Keyed
from app.partners import bulk, dormancy, imports, service
from app.partners.filters import Filters, partner_filters
from app.partners.repository import PARTNER_SORTING, STAGE_HISTORY_SORTING
from app.partners.schemas import (
    BulkStageRequest,
    BulkStageResult,
    DormancyRequest,
    ImportResult,
    PartnerCreate,
    PartnerFilter,
    PartnerRead,
    PartnerUpdate,
    StageChangeRead,
)

router = APIRouter(prefix="/api/v1/partners", tags=["partners"])


class PartnerNumberConvertor(Convertor[str]):
    """A partner number's path segment: any segment but the collection's own names (``import``,
    ``import-template.csv|xlsx``), so another method on those answers 405 instead of a 422
    about a number. The number itself is validated by FastAPI (422 naming ``path.number``)."""

    regex = r"(?!import(?:-template\.(?:csv|xlsx))?(?:/|$))[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("partner_number", PartnerNumberConvertor())

PartnerSort = sort_enum("PartnerSort", PARTNER_SORTING)
PartnerNumber = Annotated[int, Path(ge=1, le=2_147_483_647, description="The partner number")]
IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", max_length=1000, description="ETag from a previous read"),
]


# Sort, filters and paging of each list, resolved with the cursor: one dependency per list.
PartnerList = Annotated[
    PageRequest[PartnerFilter],
    Depends(
        list_params(
            PARTNER_SORTING,
            sort=PartnerSort,
            sort_description="Field; prefix - to reverse",
            filters=partner_filters,
        )
    ),
]
StageHistoryList = Annotated[PageRequest[None], Depends(list_params(STAGE_HISTORY_SORTING))]


@router.get(
    "",
    response_model=Page[PartnerRead],
    operation_id="list_partners",
    responses=problem_responses(401, 403, 422),
)
def list_partners(principal: Reader, session: ReadSessionDep, page: PartnerList) -> Response:
    result = service.list_(session=session, principal=principal, filters=page.filters, page=page)
    return page_response(result, [PartnerRead.of(p) for p in result.rows])


@router.post(
    "",
    status_code=201,
    response_model=PartnerRead,
    operation_id="create_partner",
    responses={
        201: links(
            "number",
            "number",
            "get_partner",
            "update_partner",
            "delete_partner",
            "list_partner_stage_history",
        ),
        **problem_responses(401, 403, 409, 413, 422),
    },
)
def create_partner(
    principal: Writer, session: SessionDep, body: PartnerCreate, keyed: Keyed
) -> Response:
    return keyed.answer(
        body,
        render=lambda p: Answer.json(
            PartnerRead.of(p),
            status=201,
            location=f"{router.prefix}/{p.number}",
            etag=service.etag_of(p),
        ),
        execute=lambda idem: service.create(
            session=session, principal=principal, data=body, idempotency=idem
        ),
    )


CSV_CONTENT = {"text/csv": {"schema": {"type": "string"}}}
XLSX_CONTENT = {
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
        "schema": {"type": "string", "format": "binary"}
    }
}


@router.get(
    ".csv",
    operation_id="export_partners_csv",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every matching partner, by number, in the columns of the import "
            "(`owner` as the user's email, `tags` `;`-separated, text a spreadsheet would take "
            "for a formula prefixed with `'`): a file that imports back unchanged",
            "content": CSV_CONTENT,
        },
        **problem_responses(401, 403, 422),
    },
)
def export_partners_csv(
    principal: Reader, filters: Filters, db: Annotated[Database, Depends(get_database)]
) -> StreamingResponse:
    def body() -> Iterator[bytes]:
        with db.reader() as session:
            yield from imports.export_csv(session=session, principal=principal, filters=filters)

    stamp = datetime.now(UTC).strftime("%Y%m%d")
    filename = f"partners-{principal.company.slug}-{stamp}.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/import-template.csv",
    operation_id="get_partner_import_template_csv",
    response_class=Response,
    responses={
        200: {"description": "The import's header row and one example row", "content": CSV_CONTENT},
        **problem_responses(401, 403, 422),
    },
)
def get_partner_import_template_csv(principal: Reader) -> Response:
    return Response(
        imports.template("csv"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="partner-import-template.csv"'},
    )


@router.get(
    "/import-template.xlsx",
    operation_id="get_partner_import_template_xlsx",
    response_class=Response,
    responses={
        200: {
            "description": "The import's header row and one example row, every column text",
            "content": XLSX_CONTENT,
        },
        **problem_responses(401, 403, 422),
    },
)
def get_partner_import_template_xlsx(principal: Reader) -> Response:
    return Response(
        imports.template("xlsx"),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": 'attachment; filename="partner-import-template.xlsx"'},
    )


async def raw_body(request: Request) -> bytes:
    """The request body as sent (the request middleware has read it, within its limit)."""
    return await request.body()


@router.post(
    "/import",
    response_model=ImportResult,
    operation_id="import_partners",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The file: CSV (UTF-8, a byte-order mark allowed) or XLSX (its "
            "first sheet); row 1 names the columns",
            "content": {**CSV_CONTENT, **XLSX_CONTENT},
        }
    },
    responses=problem_responses(401, 403, 409, 413, 415, 422),
)
def import_partners(
    request: Request,
    principal: Writer,
    keyed: Keyed,
    body: Annotated[bytes, Depends(raw_body)],
    dry_run: Annotated[
        StrictBool, Query(description="Check everything and answer the counts; store nothing")
    ] = False,
    create_tags: Annotated[
        StrictBool, Query(description="Create the tags the file names that do not exist yet")
    ] = False,
) -> Response:
    """Create and update partners from a spreadsheet, all or nothing.

    Columns are the partner fields by their JSON names (`GET /partners/import-template.csv`).
    A row with a `number` updates that partner, one without creates a partner; an empty cell
    leaves the field as it is. `owner` is a user's email, `tags` are `;`-separated, `address`,
    `postal_code` and `city` are the primary location. Any bad row stores nothing: 422
    `import_invalid` with `errors[]` naming each `row` (as a spreadsheet numbers it: the header
    is row 1) and `column` (null for the whole row), the first 1,000 listed and
    `error_count` counting them all. Stage changes are in the stage history (`reason:
    import`). More than the server's row limit (50,000 unless configured otherwise): 422
    `too_many_rows`; a larger file than its byte limit (20 MB): 413.
    """
    settings: Settings = request.app.state.settings
    media_type = imports.media_type_of(request.headers.get("content-type"))
    return keyed.answer(
        body,
        params={
            "media_type": media_type,
            "dry_run": str(dry_run).lower(),
            "create_tags": str(create_tags).lower(),
        },
        render=Answer.json,
        execute=lambda idem: imports.import_partners(
            session=keyed.session,
            principal=principal,
            data=body,
            media_type=media_type,
            dry_run=dry_run,
            create_tags=create_tags,
            max_rows=settings.import_max_rows,
            max_bytes=settings.import_max_bytes,
            idempotency=idem,
        ),
    )


@router.get(
    "/{number:partner_number}",
    response_model=PartnerRead,
    operation_id="get_partner",
    responses=problem_responses(304, 401, 403, 404, 422),
)
def get_partner(
    request: Request, principal: Reader, session: SessionDep, number: PartnerNumber
) -> Response:
    partner = service.get(session=session, principal=principal, number=number)
    return cached_json_response(request, PartnerRead.of(partner), service.etag_of(partner))


@router.patch(
    "/{number:partner_number}",
    response_model=PartnerRead,
    operation_id="update_partner",
    responses=problem_responses(401, 403, 404, 409, 412, 413, 422),
)
def update_partner(
    principal: Writer,
    session: SessionDep,
    number: PartnerNumber,
    body: PartnerUpdate,
    if_match: IfMatch = None,
) -> Response:
    partner = service.update(
        session=session, principal=principal, number=number, data=body, if_match=if_match
    )
    return json_response(PartnerRead.of(partner), etag=service.etag_of(partner))


@router.delete(
    "/{number:partner_number}",
    status_code=204,
    response_class=Response,
    operation_id="delete_partner",
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
def delete_partner(
    principal: Writer, session: SessionDep, number: PartnerNumber, if_match: IfMatch = None
) -> Response:
    service.delete(session=session, principal=principal, number=number, if_match=if_match)
    return Response(status_code=204)


@router.get(
    "/{number:partner_number}/stage-history",
    response_model=Page[StageChangeRead],
    operation_id="list_partner_stage_history",
    responses=problem_responses(401, 403, 404, 422),
)
def list_partner_stage_history(
    principal: Reader, session: SessionDep, number: PartnerNumber, page: StageHistoryList
) -> Response:
    result = service.stage_history(session=session, principal=principal, number=number, page=page)
    return page_response(result, [StageChangeRead.model_validate(c) for c in result.rows])


@router.post(
    "/bulk/customer-stage",
    response_model=BulkStageResult,
    operation_id="bulk_set_customer_stage",
    tags=["partners"],
    responses={
        **problem_responses(401, 403, 409, 413, 422),
        503: {
            "description": "A selected partner stayed locked by another change longer than "
            "the lock timeout (`lock_timeout`), or the database is unavailable: nothing was "
            "changed; retry after `Retry-After` seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        },
    },
)
def bulk_set_customer_stage(
    request: Request,
    principal: Writer,
    session: SessionDep,
    body: BulkStageRequest,
    keyed: Keyed,
) -> Response:
    """Set one customer stage on partners chosen by number (1-1000) or by the list filters.

    All or nothing: one unknown number changes nothing (422 `partners_not_found`, with
    `missing_numbers`); a selection larger than the server's bulk limit (100,000 unless
    configured otherwise) changes nothing (422 `too_many_partners`, with `matched` and
    `max_partners`). Each real change is written to the stage history (`reason: bulk`); the
    answer's `changes` lists at most the first 1,000 (`changes_truncated` says when there were
    more), while `matched`, `changed` and `unchanged` always count them all.
    """
    settings: Settings = request.app.state.settings
    return keyed.answer(
        body,
        render=Answer.json,
        execute=lambda idem: bulk.set_stage(
            session=session,
            principal=principal,
            data=body,
            max_partners=settings.bulk_max_partners,
            idempotency=idem,
        ),
    )


@router.post(
    "/bulk/apply-dormancy",
    response_model=BulkStageResult,
    operation_id="apply_dormancy",
    tags=["partners"],
    responses={
        **problem_responses(401, 403, 409, 413, 422),
        503: {
            "description": "A dormant partner stayed locked by another change longer than the "
            "lock timeout, or the database is unavailable: nothing was changed; retry after "
            "`Retry-After` seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        },
    },
)
def apply_dormancy(
    principal: Admin, session: SessionDep, body: DormancyRequest, keyed: Keyed
) -> Response:
    """Apply the company's dormancy rule now (it also runs once a day on its own).

    Every `active` customer whose most recent non-cancelled sales order is dated more than
    the company's `dormancy_days` ago (counted in UTC days) becomes `inactive`, all or
    nothing, with stage history `reason: dormant` and `changed_by: null`. A customer with no
    orders is not dormant. 409 `dormancy_off` when the company has no `dormancy_days`. The
    answer is the bulk answer (`customer_stage: inactive`).
    """
    return keyed.answer(
        body,
        render=Answer.json,
        execute=lambda idem: dormancy.apply(
            session=session,
            company_id=principal.company_id,
            dry_run=body.dry_run,
            idempotency=idem,
        ),
    )
