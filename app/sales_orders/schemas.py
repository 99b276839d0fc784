"""Sales order request and response schemas."""

from __future__ import annotations

import re
import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

from app.core.schemas import RequestModel, ResponseModel, omittable
from app.core.types import (
    CurrencyCode,
    Decimal6,
    IsoDate,
    IsoDateTime,
    Money,
    NonNegativeMoneyIn,
    Required64,
    Required500,
    StrictBool,
    Text100,
    UTCDateTime,
)
from app.models.enums import SalesOrderStatus
from app.users.schemas import UserRef

MAX_LINES = 500
# Positive, at most 12 digits before the point and 6 after, no leading zeros, not zero.
POSITIVE6_PATTERN = (
    r"^([1-9]\d{0,11}(\.\d{1,6})?|0\.([1-9]\d{0,5}|0[1-9]\d{0,4}|00[1-9]\d{0,3}"
    r"|000[1-9]\d{0,2}|0000[1-9]\d?|00000[1-9]))$"
)
_DECIMAL6 = re.compile(POSITIVE6_PATTERN)


def _from_float(value: float, places: int) -> Decimal:
    """A JSON number without its binary noise: 0.30000000000000004 means 0.3."""
    exact = Decimal(repr(value))
    if not exact.is_finite() or abs(exact) >= 10**15:
        return exact
    rounded = exact.quantize(Decimal(1).scaleb(-places))
    return rounded if abs(exact - rounded) < Decimal("1e-12") else exact


def _decimal6(value: Any) -> Any:
    if isinstance(value, str) and not _DECIMAL6.match(value):
        raise ValueError('must be a positive number with at most 6 decimals, e.g. "2.5"')
    if isinstance(value, float):
        return _from_float(value, 6)
    return value


def _decimal6_schema(description: str, example: str) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": POSITIVE6_PATTERN},
                {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "exclusiveMaximum": 10**12,
                    "multipleOf": 0.000001,
                },
            ],
            "description": description,
            "examples": [example],
        },
        mode="validation",
    )


Quantity = Annotated[
    Decimal,
    BeforeValidator(_decimal6),
    Field(gt=0, max_digits=18, decimal_places=6, allow_inf_nan=False),
    _decimal6_schema("Quantity > 0, at most 6 decimals", "2.5"),
]
ExchangeRate = Annotated[
    Decimal,
    BeforeValidator(_decimal6),
    Field(gt=0, max_digits=18, decimal_places=6, allow_inf_nan=False),
    _decimal6_schema("Base currency per unit of the order currency, at most 6 decimals", "7.45"),
]
DISCOUNT_PATTERN = r"^(100(\.0{1,2})?|\d{1,2}(\.\d{1,2})?)$"
_DISCOUNT = re.compile(DISCOUNT_PATTERN)


def _discount(value: Any) -> Any:
    if isinstance(value, str) and not _DISCOUNT.match(value):
        raise ValueError("must be a percentage from 0 to 100 with at most 2 decimals")
    if isinstance(value, float):
        return _from_float(value, 2)
    return value


DiscountPercent = Annotated[
    Decimal,
    BeforeValidator(_discount),
    Field(ge=0, le=100, max_digits=5, decimal_places=2, allow_inf_nan=False),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DISCOUNT_PATTERN},
                {"type": "number", "minimum": 0, "maximum": 100, "multipleOf": 0.01},
            ],
            "description": "0-100, at most 2 decimals",
        },
        mode="validation",
    ),
]
Description = Required500
Sku = Required64


class LineIn(RequestModel):
    description: Description
    sku: Sku | None = None
    quantity: Quantity
    unit_price: NonNegativeMoneyIn
    discount_percent: DiscountPercent = Decimal("0")


class LineRead(ResponseModel):
    description: str
    sku: str | None
    quantity: Decimal6
    unit_price: Money
    discount_percent: Decimal6
    total: Money


class SalesOrderCreate(RequestModel):
    partner_number: int = Field(ge=1, le=2_147_483_647)
    order_date: IsoDate | None = Field(default=None, description="Defaults to today (UTC)")
    delivery_date: IsoDate | None = None
    currency: CurrencyCode | None = Field(default=None, description="Defaults to the partner's")
    exchange_rate: ExchangeRate | None = Field(
        default=None,
        description="Required when the currency is not the company's base currency; "
        "must be 1 (or left out) when it is.",
    )
    reference: Text100 | None = None
    owner_id: uuid.UUID | None = Field(default=None, description="Defaults to the partner's owner")
    lines: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)


class SalesOrderUpdate(RequestModel):
    """Only `open` orders can be edited; `lines` replaces every line."""

    order_date: IsoDate = omittable()
    delivery_date: IsoDate | None = None
    currency: CurrencyCode = omittable()
    exchange_rate: ExchangeRate = omittable()
    reference: Text100 | None = None
    owner_id: uuid.UUID | None = None
    lines: list[LineIn] = omittable(min_length=1, max_length=MAX_LINES)


class Warning(ResponseModel):
    code: str
    message: str


class SalesOrderRead(ResponseModel):
    id: uuid.UUID
    number: int = Field(
        description="Per company, from 1, never reused; increasing in the order orders are "
        "created (a creation that fails may leave a gap)"
    )
    partner_number: int
    status: SalesOrderStatus
    order_date: date
    delivery_date: date | None
    currency: str
    exchange_rate: Decimal6
    reference: str | None
    owner: UserRef | None
    lines: list[LineRead]
    total: Money
    total_base: Money
    credit_warning: bool
    warnings: list[Warning]
    created_at: UTCDateTime
    updated_at: UTCDateTime
    delivered_at: UTCDateTime | None
    invoiced_at: UTCDateTime | None
    cancelled_at: UTCDateTime | None


class SalesOrderFilter(RequestModel):
    partner_number: int | None = None
    status: list[SalesOrderStatus] | None = None
    delivery_date_from: IsoDate | None = None
    delivery_date_to: IsoDate | None = None
    credit_warning: StrictBool | None = None
    updated_since: IsoDateTime | None = None
