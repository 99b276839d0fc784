"""Validated field types shared by every request and response schema."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import Annotated, Any

import pycountry
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

from app.core.money import CENT, MONEY_MAX_DIGITS, format_money


def clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid UTF-8 text") from exc
    return value


_NoNul = AfterValidator(clean_text)


def _bounded(max_length: int, min_length: int = 0) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


# Trimmed strings without NUL bytes, of bounded length.
Text20 = Annotated[str, _bounded(20), _NoNul]
Text50 = Annotated[str, _bounded(50), _NoNul]
Text100 = Annotated[str, _bounded(100), _NoNul]
Text200 = Annotated[str, _bounded(200), _NoNul]
Text500 = Annotated[str, _bounded(500), _NoNul]
Name = Annotated[str, _bounded(200, 1), _NoNul]
Ref50 = Annotated[str, _bounded(50, 1), _NoNul]


@cache
def _countries() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


@cache
def currencies() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.currencies)


def _country(value: str) -> str:
    if value not in _countries():
        raise ValueError("must be an ISO 3166-1 alpha-2 country code, e.g. DK")
    return value


def _currency(value: str) -> str:
    if value not in currencies():
        raise ValueError("must be an ISO 4217 currency code, e.g. DKK")
    return value


CountryCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{2}$"),
    AfterValidator(_country),
    Field(examples=["DK"]),
]
CurrencyCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{3}$"),
    AfterValidator(_currency),
    Field(examples=["DKK"]),
]


_MONEY_STRING = re.compile(r"^-?\d{1,14}(\.\d{1,2})?$")


def _money_input(value: Any) -> Any:
    if isinstance(value, str):
        if not _MONEY_STRING.match(value):
            raise ValueError('must be an amount with at most 2 decimals, e.g. "1234.50"')
        return value
    return _no_float_noise(value)


def _unsigned(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("-"):
        raise ValueError("must not be negative")
    return value


def _no_float_noise(value: Any) -> Any:
    # A JSON number arrives as a float: 10.1 means Decimal("10.1"), and binary noise such as
    # 0.07000000000000001 means 0.07; a real third decimal (1.234) is kept, to be rejected.
    if isinstance(value, float) and math.isfinite(value):
        exact = Decimal(repr(value))
        cents = exact.quantize(CENT)
        return cents if abs(exact - cents) < Decimal("1e-9") else exact
    return value


MONEY_LIMIT = 10**14  # 14 digits before the point, 2 after: NUMERIC(16, 2)


def _money_in_schema(*, signed: bool) -> WithJsonSchema:
    sign = "-?" if signed else ""
    number: dict[str, Any] = {"type": "number", "multipleOf": 0.01, "exclusiveMaximum": MONEY_LIMIT}
    number["exclusiveMinimum" if signed else "minimum"] = -MONEY_LIMIT if signed else 0
    return WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": rf"^{sign}\d{{1,14}}(\.\d{{1,2}})?$"}, number],
            "description": "Amount with at most 2 decimals, as a string or a number",
            "examples": ["1234.50"],
        },
        mode="validation",
    )


_MoneyBase = Annotated[
    Decimal,
    BeforeValidator(_money_input),
    Field(max_digits=MONEY_MAX_DIGITS, decimal_places=2, allow_inf_nan=False),
]
MoneyIn = Annotated[_MoneyBase, _money_in_schema(signed=True)]
NonNegativeMoneyIn = Annotated[
    _MoneyBase, BeforeValidator(_unsigned), Field(ge=0), _money_in_schema(signed=False)
]

Money = Annotated[
    Decimal,
    PlainSerializer(format_money, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "examples": ["1234.50"]},
        mode="serialization",
    ),
]


def format_utc(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


UTCDateTime = Annotated[
    datetime,
    PlainSerializer(format_utc, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]

Date = date


def _plain_decimal(value: Decimal) -> str:
    text_ = format(value.normalize(), "f")
    return text_


Decimal6 = Annotated[
    Decimal,
    PlainSerializer(_plain_decimal, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": r"^\d+(\.\d{1,6})?$", "examples": ["2.5"]},
        mode="serialization",
    ),
]
