"""Token routes and ``/me`` (what the calling token is)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.auth.dependencies import Admin, Reader, SessionDep
from app.core.errors import problem_responses
from app.core.http import cached_json_response, json_response, links, location
from app.core.pagination import Page, PageRequest, list_params, page_response
from app.models import ApiToken, User
from app.models.enums import Scope
from app.tokens import service
from app.tokens.repository import TOKEN_SORTING
from app.tokens.schemas import CompanyRef, MeRead, TokenCreate, TokenCreated, TokenRead
from app.users.schemas import UserRead, UserRef

router = APIRouter(prefix="/api/v1", tags=["tokens"])


def _read(token: ApiToken, user: User) -> dict[str, object]:
    return {
        "id": token.id,
        "name": token.name,
        "scope": token.scope,
        "user": UserRef.model_validate(user),
        "prefix": token.token_prefix,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "last_used_at": token.last_used_at,
    }


@router.get(
    "/me",
    response_model=MeRead,
    operation_id="get_me",
    tags=["auth"],
    responses=problem_responses(401, 403),
)
def get_me(principal: Reader) -> Response:
    return json_response(
        MeRead(
            user=UserRead.model_validate(principal.user),
            company=CompanyRef.model_validate(principal.company),
            scope=principal.scope,
            scopes=[s for s in Scope if principal.scope.allows(s)],
            token_id=principal.token_id,
        )
    )


TokenList = Annotated[PageRequest[None], Depends(list_params(TOKEN_SORTING))]


@router.get(
    "/tokens",
    response_model=Page[TokenRead],
    operation_id="list_tokens",
    responses=problem_responses(401, 403, 422),
)
def list_tokens(principal: Admin, session: SessionDep, page: TokenList) -> Response:
    result = service.list_(session=session, company_id=principal.company_id, page=page)
    return page_response(result, [TokenRead(**_read(t, u)) for t, u in result.rows])


@router.post(
    "/tokens",
    status_code=201,
    response_model=TokenCreated,
    operation_id="create_token",
    responses={
        201: links("token_id", "id", "get_token", "delete_token"),
        **problem_responses(401, 403, 409, 413, 422),
    },
)
def create_token(
    request: Request, principal: Admin, session: SessionDep, body: TokenCreate
) -> Response:
    """The secret is in this answer only. A company holds at most ``CRM_MAX_TOKENS_PER_COMPANY``
    active tokens (409 ``token_limit_reached`` beyond)."""
    issued = service.create(
        session=session,
        company_id=principal.company_id,
        user_id=body.user_id or principal.user.id,
        name=body.name,
        scope=body.scope,
        expires_at=body.expires_at,
        max_active=request.app.state.settings.max_tokens_per_company,
    )
    return json_response(
        TokenCreated(**_read(issued.token, issued.user), token=issued.secret),
        status_code=201,
        headers={
            **location(f"{router.prefix}/tokens/{issued.token.id}"),
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/tokens/{token_id}",
    response_model=TokenRead,
    operation_id="get_token",
    responses=problem_responses(304, 401, 403, 404, 422),
)
def get_token(
    request: Request, principal: Admin, session: SessionDep, token_id: uuid.UUID
) -> Response:
    token, user = service.get(session=session, company_id=principal.company_id, token_id=token_id)
    return cached_json_response(request, TokenRead(**_read(token, user)), service.etag_of(token))


@router.delete(
    "/tokens/{token_id}",
    status_code=204,
    response_class=Response,
    operation_id="delete_token",
    responses=problem_responses(401, 403, 404, 422),
)
def delete_token(principal: Admin, session: SessionDep, token_id: uuid.UUID) -> Response:
    """Revoke a token: the server that answers refuses it from the next request on, every
    other server process within a second (``CRM_AUTH_CACHE_SECONDS``)."""
    service.revoke(session=session, company_id=principal.company_id, token_id=token_id)
    return Response(status_code=204)
