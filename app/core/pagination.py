"""One keyset pagination and sorting mechanism for every list.

A list declares its sortable fields once (``SortField.of(column)``); a request names one
(``sort=name`` or ``sort=-name``). Rows are ordered by that field with nulls last in either
direction, ties broken by a unique key (the number, where the resource has one) in the same
direction. Every page, of every list, is one statement built by ``SortSpec.rows_statement``:
row-value comparisons that a B-tree index on ``(company_id, sort, tiebreak)`` answers with one
range scan, so page 1000 costs what page 1 does.

The opaque cursor carries the sort, the last row's key and the list's filters (a fingerprint,
and the normalized values when they fit): alone, it continues the list it came from; with
another sort or other filters it is refused (422 ``invalid_cursor``) rather than answering
rows of a list nobody asked for. Everything in it is checked on the way in, as strictly as the
query parameters it stands for.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum, StrEnum
from typing import Annotated, Any, Generic, NoReturn, TypeVar, get_type_hints

from fastapi import Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    SmallInteger,
    func,
    literal,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator, TypeEngine

from app.core.errors import FieldError, ValidationFailed
from app.core.types import StrictBool

T = TypeVar("T")
F = TypeVar("F")

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
# The ``cursor`` parameter's maxLength: no cursor handed out is longer.
MAX_CURSOR_LENGTH = 1000

# The longest text a cursor may carry: well above the longest sortable text column (200
# characters), far below what the ``cursor`` parameter's length allows through.
MAX_CURSOR_TEXT = 500
# Integer bounds by column type; any other integer expression: signed 64-bit.
_INT_BITS: tuple[tuple[type[TypeEngine[Any]], int], ...] = (
    (SmallInteger, 16),
    (BigInteger, 64),
    (Integer, 32),
)

# The columns every page statement adds to its rows: the sort value and the tiebreak value
# of each row, as the database computed them (the next cursor is made of the last row's).
KEY = "_sort_key"
TIEBREAK = "_sort_tiebreak"
_PART = "_sort_part"


def _bad() -> NoReturn:
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


# --- sort fields and sorts ------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SortField:
    """A sortable column (or SQL expression) of a list: its value type and nullability.

    Made with ``SortField.of(column)``: both come from the column. A page reads the sort
    value of each row off the row itself (the database's value, also of a computed column).
    """

    expression: Any
    value_type: type
    nullable: bool

    @classmethod
    def of(cls, column: Any, *, nullable: bool | None = None) -> SortField:
        """The sort field of ``column``. ``nullable=False`` where the list's own condition
        already excludes nulls of a nullable column (a shorter statement)."""
        element = column.__clause_element__() if hasattr(column, "__clause_element__") else column
        value_type = _base_type(element.type).python_type
        if value_type not in _DECODERS:
            raise TypeError(f"cannot sort on {column!r}: no cursor decoder for {value_type!r}")
        if nullable is None:
            nullable = bool(getattr(element, "nullable", True))
        return cls(column, value_type, nullable)


@dataclass(frozen=True)
class Sorting:
    """The sortable fields of one list, its tie-break key and its default sort.

    The tiebreak must be unique among the list's rows and never null.
    """

    fields: dict[str, SortField]
    tiebreak: SortField
    default: str

    def __post_init__(self) -> None:
        if self.tiebreak.nullable:
            raise ValueError("a tiebreak cannot be null")
        self.parse(self.default)

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
    def is_tiebreak(self) -> bool:
        return self.field.expression is self.sorting.tiebreak.expression

    def rows_statement(self, stmt: Any, key: tuple[Any, Any] | None, limit: int) -> Any:
        """The statement for the next ``limit`` rows of ``stmt`` (filtered, unordered) after
        the row whose sort key is ``key`` (from the start without one).

        ``stmt`` may select ORM entities (with loader options) or plain columns; the answer
        selects the same, plus the sort value and the tiebreak of each row (``KEY``,
        ``TIEBREAK``). Keys compare as row values, ``(sort, tiebreak) > (v, n)``, which a
        B-tree index on ``(company_id, sort, tiebreak)`` answers with one range scan in either
        direction. A nullable sort first picks the page's tiebreaks from two branches of one
        UNION ALL, the values and then the nulls, each ordered and limited on that index (the
        nulls as ``sort IS NULL``, in index order), and then reads those rows by tiebreak: a
        deep page costs about what the first one does.
        """
        tb = self.sorting.tiebreak.expression
        col = self.field.expression
        desc = self.descending

        def beyond(cols: tuple[Any, ...], values: tuple[Any, ...]) -> ColumnElement[bool]:
            left = tuple_(*cols)
            right = tuple_(*(literal(v, c.type) for c, v in zip(cols, values, strict=True)))
            return left < right if desc else left > right

        def ordered(*cols: Any) -> list[Any]:
            return [c.desc() if desc else c.asc() for c in cols]

        def keyed(branch: Any) -> Any:
            return branch.add_columns(col.label(KEY), tb.label(TIEBREAK))

        if self.is_tiebreak:
            branch = stmt if key is None else stmt.where(beyond((tb,), (key[1],)))
            return keyed(branch).order_by(*ordered(tb)).limit(limit)
        if not self.field.nullable:
            branch = stmt if key is None else stmt.where(beyond((col, tb), key))
            return keyed(branch).order_by(*ordered(col, tb)).limit(limit)
        if key is not None and key[0] is None:  # already among the nulls
            tail = stmt.where(col.is_(None), beyond((tb,), (key[1],)))
            return keyed(tail).order_by(*ordered(col, tb)).limit(limit)
        keys = stmt.with_only_columns(
            col.label(KEY), tb.label(TIEBREAK), maintain_column_froms=False
        )
        values = keys.where(col.is_not(None))
        if key is not None:
            values = values.where(beyond((col, tb), key))
        parts = [
            values.add_columns(literal(0).label(_PART)),
            keys.where(col.is_(None)).add_columns(literal(1).label(_PART)),
        ]
        both = union_all(
            *(select(p.order_by(*ordered(col, tb)).limit(limit).subquery()) for p in parts)
        ).subquery()
        page = (
            select(both)
            .order_by(both.c[_PART], *ordered(both.c[KEY], both.c[TIEBREAK]))
            .limit(limit)
            .subquery("page")
        )
        return (
            stmt.join(page, tb == page.c[TIEBREAK])
            .add_columns(page.c[KEY], page.c[TIEBREAK])
            .order_by(page.c[_PART], *ordered(page.c[KEY], page.c[TIEBREAK]))
        )

    def key_of(self, row: Any) -> tuple[Any, Any]:
        """The sort key of a row of ``rows_statement``."""
        mapping = row._mapping
        return mapping[KEY], mapping[TIEBREAK]

    def encode_cursor(self, row: Any, filters: Mapping[str, Any] | None = None) -> str:
        """The cursor of the rows after ``row``, in a list with these filter values
        (``filter_values``): they travel along when they fit, their fingerprint always."""
        value, tb_value = self.key_of(row)
        payload: dict[str, Any] = {
            "s": self.raw,
            "k": [_encode_value(value), _encode_value(tb_value)],
        }
        if filters:
            payload["f"] = fingerprint(filters)
            carrying = _b64_json({**payload, "w": dict(filters)})
            if len(carrying) <= MAX_CURSOR_LENGTH:
                return carrying
        return _b64_json(payload)

    def decode_key(self, key: Any) -> tuple[Any, Any]:
        """The key of a cursor of this sort, every value range-checked: anything the
        database cannot hold (or that this list never hands out) raises ``ValueError``."""
        if not isinstance(key, list):
            _bad()
        value, tb_value = key
        if value is None and not self.field.nullable:
            _bad()
        return (
            None if value is None else _decode(self.field, value),
            _decode(self.sorting.tiebreak, tb_value),
        )


def sort_values(sorting: Sorting) -> list[str]:
    """Every accepted value of ``sort``: each field, ascending and descending."""
    return [v for name in sorting.fields for v in (name, f"-{name}")]


def sort_enum(name: str, sorting: Sorting) -> type[StrEnum]:
    """An enum of the accepted ``sort`` values, so the contract lists them."""
    return StrEnum(name, {v: v for v in sort_values(sorting)})  # type: ignore[return-value]


# --- filters: normalized values and their fingerprint ---------------------------------------


def _normalized(value: Any) -> Any:
    if isinstance(value, Enum):
        return _normalized(value.value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):  # repeatable filters are sets
        return sorted({_normalized(v) for v in value})
    return value


def filter_values(filters: BaseModel | None) -> dict[str, Any]:
    """The filters that are set, normalized (sets sorted, instants in UTC): two requests
    for the same rows have the same values, and so the same fingerprint."""
    if filters is None:
        return {}
    values = {name: _normalized(v) for name, v in filters.model_dump(exclude_none=True).items()}
    return {name: v for name, v in values.items() if v != []}


def fingerprint(values: Mapping[str, Any]) -> str:
    """A short hash of normalized filter values."""
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()[:9]).decode()


_FINGERPRINT = re.compile(r"[A-Za-z0-9_-]{12}")


@dataclass(frozen=True)
class _FilterCarrier:
    """Reads the filter values a cursor carries exactly as the query string's: through a
    model of the filter dependency's own parameters (same types and bounds), then the model
    the dependency answers (a filter dependency only builds it from its parameters: they
    are its fields, which ``of`` checks)."""

    params: type[BaseModel]
    build: Callable[..., Any]

    @classmethod
    def of(cls, dependency: Callable[..., Any]) -> _FilterCarrier:
        hints = get_type_hints(dependency, include_extras=True)
        fields: dict[str, Any] = {
            name: (hints[name], param.default)
            for name, param in inspect.signature(dependency).parameters.items()
        }
        params = create_model(
            f"{dependency.__name__}_in_cursor",
            __config__=ConfigDict(extra="forbid"),
            **fields,
        )
        model = hints.get("return")
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{dependency.__name__} must return a pydantic model")
        if set(model.model_fields) != set(params.model_fields):
            raise TypeError(f"{dependency.__name__}: its parameters must be its model's fields")
        return cls(params, model)

    def filters_of(self, values: Any) -> Any:
        if not isinstance(values, dict) or not values:
            _bad()
        parsed = self.params.model_validate(values)  # pydantic's ValidationError: a ValueError
        filters = self.build(**{name: getattr(parsed, name) for name in self.params.model_fields})
        if filter_values(filters) != values:
            _bad()  # not the normalized form this app writes
        return filters


# --- cursors --------------------------------------------------------------------------------


def _b64_json(payload: Any) -> str:
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _invalid_cursor(detail: str) -> ValidationFailed:
    return ValidationFailed(
        detail,
        code="invalid_cursor",
        errors=[FieldError(("query", "cursor"), detail, "invalid_cursor")],
    )


NOT_HANDED_OUT = "The cursor is not one this list handed out."
OTHER_FILTERS = (
    "The cursor was made for other filters; send it alone or with the filters it was made "
    "with, or start again without a cursor."
)
UNCARRIED_FILTERS = (
    "The cursor was made for other filters, too long to travel in it; send it with the "
    "filters it was made with."
)
_CURSOR_FIELDS = frozenset({"s", "k", "f", "w"})


@dataclass(frozen=True)
class _Cursor:
    spec: SortSpec
    key: tuple[Any, Any]
    fingerprint: str | None  # of the filters it was made with; None: no filters
    filters: Any  # those filters, when the cursor carries them
    values: dict[str, Any]


def _read_cursor(
    cursor: str, sorting: Sorting, sorts: frozenset[str], carrier: _FilterCarrier | None
) -> _Cursor:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(
            base64.urlsafe_b64decode(padded.encode("ascii")),
            parse_constant=_no_constant,
            parse_float=_no_float,
        )
        if not isinstance(payload, dict) or not _CURSOR_FIELDS.issuperset(payload):
            _bad()
        sort = payload["s"]
        if not isinstance(sort, str) or sort not in sorts:
            _bad()
        spec = sorting.parse(sort)
        key = spec.decode_key(payload["k"])
        made_for, carried = payload.get("f"), payload.get("w")
        filters, values = None, {}
        if made_for is None:
            if carried is not None:
                _bad()
        else:
            if carrier is None or not isinstance(made_for, str):
                _bad()
            if not _FINGERPRINT.fullmatch(made_for):
                _bad()
            if carried is not None:
                filters, values = carrier.filters_of(carried), carried
                if fingerprint(values) != made_for:
                    _bad()
    except (
        ValueError,  # also UnicodeError, json.JSONDecodeError, binascii.Error, ValidationError
        TypeError,
        KeyError,
        ArithmeticError,  # InvalidOperation, OverflowError
        RecursionError,
    ):
        raise _invalid_cursor(NOT_HANDED_OUT) from None
    return _Cursor(spec, key, made_for, filters, values)


# --- the request of one page ----------------------------------------------------------------


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )
    total: int | None = Field(
        default=None, description="Number of matching items; only with `include_total=true`."
    )


@dataclass(frozen=True)
class PageParams:
    """The paging query parameters as given."""

    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    include_total: bool = False


@dataclass(frozen=True)
class PageRequest(Generic[F]):
    """One page of one list: its sort, where it starts, and the list's filters (from the
    query string, or carried by the cursor)."""

    spec: SortSpec
    limit: int
    include_total: bool
    key: tuple[Any, Any] | None
    filters: F  # None for a list without filters
    filter_values: Mapping[str, Any] = dataclass_field(default_factory=dict)


@dataclass
class RawPage(Generic[T]):
    rows: Sequence[T]
    next_cursor: str | None
    total: int | None


CURSOR_DESCRIPTION = (
    "`next_cursor` of the previous page. It carries that page's sort and filters: sent alone "
    "it continues the same list; sent with another `sort` or other filters it is refused "
    "(422 `invalid_cursor`). Filters too long to travel in a cursor must be sent with it."
)


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=MAX_CURSOR_LENGTH, description=CURSOR_DESCRIPTION),
    ] = None,
    include_total: Annotated[
        StrictBool, Query(description="Also count every matching item (`total`)")
    ] = False,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor, include_total=include_total)


def page_request(
    sorting: Sorting,
    page: PageParams,
    *,
    sort: str | None = None,
    filters: Any = None,
    sorts: frozenset[str] | None = None,
    carrier: _FilterCarrier | None = None,
) -> PageRequest[Any]:
    """The page asked for: ``sort`` and ``filters`` as given (None: not given), resolved
    with the cursor's. ``sorts``: the sorts this list offers (default: all of ``sorting``)."""
    values = filter_values(filters)
    given = sorting.parse(sort) if sort is not None else None
    if page.cursor is None:
        spec = given or sorting.parse(None)
        return PageRequest(spec, page.limit, page.include_total, None, filters, values)
    offered = sorts if sorts is not None else frozenset(sort_values(sorting))
    cursor = _read_cursor(page.cursor, sorting, offered, carrier)
    if given is not None and given.raw != cursor.spec.raw:
        raise _invalid_cursor(
            f"The cursor was made for sort={cursor.spec.raw}; send it alone or with that "
            "sort, or start again without a cursor."
        )
    if values:
        if fingerprint(values) != cursor.fingerprint:
            raise _invalid_cursor(OTHER_FILTERS)
    elif cursor.fingerprint is not None:  # alone: the cursor's own filters
        if cursor.filters is None:
            raise _invalid_cursor(UNCARRIED_FILTERS)
        filters, values = cursor.filters, cursor.values
    return PageRequest(cursor.spec, page.limit, page.include_total, cursor.key, filters, values)


def list_params(
    sorting: Sorting,
    *,
    sort: type[StrEnum] | None = None,
    sort_description: str = "",
    filters: Callable[..., Any] | None = None,
) -> Callable[..., Awaitable[PageRequest[Any]]]:
    """The one FastAPI dependency of a list: its ``sort`` (when it offers a choice: ``sort``
    is the enum of ``sort_enum``), its ``filters`` dependency (if any), and the paging
    parameters, resolved with the cursor into a ``PageRequest``.

    Query parameters in the contract: ``sort``, then the filters', then ``limit``, ``cursor``,
    ``include_total``.
    """
    carrier = _FilterCarrier.of(filters) if filters is not None else None
    sorts = frozenset(sort_values(sorting) if sort is not None else [sorting.default])

    async def dependency(**params: Any) -> PageRequest[Any]:
        chosen = params.get("sort")
        return page_request(
            sorting,
            params["page"],
            sort=None if chosen is None else str(chosen.value),
            filters=params.get("filters"),
            sorts=sorts,
            carrier=carrier,
        )

    parameters = []
    if sort is not None:
        parameters.append(
            inspect.Parameter(
                "sort",
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[sort | None, Query(description=sort_description)],
            )
        )
    if filters is not None:
        parameters.append(
            inspect.Parameter(
                "filters",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[Any, Depends(filters)],
            )
        )
    parameters.append(
        inspect.Parameter(
            "page",
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[PageParams, Depends(page_params)],
        )
    )
    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        parameters, return_annotation=PageRequest
    )
    return dependency


# --- running pages --------------------------------------------------------------------------


def _items(stmt: Any, rows: Sequence[Row[Any]]) -> list[Any]:
    """The items of result rows: the entity (or the tuple of entities) when ``stmt`` selects
    ORM entities, else the row itself (named columns, the sort key columns among them)."""
    described = stmt.column_descriptions
    if not all(d["entity"] is not None and d["expr"] is d["entity"] for d in described):
        return list(rows)
    width = len(described)
    return [row[0] if width == 1 else tuple(row[:width]) for row in rows]


def paginate(
    session: Session,
    stmt: Any,  # a filtered SELECT, unordered
    *,
    sorting: Sorting,
    request: PageRequest[Any],
) -> RawPage[Any]:
    """Run one page of ``stmt`` under the request's sort and cursor."""
    if request.spec.sorting is not sorting:
        raise ValueError("the page request was made for another list")
    total = None
    if request.include_total:
        total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    paged = request.spec.rows_statement(stmt, request.key, request.limit + 1)
    rows = list(session.execute(paged).all())
    next_cursor = None
    if len(rows) > request.limit:
        rows = rows[: request.limit]
        next_cursor = request.spec.encode_cursor(rows[-1], request.filter_values)
    return RawPage(rows=_items(stmt, rows), next_cursor=next_cursor, total=total)


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
        yield from _items(stmt, rows)
        if len(rows) < batch_size:
            return
        key = spec.key_of(rows[-1])


# Held here: pydantic keeps parametrized models in a weak cache, and a class is collected only
# by a full garbage collection, after which ``Page[Any]`` in a request would build the model
# again (milliseconds).
_ANY_PAGE = Page[Any]


def page_response(result: RawPage[Any], items: Sequence[BaseModel | dict[str, Any]]) -> Response:
    """The JSON answer of a list: its items (already converted: response models, or their
    JSON as dicts), cursor and total."""
    page = _ANY_PAGE.model_construct(
        items=list(items), next_cursor=result.next_cursor, total=result.total
    )
    return Response(content=page.model_dump_json(), media_type="application/json")


def page_json_response(result: RawPage[str]) -> Response:
    """The JSON answer of a list whose items are already JSON text (``Page``'s fields, in
    its order): nothing is parsed or serialized again."""
    cursor, total = json.dumps(result.next_cursor), json.dumps(result.total)
    body = f'{{"items":[{",".join(result.rows)}],"next_cursor":{cursor},"total":{total}}}'
    return Response(content=body.encode(), media_type="application/json")
