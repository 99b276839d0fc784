"""The token's own company."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from app.auth.dependencies import Admin, Reader, SessionDep
from app.companies import service
from app.companies.schemas import CompanyRead, CompanyUpdate
from app.core.errors import problem_responses
from app.core.http import cached_json_response, etag, json_response

router = APIRouter(prefix="/api/v1/company", tags=["company"])


@router.get(
    "",
    response_model=CompanyRead,
    operation_id="get_company",
    responses=problem_responses(304, 401, 403),
)
def get_company(request: Request, principal: Reader) -> Response:
    return cached_json_response(
        request, CompanyRead.model_validate(principal.company), etag(principal.company.version)
    )


@router.patch(
    "",
    response_model=CompanyRead,
    operation_id="update_company",
    responses=problem_responses(401, 403, 412, 413, 422),
)
def update_company(
    principal: Admin,
    session: SessionDep,
    body: CompanyUpdate,
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=1000)] = None,
) -> Response:
    company = service.update(session=session, principal=principal, data=body, if_match=if_match)
    return json_response(CompanyRead.model_validate(company), etag=etag(company.version))
