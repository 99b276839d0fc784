"""Partner routes: parse, call one service function, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response

from app.auth.dependencies import Admin, Reader, SessionDep, Writer
from app.core.answer import Answer
from app.core.config import Settings
from app.core.errors import problem_responses
from app.core.http import cached_json_response, json_response, links
from app.core.pagination import Page, PageRequest, list_params, page_response, sort_enum
from app.idempotency.dependencies import Keyed
from app.partners import bulk, dormancy, service
from app.partners.filters import partner_filters
from app.partners.repository import PARTNER_SORTING, STAGE_HISTORY_SORTING
from app.partners.schemas import (
    BulkStageRequest,
    BulkStageResult,
    DormancyRequest,
    PartnerCreate,
    PartnerFilter,
    PartnerRead,
    PartnerUpdate,
    StageChangeRead,
)

router = APIRouter(prefix="/api/v1/partners", tags=["partners"])

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
def list_partners(principal: Reader, session: SessionDep, page: PartnerList) -> Response:
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


@router.get(
    "/{number}",
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
    "/{number}",
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
    "/{number}",
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
    "/{number}/stage-history",
    response_model=Page[StageChangeRead],
    operation_id="list_partner_stage_history",
    responses=problem_responses(401, 403, 404, 422),
)
def list_partner_stage_history(
    principal: Reader, session: SessionDep, number: PartnerNumber, page: StageHistoryList
) -> Response:
    result = service.stage_history(session=session, principal=principal, number=number, page=page)
    return page_response(result, [StageChangeRead.of(c) for c in result.rows])


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
