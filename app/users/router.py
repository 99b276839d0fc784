"""User routes."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.auth.dependencies import Admin, Reader, SessionDep
from app.core.answer import Answer
from app.core.errors import problem_responses
from app.core.http import cached_json_response, links
from app.core.pagination import Page, PageRequest, list_params, page_response
from app.idempotency.dependencies import Keyed
from app.users import service
from app.users.repository import USER_SORTING
from app.users.schemas import UserCreate, UserRead

router = APIRouter(prefix="/api/v1/users", tags=["users"])


UserList = Annotated[PageRequest[None], Depends(list_params(USER_SORTING))]


@router.get(
    "",
    response_model=Page[UserRead],
    operation_id="list_users",
    responses=problem_responses(401, 403, 422),
)
def list_users(principal: Reader, session: SessionDep, page: UserList) -> Response:
    result = service.list_(session=session, company_id=principal.company_id, page=page)
    return page_response(result, [UserRead.model_validate(u) for u in result.rows])


@router.post(
    "",
    status_code=201,
    response_model=UserRead,
    operation_id="create_user",
    responses={
        201: links("user_id", "id", "get_user"),
        **problem_responses(401, 403, 409, 413, 422),
    },
)
def create_user(principal: Admin, session: SessionDep, body: UserCreate, keyed: Keyed) -> Response:
    return keyed.answer(
        body,
        render=lambda user: Answer.json(
            UserRead.model_validate(user),
            status=201,
            location=f"{router.prefix}/{user.id}",
            etag=service.etag_of(user),
        ),
        execute=lambda idem: service.create(
            session=session, company_id=principal.company_id, data=body, idempotency=idem
        ),
    )


@router.get(
    "/{user_id}",
    response_model=UserRead,
    operation_id="get_user",
    responses=problem_responses(304, 401, 403, 404, 422),
)
def get_user(
    request: Request, principal: Reader, session: SessionDep, user_id: uuid.UUID
) -> Response:
    user = service.get(session=session, company_id=principal.company_id, user_id=user_id)
    return cached_json_response(request, UserRead.model_validate(user), service.etag_of(user))
