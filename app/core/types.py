"""Validated field types shared by every request and response schema."""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from functools import cache
from typing import Annotated, Any

import email_validator
import pycountry
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from app.core.money import CENT, MONEY_MAX_DIGITS, format_money


def clean_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid UTF-8 text") from exc
    return value


TRIM = " \t\n\r"  # trimmed from both ends of text


def _trimmed(value: str) -> str:
    return clean_text(value).strip(TRIM)


_Clean = AfterValidator(_trimmed)


def _bounded(max_length: int, min_length: int = 0) -> StringConstraints:
    # Lengths apply to the text as sent (the contract's maxLength); surrounding whitespace is
    # trimmed afterwards. A required text must hold a character that is not whitespace.
    return StringConstraints(
        min_length=min_length,
        max_length=max_length,
        pattern=r"^[^\x00]*[^\x00 \t\n\r][^\x00]*$" if min_length else r"^[^\x00]*$",
    )


# Strings without NUL bytes, of bounded length, trimmed.
Text20 = Annotated[str, _bounded(20), _Clean]
Text50 = Annotated[str, _bounded(50), _Clean]
Text100 = Annotated[str, _bounded(100), _Clean]
Text200 = Annotated[str, _bounded(200), _Clean]
Text500 = Annotated[str, _bounded(500), _Clean]
Name = Annotated[str, _bounded(200, 1), _Clean]
Ref50 = Annotated[str, _bounded(50, 1), _Clean]
Required64 = Annotated[str, _bounded(64, 1), _Clean]
Required500 = Annotated[str, _bounded(500, 1), _Clean]

# http(s) URLs in plain ASCII, stored as sent: what the contract allows, the app accepts.
_PORT = (
    r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
)
_HOST = (
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
URL_PATTERN = rf"^https?://{_HOST}{_PORT}([/?#][\x21-\x7e]*)?$"
WebUrl = Annotated[
    str,
    StringConstraints(max_length=500, pattern=URL_PATTERN),
    Field(examples=["https://www.example.com"]),
]


# Addresses at special-use domains (.test, .local, .invalid, ...) are valid syntax; a CRM
# stores what partners give it. email-validator documents this list as the switch.
email_validator.SPECIAL_USE_DOMAIN_NAMES.clear()


def _email(value: str) -> str:
    try:
        result = email_validator.validate_email(
            value, check_deliverability=False, globally_deliverable=False
        )
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address ({exc})") from None
    return result.normalized


Email = Annotated[
    str,
    StringConstraints(max_length=254),
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 254}),
]


def _iso_only(kind: str, pattern: re.Pattern[str]) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, str) and pattern.match(value):
            return value
        if isinstance(value, date | datetime) and not isinstance(value, str):
            return value
        raise ValueError(f"must be an ISO 8601 {kind}")

    return BeforeValidator(check)


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
# Dates and times as ISO 8601 text only (not numbers taken as timestamps).
IsoDate = Annotated[date, _iso_only("date, YYYY-MM-DD", _ISO_DATE)]


def _in_utc(value: datetime) -> datetime:
    # 0001-01-01T00:00+00:04 is valid text but no instant a datetime can hold in UTC.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_out_of_range", "is out of range once converted to UTC"
        ) from None


IsoDateTime = Annotated[
    AwareDatetime,
    _iso_only("date-time with a time zone", _ISO_DATETIME),
    AfterValidator(_in_utc),
]


def _strict_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("must be true or false")


# true/false only (JSON booleans, or the words in a query string): not 0, 1, "yes".
StrictBool = Annotated[bool, BeforeValidator(_strict_bool)]


@cache
def _countries() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


@cache
def currencies() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.currencies)


def _country(value: Any) -> Any:
    if not isinstance(value, str) or value not in _countries():
        raise ValueError("must be an ISO 3166-1 alpha-2 country code, e.g. DK")
    return value


def _currency(value: Any) -> Any:
    if not isinstance(value, str) or value not in currencies():
        raise ValueError("must be an ISO 4217 currency code, e.g. DKK")
    return value


# Enums, so the contract names every valid code once (as components) and clients can list
# them; a short message replaces the enum's list of hundreds of values.
Country = StrEnum("CountryCode", {c: c for c in sorted(_countries())})  # type: ignore[misc]
Currency = StrEnum("CurrencyCode", {c: c for c in sorted(currencies())})  # type: ignore[misc]

CountryCode = Annotated[
    Country,
    BeforeValidator(_country),
    Field(description="ISO 3166-1 alpha-2", examples=["DK"]),
]
CurrencyCode = Annotated[
    Currency,
    BeforeValidator(_currency),
    Field(description="ISO 4217", examples=["DKK"]),
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
        if abs(exact) >= MONEY_LIMIT:
            return exact  # far too large: left for the digit limit to reject
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


# No "/" (it names the tag in paths), no ";" (it joins tags in CSV), no control characters;
# spaces around the name are allowed and trimmed.
TAG_NAME_PATTERN = r"^ *[^ /;\x00-\x1f\x7f]([^/;\x00-\x1f\x7f]*[^ /;\x00-\x1f\x7f])? *$"

TagName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=50, pattern=TAG_NAME_PATTERN),
    AfterValidator(lambda name: clean_text(name).strip(" ")),
]


def tag_key(name: str) -> str:
    """Tag names are unique per company regardless of case."""
    return name.strip(" ").lower()
