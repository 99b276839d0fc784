"""Tag routes."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request, Response

from app.auth.dependencies import Reader, SessionDep, Writer
from app.core.errors import problem_responses
from app.core.http import cached_json_response, json_response, links, location
from app.core.pagination import Page, PageRequest, page_params, page_response
from app.tags import service
from app.tags.schemas import TAG_NAME_PATTERN, TagCreate, TagRead

router = APIRouter(prefix="/api/v1/tags", tags=["tags"])

TagPath = Annotated[
    str,
    Path(min_length=1, max_length=50, pattern=TAG_NAME_PATTERN, description="Tag name, any case"),
]


@router.get(
    "",
    response_model=Page[TagRead],
    operation_id="list_tags",
    responses=problem_responses(401, 403, 422),
)
def list_tags(
    principal: Reader, session: SessionDep, page: Annotated[PageRequest, Depends(page_params)]
) -> Response:
    result = service.list_(session=session, principal=principal, page=page)
    return page_response(result, [TagRead.model_validate(t) for t in result.rows])


@router.post(
    "",
    status_code=201,
    response_model=TagRead,
    operation_id="create_tag",
    responses={
        201: links("name", "name", "get_tag", "delete_tag"),
        **problem_responses(401, 403, 409, 413, 422),
    },
)
def create_tag(principal: Writer, session: SessionDep, body: TagCreate) -> Response:
    tag = service.create(session=session, principal=principal, data=body)
    return json_response(
        TagRead.model_validate(tag),
        status_code=201,
        headers=location(f"{router.prefix}/{quote(tag.name, safe='')}"),
        etag=True,
    )


@router.get(
    "/{name}",
    response_model=TagRead,
    operation_id="get_tag",
    responses=problem_responses(304, 401, 403, 404, 422),
)
def get_tag(request: Request, principal: Reader, session: SessionDep, name: TagPath) -> Response:
    tag = service.get(session=session, principal=principal, name=name)
    return cached_json_response(request, TagRead.model_validate(tag))


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    operation_id="delete_tag",
    responses=problem_responses(401, 403, 404, 422),
)
def delete_tag(principal: Writer, session: SessionDep, name: TagPath) -> Response:
    service.delete(session=session, principal=principal, name=name)
    return Response(status_code=204)
