"""The CRM overview's columns, declared once, in order: the overview is a view of partners
(the ``crm`` domain serves it; the partner events render its rows too).

Each column has its name (the JSON field and the CSV/XLSX header), its JSON type, the SQL it
reads, how a result row renders as its JSON value, as its CSV cell and as its spreadsheet cell,
and its sort when it has one. The row schema (``OverviewRow``), the statement
(``overview_select``), the JSON rows, the CSV and XLSX headers and cells, the sorts
(``OVERVIEW_SORTING``) and the names a saved view's ``columns`` may use (``OverviewField``) are
all made from this list: a new column is one entry here (plus, if it sorts, its index:
``OVERVIEW_SORT_COLUMNS`` of the model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from operator import attrgetter
from typing import Any, Literal

from pydantic import ConfigDict, create_model
from sqlalchemy import Text, case, cast, func, literal, literal_column, null, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.sql.elements import Label

from app.core.money import format_money
from app.core.pagination import SortField, Sorting, sort_enum
from app.core.schemas import ResponseModel
from app.core.types import Money, UTCDateTime, format_utc
from app.models import Partner, PartnerTag, Tag
from app.models.enums import CustomerStage
from app.partners.repository import PARTNER_NUMBER, filter_conditions
from app.partners.schemas import PartnerFilter
from app.users.schemas import UserRef

TAG_SEPARATOR = "\x1f"  # tag names cannot contain control characters
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

Row = Any  # a result row of the overview statement: its columns by label


# How a column is typed in a spreadsheet (``app.crm.xlsx`` maps each kind to its cell
# format): ``text`` is always written as a string (never a formula), ``money`` as a number
# with two decimals, ``date`` and ``datetime`` (UTC) as Excel dates.
CellKind = Literal["integer", "text", "money", "boolean", "date", "datetime"]


@dataclass(frozen=True)
class Cell:
    """A column's spreadsheet cell: its kind, its value (None: an empty cell) and its width
    (in characters)."""

    kind: CellKind
    value: Callable[[Row], Any]
    width: float


@dataclass(frozen=True)
class Column:
    name: str
    type: Any  # of the JSON field
    sql: Callable[[str], tuple[Any, ...]]  # the labelled expressions it reads, per dialect
    json: Callable[[Row], Any]  # the JSON value, ready to serialize (str, int, bool, None...)
    csv: Callable[[Row], str]
    xlsx: Cell
    sort: SortField | None = None
    # PostgreSQL: the JSON value as SQL, made of the column's own expressions (``sql``'s), the
    # same value ``json`` renders: a page's rows leave the database as JSON text.
    pg_json: Callable[[tuple[Any, ...]], Any] = lambda exprs: exprs[0]


# --- CSV cells ------------------------------------------------------------------------------


def text_cell(value: str | None) -> str:
    """Text that a spreadsheet would run as a formula is prefixed with a quote."""
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _plain_cell(value: Any) -> str:
    return "" if value is None else str(value)


def _money_cell(value: Decimal | None) -> str:
    return "" if value is None else format_money(value)


def _utc_cell(value: Any) -> str:
    return format_utc(value) if value else ""


def _date_cell(value: date | None) -> str:
    return value.isoformat() if value else ""


def _bool_cell(value: bool) -> str:
    return "true" if value else "false"


# --- the columns ----------------------------------------------------------------------------


def split_tags(value: str | None) -> list[str]:
    return sorted(value.split(TAG_SEPARATOR), key=str.lower) if value else []


def _tags_sql(dialect: str) -> tuple[Any, ...]:
    """The partner's tag names in one text (an aggregate subquery: no per-row queries)."""
    names = (
        select(Tag.name)
        .join(PartnerTag, (PartnerTag.company_id == Tag.company_id) & (PartnerTag.tag_id == Tag.id))
        .where(PartnerTag.company_id == Partner.company_id, PartnerTag.partner_id == Partner.id)
    )
    if dialect == "postgresql":
        # In the order split_tags sorts them (``name_key`` is the name lowercased, and "C"
        # compares code points as Python does), for the JSON the database renders.
        agg = func.string_agg(
            Tag.name, aggregate_order_by(literal(TAG_SEPARATOR), Tag.name_key.collate("C"))
        )
    else:
        agg = func.group_concat(Tag.name, TAG_SEPARATOR)
    return (names.with_only_columns(agg).scalar_subquery().label("tags"),)


def _owner(row: Row) -> dict[str, str] | None:
    """``UserRef`` as JSON."""
    return {"id": str(row.owner_id), "name": row.owner_name} if row.owner_id else None


# --- JSON values (as the row schema's types serialize them) --------------------------------


def _as_is(value: Any) -> Any:
    return value


def _money_json(value: Decimal | None) -> str | None:
    return None if value is None else format_money(value)


def _utc_json(value: Any) -> str | None:
    return None if value is None else format_utc(value)


def _date_json(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


# --- the same JSON values as PostgreSQL renders them ----------------------------------------
# (json_build_object writes a date as ISO 8601 and a uuid as its text already.)


def _money_pg(exprs: tuple[Any, ...]) -> Any:
    return cast(exprs[0], Text)  # NUMERIC(p, 2) as text: "1234.50", as format_money writes it


def _utc_pg(exprs: tuple[Any, ...]) -> Any:
    return func.to_char(func.timezone("UTC", exprs[0]), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')


def _tags_pg(exprs: tuple[Any, ...]) -> Any:
    return func.coalesce(
        func.to_json(func.string_to_array(exprs[0], literal(TAG_SEPARATOR))),
        literal_column("'[]'::json"),
    )


def _owner_pg(exprs: tuple[Any, ...]) -> Any:
    owner_id, owner_name = exprs
    return case(
        (owner_id.is_(None), null()),
        else_=func.json_build_object(
            literal_column("'id'"), owner_id, literal_column("'name'"), owner_name
        ),
    )


_PG_JSON: dict[Callable[[Any], Any], Callable[[tuple[Any, ...]], Any]] = {
    _money_json: _money_pg,
    _utc_json: _utc_pg,
}


def _partner(
    name: str,
    json_type: Any,
    cell: Callable[[Any], str],
    kind: CellKind,
    width: float,
    *,
    sort: SortField | None = None,
    to_json: Callable[[Any], Any] = _as_is,
) -> Column:
    """A column that is the partner's own column of the same name."""
    get = attrgetter(name)
    column = getattr(Partner, name)
    return Column(
        name,
        json_type,
        lambda dialect: (column,),
        get if to_json is _as_is else lambda row: to_json(get(row)),
        lambda row: cell(get(row)),
        Cell(kind, get, width),
        sort,
        _PG_JSON.get(to_json, lambda exprs: exprs[0]),
    )


def _tags_text(row: Row) -> str | None:
    return ";".join(split_tags(row.tags)) or None


# In the order of the seed page; every sort but `number` has a partial index of the model.
OVERVIEW_COLUMNS: tuple[Column, ...] = (
    _partner("number", int, _plain_cell, "integer", 10, sort=PARTNER_NUMBER),
    _partner("name", str, text_cell, "text", 36, sort=SortField.of(Partner.name)),
    _partner("country", str, _plain_cell, "text", 9, sort=SortField.of(Partner.country)),
    _partner(
        "credit_limit",
        Money | None,
        _money_cell,
        "money",
        15,
        sort=SortField.of(Partner.credit_limit),
        to_json=_money_json,
    ),
    _partner(
        "debtor_balance",
        Money | None,
        _money_cell,
        "money",
        15,
        sort=SortField.of(Partner.debtor_balance),
        to_json=_money_json,
    ),
    _partner(
        "debtor_balance_synced_at",
        UTCDateTime | None,
        _utc_cell,
        "datetime",
        22,
        to_json=_utc_json,
    ),
    _partner(
        "credit_limit_exceeded",
        bool,
        _bool_cell,
        "boolean",
        12,
        sort=SortField.of(Partner.credit_limit_exceeded),
    ),
    _partner(
        "uninvoiced_total",
        Money,
        _money_cell,
        "money",
        15,
        sort=SortField.of(Partner.uninvoiced_total),
        to_json=_money_json,
    ),
    Column(
        "tags",
        list[str],
        _tags_sql,
        json=lambda row: split_tags(row.tags),
        csv=lambda row: text_cell(";".join(split_tags(row.tags))),
        xlsx=Cell("text", _tags_text, 30),
        pg_json=_tags_pg,
    ),
    _partner(
        "latest_sales_delivery_date",
        date | None,
        _date_cell,
        "date",
        14,
        sort=SortField.of(Partner.latest_sales_delivery_date),
        to_json=_date_json,
    ),
    Column(
        "owner",
        UserRef | None,
        lambda dialect: (Partner.owner_id, Partner.owner_name),
        json=_owner,
        csv=lambda row: text_cell(row.owner_name),
        xlsx=Cell("text", attrgetter("owner_name"), 24),
        sort=SortField.of(Partner.owner_name),
        pg_json=_owner_pg,
    ),
    Column(
        "customer_stage",
        CustomerStage,
        lambda dialect: (Partner.customer_stage,),
        json=attrgetter("customer_stage"),
        csv=lambda row: row.customer_stage,
        xlsx=Cell("text", attrgetter("customer_stage"), 12),
        # Every overview row has a stage, so its rank is never null here.
        sort=SortField.of(Partner.stage_rank, nullable=False),
    ),
)
_BY_NAME = {column.name: column for column in OVERVIEW_COLUMNS}

# One sort per sortable column. Each but `number` has a partial index of its own:
# (company, column, number) where the partner has a stage (OVERVIEW_SORT_COLUMNS of the model).
OVERVIEW_SORTING = Sorting(
    fields={c.name: c.sort for c in OVERVIEW_COLUMNS if c.sort is not None},
    tiebreak=PARTNER_NUMBER,
    default="number",
)
# The accepted `sort` values (the query parameter's, and a saved view's).
OverviewSort = sort_enum("OverviewSort", OVERVIEW_SORTING)
# The names a saved view's `columns` may hold.
OverviewField = StrEnum(  # type: ignore[misc]
    "OverviewField", {column.name: column.name for column in OVERVIEW_COLUMNS}
)


def columns_named(names: Sequence[str] | None) -> tuple[Column, ...]:
    """The columns of these names, in this order (every column for None)."""
    return OVERVIEW_COLUMNS if names is None else tuple(_BY_NAME[name] for name in names)


# One overview row: a field per column, in column order. Every field is there, except where a
# saved view's `columns` picks fewer: then exactly those, in that order. The contract says so
# honestly: no field is `required` in its schema, and none is nullable unless its value can be
# null (a field that is there has its type). The model itself still requires every field.
ROW_DESCRIPTION = (
    "One partner with a customer stage. Every field is present, in this order, unless the "
    "request applies a saved view (`view`) whose `columns` picks fewer: then exactly those "
    "fields, in the view's order."
)
_ROW_FIELDS: dict[str, Any] = {column.name: (column.type, ...) for column in OVERVIEW_COLUMNS}


def _none_required(schema: dict[str, Any]) -> None:
    schema.pop("required", None)


class _RowBase(ResponseModel):
    model_config = ConfigDict(json_schema_extra=_none_required)


OverviewRow = create_model(
    "OverviewRow",
    __base__=_RowBase,
    __module__=__name__,
    __doc__=ROW_DESCRIPTION,
    **_ROW_FIELDS,
)


@lru_cache(maxsize=4)
def _column_sql(dialect: str) -> dict[str, tuple[Any, ...]]:
    """Each column's labelled expressions, built once per dialect (the tags subquery costs
    more to build than the page costs to run)."""
    return {column.name: column.sql(dialect) for column in OVERVIEW_COLUMNS}


@lru_cache(maxsize=4)
def _selected(dialect: str) -> tuple[Any, ...]:
    """The labelled expressions of every column."""
    return tuple(expr for exprs in _column_sql(dialect).values() for expr in exprs)


@lru_cache(maxsize=256)
def _json_item(names: tuple[str, ...] | None) -> Any:
    """PostgreSQL: an overview row as its JSON text, the object ``row_of`` makes (these
    columns, in this order; None: all)."""
    sql = _column_sql("postgresql")
    pairs: list[Any] = []
    for column in columns_named(names):
        exprs = tuple(e.element if isinstance(e, Label) else e for e in sql[column.name])
        pairs += [literal_column(f"'{column.name}'"), column.pg_json(exprs)]
    return cast(func.json_build_object(*pairs), Text).label("item")


def _matching(stmt: Any, company_id: Any, f: PartnerFilter | None) -> Any:
    stmt = stmt.where(Partner.company_id == company_id, Partner.customer_stage.is_not(None))
    return stmt.where(*filter_conditions(company_id, f)) if f is not None else stmt


def overview_select(dialect: str, company_id: Any, f: PartnerFilter | None = None) -> Any:
    """The overview rows of the company (those matching ``f``), unordered: the base of every
    page, export and partner event that carries a row."""
    return _matching(select(*_selected(dialect)), company_id, f)


def overview_json_select(
    company_id: Any, f: PartnerFilter | None, columns: Sequence[str] | None
) -> Any:
    """PostgreSQL: the rows of ``overview_select`` as their JSON text (``item``), each the
    object ``row_of(row, columns)`` makes, rendered by the database: a page's rows are
    neither converted nor serialized in Python."""
    names = tuple(columns) if columns is not None else None
    return _matching(select(_json_item(names)), company_id, f)


def row_of(row: Row, columns: Sequence[str] | None = None) -> dict[str, Any]:
    """An overview row as JSON (``OverviewRow``'s fields, serialized) from a result row,
    without validation: the database is the source. ``columns``: only these fields, in this
    order (a saved view's; None: all)."""
    if columns is None:
        return {c.name: c.json(row) for c in OVERVIEW_COLUMNS}
    return {name: _BY_NAME[name].json(row) for name in columns}
