"""Saved views of the CRM overview: `GET|POST /api/v1/crm/views`,
`GET|PATCH|DELETE /api/v1/crm/views/{view_id}`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response

from app.auth.dependencies import Reader, SessionDep, Writer
from app.core.errors import problem_responses
from app.core.http import cached_json_response, json_response, links
from app.core.pagination import Page, PageRequest, list_params, page_response, sort_enum
from app.views import service
from app.views.repository import VIEW_SORTING
from app.views.schemas import ViewCreate, ViewRead, ViewUpdate

router = APIRouter(prefix="/api/v1/crm/views", tags=["crm"])

ViewId = Annotated[uuid.UUID, Path(description="The view's id")]
IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", max_length=1000, description="ETag from a previous read"),
]
ViewSort = sort_enum("ViewSort", VIEW_SORTING)
ViewList = Annotated[
    PageRequest[None],
    Depends(
        list_params(VIEW_SORTING, sort=ViewSort, sort_description="Field; prefix - to reverse")
    ),
]


@router.get(
    "",
    response_model=Page[ViewRead],
    operation_id="list_crm_views",
    responses=problem_responses(401, 403, 409, 422),
)
def list_crm_views(principal: Reader, session: SessionDep, page: ViewList) -> Response:
    """The views the caller can see: their own, and those shared with the company."""
    result = service.list_(session=session, principal=principal, page=page)
    return page_response(result, [service.read_of(found) for found in result.rows])


@router.post(
    "",
    status_code=201,
    response_model=ViewRead,
    operation_id="create_crm_view",
    responses={
        201: links("view_id", "id", "get_crm_view", "update_crm_view", "delete_crm_view"),
        **problem_responses(401, 403, 409, 413, 422),
    },
)
def create_crm_view(principal: Writer, session: SessionDep, body: ViewCreate) -> Response:
    """Save a view of the overview, owned by the caller. Apply it with
    `GET /api/v1/crm/overview?view={id}` (and the CSV and XLSX exports)."""
    found = service.create(session=session, principal=principal, data=body)
    return json_response(
        service.read_of(found),
        status_code=201,
        headers={"Location": f"{router.prefix}/{found.view.id}"},
        etag=service.etag_of(found),
    )


@router.get(
    "/{view_id}",
    response_model=ViewRead,
    operation_id="get_crm_view",
    responses=problem_responses(304, 401, 403, 404, 409, 422),
)
def get_crm_view(
    request: Request, principal: Reader, session: SessionDep, view_id: ViewId
) -> Response:
    found = service.get(session=session, principal=principal, view_id=view_id)
    return cached_json_response(request, service.read_of(found), service.etag_of(found))


@router.patch(
    "/{view_id}",
    response_model=ViewRead,
    operation_id="update_crm_view",
    responses=problem_responses(401, 403, 404, 409, 412, 413, 422),
)
def update_crm_view(
    principal: Writer,
    session: SessionDep,
    view_id: ViewId,
    body: ViewUpdate,
    if_match: IfMatch = None,
) -> Response:
    """By its creator, or with an admin token (403 `not_view_owner` otherwise)."""
    found = service.update(
        session=session, principal=principal, view_id=view_id, data=body, if_match=if_match
    )
    return json_response(service.read_of(found), etag=service.etag_of(found))


@router.delete(
    "/{view_id}",
    status_code=204,
    response_class=Response,
    operation_id="delete_crm_view",
    responses=problem_responses(401, 403, 404, 412, 422),
)
def delete_crm_view(
    principal: Writer, session: SessionDep, view_id: ViewId, if_match: IfMatch = None
) -> Response:
    """By its creator, or with an admin token (403 `not_view_owner` otherwise)."""
    service.delete(session=session, principal=principal, view_id=view_id, if_match=if_match)
    return Response(status_code=204)
