"""Sales order routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from app.auth.dependencies import Principal, Reader, ReadSessionDep, SessionDep, Writer
from app.core.answer import Answer
from app.core.errors import problem_responses
from app.core.http import cached_json_response, links, respond
from app.core.pagination import Page, PageRequest, list_params, page_response, sort_enum
from app.core.types import IsoDate, IsoDateTime, StrictBool
from app.idempotency.dependencies import Keyed
from app.models import SalesOrder
from app.models.enums import SalesOrderStatus
from app.sales_orders import service
from app.sales_orders.repository import SALES_ORDER_SORTING
from app.sales_orders.schemas import (
    SalesOrderCreate,
    SalesOrderFilter,
    SalesOrderRead,
    SalesOrderUpdate,
)

router = APIRouter(prefix="/api/v1/sales-orders", tags=["sales orders"])

SalesOrderSort = sort_enum("SalesOrderSort", SALES_ORDER_SORTING)
OrderNumber = Annotated[int, Path(ge=1, le=2_147_483_647, description="The order number")]
IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", max_length=1000, description="ETag from a previous read"),
]


async def order_filters(
    partner_number: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
    status: Annotated[
        list[SalesOrderStatus] | None, Query(max_length=4, description="Any of these statuses")
    ] = None,
    delivery_date_from: Annotated[IsoDate | None, Query()] = None,
    delivery_date_to: Annotated[IsoDate | None, Query()] = None,
    credit_warning: Annotated[StrictBool | None, Query()] = None,
    updated_since: Annotated[
        IsoDateTime | None, Query(description="Changed at or after (with a time zone)")
    ] = None,
) -> SalesOrderFilter:
    return SalesOrderFilter(
        partner_number=partner_number,
        status=status,
        delivery_date_from=delivery_date_from,
        delivery_date_to=delivery_date_to,
        credit_warning=credit_warning,
        updated_since=updated_since,
    )


# Sort, filters and paging of the list, resolved with the cursor.
SalesOrderList = Annotated[
    PageRequest[SalesOrderFilter],
    Depends(
        list_params(
            SALES_ORDER_SORTING,
            sort=SalesOrderSort,
            sort_description="Field; prefix - to reverse",
            filters=order_filters,
        )
    ),
]


def _path(number: int) -> str:
    return f"{router.prefix}/{number}"


@router.get(
    "",
    response_model=Page[SalesOrderRead],
    operation_id="list_sales_orders",
    responses=problem_responses(401, 403, 422),
)
def list_sales_orders(principal: Reader, session: ReadSessionDep, page: SalesOrderList) -> Response:
    result = service.list_(session=session, principal=principal, filters=page.filters, page=page)
    base = principal.company.base_currency
    return page_response(result, [service.read(o, base) for o in result.rows])


@router.post(
    "",
    status_code=201,
    response_model=SalesOrderRead,
    operation_id="create_sales_order",
    responses={
        201: links(
            "number",
            "number",
            "get_sales_order",
            "update_sales_order",
            "deliver_sales_order",
            "invoice_sales_order",
            "cancel_sales_order",
        ),
        **problem_responses(401, 403, 409, 413, 422),
    },
)
def create_sales_order(
    principal: Writer, session: SessionDep, body: SalesOrderCreate, keyed: Keyed
) -> Response:
    return keyed.answer(
        body,
        render=lambda order: _answer(order, principal, status=201),
        execute=lambda idem: service.create(
            session=session, principal=principal, data=body, idempotency=idem
        ),
    )


@router.get(
    "/{number}",
    response_model=SalesOrderRead,
    operation_id="get_sales_order",
    responses=problem_responses(304, 401, 403, 404, 422),
)
def get_sales_order(
    request: Request, principal: Reader, session: SessionDep, number: OrderNumber
) -> Response:
    order = service.get(session=session, principal=principal, number=number)
    return cached_json_response(
        request,
        service.read(order, principal.company.base_currency),
        service.etag_of(order, principal.company.version),
    )


@router.patch(
    "/{number}",
    response_model=SalesOrderRead,
    operation_id="update_sales_order",
    responses=problem_responses(401, 403, 404, 409, 412, 413, 422),
)
def update_sales_order(
    principal: Writer,
    session: SessionDep,
    number: OrderNumber,
    body: SalesOrderUpdate,
    if_match: IfMatch = None,
) -> Response:
    order = service.update(
        session=session, principal=principal, number=number, data=body, if_match=if_match
    )
    return respond(_answer(order, principal))


def _answer(order: SalesOrder, principal: Principal, status: int = 200) -> Answer:
    return Answer.json(
        service.read(order, principal.company.base_currency),
        status=status,
        location=_path(order.number) if status == 201 else None,
        etag=service.etag_of(order, principal.company.version),
    )


def _transition_route(action: str, summary: str) -> None:
    @router.post(
        f"/{{number}}/{action}",
        response_model=SalesOrderRead,
        operation_id=f"{action}_sales_order",
        summary=summary,
        responses=problem_responses(401, 403, 404, 409, 422),
    )
    def transition(principal: Writer, session: SessionDep, number: OrderNumber) -> Response:
        order = service.transition(
            session=session, principal=principal, number=number, action=action
        )
        return respond(_answer(order, principal))

    transition.__name__ = f"{action}_sales_order"


_transition_route("deliver", "Mark an open order delivered")
_transition_route("invoice", "Mark an open or delivered order invoiced")
_transition_route("cancel", "Cancel an open order")
