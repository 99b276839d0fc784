"""The framework's floor for benchmarks: a route that returns 50 prepared overview rows with
no database and no auth, through the same middleware and serializer as the real overview.
Mounted only with ``CRM_BENCH_ROUTES=true``; never part of the contract."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

from fastapi import APIRouter, Response

from app.core.http import json_response
from app.core.pagination import Page
from app.partners.overview import OverviewRow
from app.users.schemas import UserRef

router = APIRouter(include_in_schema=False)

_ROWS = Page[OverviewRow](
    items=[
        OverviewRow(
            number=n,
            name=f"Nordic Deli {n} A/S",
            country="DK",
            credit_limit=Decimal("50000.00"),
            debtor_balance=Decimal("12345.67"),
            debtor_balance_synced_at=datetime(2026, 11, 1, tzinfo=UTC),
            credit_limit_exceeded=False,
            uninvoiced_total=Decimal("9876.50"),
            tags=["Wholesale", "Export"],
            latest_sales_delivery_date=date(2026, 11, 20),
            owner=UserRef(id=uuid.UUID(int=n), name="Seller 1"),
            customer_stage="active",
        )
        for n in range(1, 51)
    ],
    next_cursor="eyJzIjoibnVtYmVyIiwiayI6WzUwLDUwXX0",
    total=None,
)


@router.get("/bench/floor")
def bench_floor() -> Response:
    return json_response(_ROWS)
