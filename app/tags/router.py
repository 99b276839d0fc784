"""Tag routes."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request, Response

from app.auth.dependencies import Reader, SessionDep, Writer
from app.core.answer import Answer
from app.core.errors import problem_responses
from app.core.http import cached_json_response, links
from app.core.pagination import Page, PageRequest, list_params, page_response
from app.core.types import TAG_NAME_PATTERN
from app.idempotency.dependencies import Keyed
from app.tags import service
from app.tags.repository import TAG_SORTING
from app.tags.schemas import TagCreate, TagRead

router = APIRouter(prefix="/api/v1/tags", tags=["tags"])

TagPath = Annotated[
    str,
    Path(min_length=1, max_length=50, pattern=TAG_NAME_PATTERN, description="Tag name, any case"),
]


TagList = Annotated[PageRequest[None], Depends(list_params(TAG_SORTING))]


@router.get(
    "",
    response_model=Page[TagRead],
    operation_id="list_tags",
    responses=problem_responses(401, 403, 422),
)
def list_tags(principal: Reader, session: SessionDep, page: TagList) -> Response:
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
def create_tag(principal: Writer, session: SessionDep, body: TagCreate, keyed: Keyed) -> Response:
    return keyed.answer(
        body,
        render=lambda tag: Answer.json(
            TagRead.model_validate(tag),
            status=201,
            location=f"{router.prefix}/{quote(tag.name, safe='')}",
            etag=service.etag_of(tag),
        ),
        execute=lambda idem: service.create(
            session=session, principal=principal, data=body, idempotency=idem
        ),
    )


@router.get(
    "/{name}",
    response_model=TagRead,
    operation_id="get_tag",
    responses=problem_responses(304, 401, 403, 404, 422),
)
def get_tag(request: Request, principal: Reader, session: SessionDep, name: TagPath) -> Response:
    tag = service.get(session=session, principal=principal, name=name)
    return cached_json_response(request, TagRead.model_validate(tag), service.etag_of(tag))


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
