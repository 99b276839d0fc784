"""One keyset pagination and sorting mechanism for every list.

A list declares its sortable fields; a request names one (``sort=name`` or ``sort=-name``).
Rows are ordered by that field with nulls last in either direction, ties broken by a unique
key (the number, where the resource has one) in the same direction. The opaque cursor carries
the sort and the last row's key, so the next page starts right after it: stable while rows
are added or removed, and as cheap on page 1000 as on page 1.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    SmallInteger,
    and_,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator, TypeEngine

from app.core.errors import FieldError, ValidationFailed
from app.core.types import StrictBool

T = TypeVar("T")

MAX_LIMIT = 500
DEFAULT_LIMIT = 50

# The longest text a cursor may carry: well above the longest sortable text column (200
# characters), far below what the ``cursor`` parameter's length allows through.
MAX_CURSOR_TEXT = 500
# Integer bounds by column type; any other integer expression: signed 64-bit.
_INT_BITS: tuple[tuple[type[TypeEngine[Any]], int], ...] = (
    (SmallInteger, 16),
    (BigInteger, 64),
    (Integer, 32),
)


def _bad() -> Any:
    raise ValueError("bad cursor value")


def _base_type(sql_type: Any) -> Any:
    while isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance
    return sql_type


def _decode_int(value: Any, sql_type: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        _bad()
    base = _base_type(sql_type)
    bits = next((b for kind, b in _INT_BITS if isinstance(base, kind)), 64)
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        _bad()
    return int(value)


def _decode_str(value: Any, sql_type: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_CURSOR_TEXT or "\x00" in value:
        _bad()
    value.encode("utf-8")  # lone surrogates: UnicodeEncodeError
    return value


def _decode_bool(value: Any, sql_type: Any) -> bool:
    return value if isinstance(value, bool) else _bad()


def _decode_decimal(value: Any, sql_type: Any) -> Decimal:
    if not isinstance(value, str) or len(value) > 100:
        _bad()
    number = Decimal(value)
    if not number.is_finite() or str(number) != value:  # Infinity, NaN, sNaN; "1e2", " 1"
        _bad()
    base = _base_type(sql_type)
    precision = getattr(base, "precision", None)
    scale = getattr(base, "scale", None)
    if isinstance(precision, int) and isinstance(scale, int):
        # What NUMERIC(precision, scale) holds, written as the column returns it: exactly
        # ``scale`` places, at most ``precision - scale`` digits before the point.
        if number.as_tuple().exponent != -scale:
            _bad()
        if abs(number) >= Decimal(10) ** (precision - scale):
            _bad()
    elif len(number.as_tuple().digits) > 28 or abs(number.adjusted()) > 28:
        _bad()
    return number


def _decode_date(value: Any, sql_type: Any) -> date:
    if not isinstance(value, str) or len(value) > 10:
        _bad()
    parsed = date.fromisoformat(value)
    if parsed.isoformat() != value:  # only the form encode_cursor writes
        _bad()
    return parsed


def _decode_datetime(value: Any, sql_type: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        _bad()
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None or parsed.isoformat() != value:
        raise ValueError("naive or non-canonical datetime in cursor")
    # The database compares in UTC: an offset that moves the instant past year 1 or 9999
    # raises OverflowError here, not in the driver.
    return parsed.astimezone(UTC)


def _decode_uuid(value: Any, sql_type: Any) -> uuid.UUID:
    if not isinstance(value, str) or len(value) > 45:
        _bad()
    parsed = uuid.UUID(value)
    if str(parsed) != value:
        _bad()
    return parsed


# How to read a cursor value of each sort value type back, given the sort's SQL type: only
# values the database can hold pass; anything else raises (ValueError, OverflowError, ...).
_DECODERS: dict[type, Callable[[Any, Any], Any]] = {
    int: _decode_int,
    str: _decode_str,
    bool: _decode_bool,
    Decimal: _decode_decimal,
    date: _decode_date,
    datetime: _decode_datetime,
    uuid.UUID: _decode_uuid,
}


def _decode(field: SortField, value: Any) -> Any:
    return _DECODERS[field.value_type](value, getattr(field.expression, "type", None))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} in cursor")  # Infinity, -Infinity, NaN: never handed out


def _no_float(text: str) -> Any:
    raise ValueError("float in cursor")  # numbers travel as strings or integers


def _encode_value(value: Any) -> Any:
    if isinstance(value, Decimal | date | datetime | uuid.UUID):
        return str(value) if not isinstance(value, date | datetime) else value.isoformat()
    return value


@dataclass(frozen=True)
class SortField:
    """A sortable field: the SQL expression and how to read its value off a result row."""

    expression: Any  # a column or SQL expression
    value_type: type
    value_of: Callable[[Any], Any]
    nullable: bool = True


@dataclass(frozen=True)
class Sorting:
    """The sortable fields of one list, its tie-break key and its default sort."""

    fields: dict[str, SortField]
    tiebreak: SortField
    default: str

    def parse(self, sort: str | None) -> SortSpec:
        raw = sort or self.default
        descending = raw.startswith("-")
        name = raw[1:] if descending else raw
        if name not in self.fields:
            allowed = ", ".join(sorted(self.fields))
            raise ValidationFailed(
                f"Unknown sort field {name!r}; sort on one of: {allowed} (prefix - to reverse).",
                code="invalid_sort",
                errors=[
                    FieldError(("query", "sort"), f"unknown sort field {name!r}", "invalid_sort")
                ],
            )
        return SortSpec(raw=raw, field=self.fields[name], descending=descending, sorting=self)


@dataclass(frozen=True)
class SortSpec:
    raw: str
    field: SortField
    descending: bool
    sorting: Sorting

    @property
    def _is_tiebreak(self) -> bool:
        return self.field.expression is self.sorting.tiebreak.expression

    def order_by(self) -> list[Any]:
        tb = self.sorting.tiebreak.expression
        tb_order = tb.desc() if self.descending else tb.asc()
        if self._is_tiebreak:
            return [tb_order]
        col = self.field.expression
        col_order = col.desc() if self.descending else col.asc()
        if self.field.nullable:
            col_order = col_order.nulls_last()
        return [col_order, tb_order]

    def after(self, key: tuple[Any, Any]) -> ColumnElement[bool]:
        """The rows that come after a row whose sort key is ``key``."""
        value, tb_value = key
        tb = self.sorting.tiebreak.expression

        def beyond(a: ColumnElement[Any], v: Any) -> ColumnElement[bool]:
            return a < v if self.descending else a > v

        if self._is_tiebreak:
            return beyond(tb, tb_value)
        col = self.field.expression
        if value is None:
            return and_(col.is_(None), beyond(tb, tb_value))
        parts = [beyond(col, value), and_(col == value, beyond(tb, tb_value))]
        if self.field.nullable:
            parts.append(col.is_(None))
        return or_(*parts)

    def rows_statement(self, stmt: Any, key: tuple[Any, Any] | None, limit: int) -> Any:
        """One index-friendly statement for the next ``limit`` rows of a Core ``stmt``.

        Keys compare as row values, ``(sort, tiebreak) > (v, n)``, which a B-tree index on
        ``(sort, tiebreak)`` answers with one range scan in either direction. A nullable sort
        runs as two branches in one UNION ALL, the values and then the nulls, each ordered and
        limited on its own index, so a deep page costs about what the first one does.
        """
        tb = self.sorting.tiebreak.expression
        desc = self.descending

        def beyond(cols: tuple[Any, ...], values: tuple[Any, ...]) -> ColumnElement[bool]:
            left = tuple_(*cols)
            right = tuple_(*(literal(v, c.type) for c, v in zip(cols, values, strict=True)))
            return left < right if desc else left > right

        def ordered(*cols: Any) -> list[Any]:
            return [c.desc() if desc else c.asc() for c in cols]

        if self._is_tiebreak:
            branch = stmt if key is None else stmt.where(beyond((tb,), (key[1],)))
            return branch.order_by(*ordered(tb)).limit(limit)
        col = self.field.expression
        if not self.field.nullable:
            branch = stmt if key is None else stmt.where(beyond((col, tb), key))
            return branch.order_by(*ordered(col, tb)).limit(limit)
        if key is not None and key[0] is None:  # already among the nulls
            tail = stmt.where(col.is_(None), beyond((tb,), (key[1],)))
            return tail.order_by(*ordered(tb)).limit(limit)
        values = stmt.where(col.is_not(None))
        if key is not None:
            values = values.where(beyond((col, tb), key))
        parts = [
            values.add_columns(literal(0).label("_part"), col.label("_key"), tb.label("_tb"))
            .order_by(*ordered(col, tb))
            .limit(limit),
            stmt.where(col.is_(None))
            .add_columns(literal(1).label("_part"), col.label("_key"), tb.label("_tb"))
            .order_by(*ordered(tb))
            .limit(limit),
        ]
        both = union_all(*(select(p.subquery()) for p in parts)).subquery()
        return select(both).order_by(both.c._part, *ordered(both.c._key, both.c._tb)).limit(limit)

    def key_of(self, row: Any) -> tuple[Any, Any]:
        return self.field.value_of(row), self.sorting.tiebreak.value_of(row)

    def encode_cursor(self, row: Any) -> str:
        value, tb_value = self.key_of(row)
        payload = {"s": self.raw, "k": [_encode_value(value), _encode_value(tb_value)]}
        raw = json.dumps(payload, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode_cursor(self, cursor: str) -> tuple[Any, Any]:
        def invalid(detail: str) -> ValidationFailed:
            return ValidationFailed(
                detail,
                code="invalid_cursor",
                errors=[FieldError(("query", "cursor"), detail, "invalid_cursor")],
            )

        field, tiebreak = self.field, self.sorting.tiebreak
        try:
            padded = cursor + "=" * (-len(cursor) % 4)
            payload = json.loads(
                base64.urlsafe_b64decode(padded.encode("ascii")),
                parse_constant=_no_constant,
                parse_float=_no_float,
            )
            if not isinstance(payload, dict) or not isinstance(payload.get("k"), list):
                raise ValueError("not a cursor")
            sort, (value, tb_value) = payload["s"], payload["k"]
            # Every value is range-checked here: anything the database cannot hold (or that
            # this list never hands out) is a bad cursor, never a database error later.
            key = (
                None if value is None else _decode(field, value),
                _decode(tiebreak, tb_value),
            )
        except (
            ValueError,  # also UnicodeError, json.JSONDecodeError, binascii.Error
            TypeError,
            KeyError,
            ArithmeticError,  # InvalidOperation, OverflowError
            RecursionError,
        ):
            raise invalid("The cursor is not one this list handed out.") from None
        if sort != self.raw:
            raise invalid("The cursor belongs to another sort; start again without a cursor.")
        if value is None and not self.field.nullable:
            raise invalid("The cursor is not one this list handed out.")
        return key


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )
    total: int | None = Field(
        default=None, description="Number of matching items; only with `include_total=true`."
    )


@dataclass(frozen=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    include_total: bool = False
    sort: str | None = None


@dataclass
class RawPage(Generic[T]):
    rows: Sequence[T]
    next_cursor: str | None
    total: int | None


def paginate(
    session: Session,
    stmt: Any,  # a filtered SELECT
    *,
    sorting: Sorting,
    request: PageRequest,
    scalars: bool = True,
) -> RawPage[Any]:
    """Run one page of ``stmt`` (already filtered) under the requested sort and cursor."""
    spec = sorting.parse(request.sort)
    total = None
    if request.include_total:
        total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    key = spec.decode_cursor(request.cursor) if request.cursor else None
    if scalars:  # ORM entities: one statement with the plain keyset condition
        paged = stmt if key is None else stmt.where(spec.after(key))
        paged = paged.order_by(*spec.order_by()).limit(request.limit + 1)
    else:
        paged = spec.rows_statement(stmt, key, request.limit + 1)
    result = session.execute(paged)
    rows = list(result.scalars().unique() if scalars else result.all())
    next_cursor = None
    if len(rows) > request.limit:
        rows = rows[: request.limit]
        next_cursor = spec.encode_cursor(rows[-1])
    return RawPage(rows=rows, next_cursor=next_cursor, total=total)


def sort_values(sorting: Sorting) -> list[str]:
    """Every accepted value of ``sort``: each field, ascending and descending."""
    return [v for name in sorting.fields for v in (name, f"-{name}")]


def sort_enum(name: str, sorting: Sorting) -> type[StrEnum]:
    """An enum of the accepted ``sort`` values, so the contract lists them."""
    return StrEnum(name, {v: v for v in sort_values(sorting)})  # type: ignore[return-value]


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=1000, description="`next_cursor` of the previous page"),
    ] = None,
    include_total: Annotated[
        StrictBool, Query(description="Also count every matching item (`total`)")
    ] = False,
) -> PageRequest:
    return PageRequest(limit=limit, cursor=cursor, include_total=include_total)


def iterate(
    session: Session,
    stmt: Any,
    *,
    sorting: Sorting,
    sort: str | None,
    batch_size: int = 1000,
) -> Iterator[Any]:
    """Every row of ``stmt`` in sort order, fetched in keyset batches (memory stays flat)."""
    spec = sorting.parse(sort)
    key: tuple[Any, Any] | None = None
    while True:
        rows = session.execute(spec.rows_statement(stmt, key, batch_size)).all()
        yield from rows
        if len(rows) < batch_size:
            return
        key = spec.key_of(rows[-1])


def page_response(result: RawPage[Any], items: Sequence[BaseModel]) -> Response:
    """The JSON answer of a list: its items (already converted), cursor and total."""
    page = Page[Any].model_construct(
        items=list(items), next_cursor=result.next_cursor, total=result.total
    )
    return Response(content=page.model_dump_json(), media_type="application/json")
