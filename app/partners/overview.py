"""The CRM overview's columns, declared once, in order: the overview is a view of partners
(the ``crm`` domain serves it; the partner events render its rows too).

Each column has its name (the JSON field and the CSV header), its JSON type, the SQL it reads,
how a result row renders as its JSON value and as its CSV cell, and its sort when it has one.
The row schema (``OverviewRow``), the statement (``overview_select``), the JSON
rows, the CSV header and cells, and the sorts (``OVERVIEW_SORTING``) are all made from this
list: a new column is one entry here (plus, if it sorts, its index: ``OVERVIEW_SORT_COLUMNS``
of the model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from operator import attrgetter
from typing import Any

from pydantic import BaseModel, create_model
from sqlalchemy import func, literal, select

from app.core.money import format_money
from app.core.pagination import SortField
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


@dataclass(frozen=True)
class Column:
    name: str
    type: Any  # of the JSON field
    sql: Callable[[str], tuple[Any, ...]]  # the labelled expressions it reads, per dialect
    json: Callable[[Row], Any]
    csv: Callable[[Row], str]
    sort: SortField | None = None


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
        agg = func.string_agg(Tag.name, literal(TAG_SEPARATOR))
    else:
        agg = func.group_concat(Tag.name, TAG_SEPARATOR)
    return (names.with_only_columns(agg).scalar_subquery().label("tags"),)


def _owner(row: Row) -> UserRef | None:
    return UserRef.model_construct(id=row.owner_id, name=row.owner_name) if row.owner_id else None


def _partner(
    name: str,
    json_type: Any,
    cell: Callable[[Any], str],
    *,
    sort: SortField | None = None,
) -> Column:
    """A column that is the partner's own column of the same name."""
    get = attrgetter(name)
    column = getattr(Partner, name)
    return Column(name, json_type, lambda dialect: (column,), get, lambda row: cell(get(row)), sort)


# In the order of the seed page; every sort but `number` has a partial index of the model.
OVERVIEW_COLUMNS: tuple[Column, ...] = (
    _partner("number", int, _plain_cell, sort=PARTNER_NUMBER),
    _partner("name", str, text_cell, sort=SortField.of(Partner.name)),
    _partner("country", str, _plain_cell, sort=SortField.of(Partner.country)),
    _partner("credit_limit", Money | None, _money_cell, sort=SortField.of(Partner.credit_limit)),
    _partner(
        "debtor_balance", Money | None, _money_cell, sort=SortField.of(Partner.debtor_balance)
    ),
    _partner("debtor_balance_synced_at", UTCDateTime | None, _utc_cell),
    _partner(
        "credit_limit_exceeded",
        bool,
        _bool_cell,
        sort=SortField.of(Partner.credit_limit_exceeded),
    ),
    _partner("uninvoiced_total", Money, _money_cell, sort=SortField.of(Partner.uninvoiced_total)),
    Column(
        "tags",
        list[str],
        _tags_sql,
        json=lambda row: split_tags(row.tags),
        csv=lambda row: text_cell(";".join(split_tags(row.tags))),
    ),
    _partner(
        "latest_sales_delivery_date",
        date | None,
        _date_cell,
        sort=SortField.of(Partner.latest_sales_delivery_date),
    ),
    Column(
        "owner",
        UserRef | None,
        lambda dialect: (Partner.owner_id, Partner.owner_name),
        json=_owner,
        csv=lambda row: text_cell(row.owner_name),
        sort=SortField.of(Partner.owner_name),
    ),
    Column(
        "customer_stage",
        CustomerStage,
        lambda dialect: (Partner.customer_stage,),
        json=lambda row: CustomerStage(row.customer_stage),
        csv=lambda row: row.customer_stage,
        # Every overview row has a stage, so its rank is never null here.
        sort=SortField.of(Partner.stage_rank, nullable=False),
    ),
)


# One overview row: a field per column, in column order.
_ROW_FIELDS: dict[str, Any] = {column.name: (column.type, ...) for column in OVERVIEW_COLUMNS}
OverviewRow = create_model(
    "OverviewRow", __base__=ResponseModel, __module__=__name__, **_ROW_FIELDS
)


def overview_select(dialect: str, company_id: Any, f: PartnerFilter | None = None) -> Any:
    """The overview rows of the company (those matching ``f``), unordered: the base of every
    page, export and partner event that carries a row."""
    stmt = select(*(expr for column in OVERVIEW_COLUMNS for expr in column.sql(dialect))).where(
        Partner.company_id == company_id, Partner.customer_stage.is_not(None)
    )
    return stmt.where(*filter_conditions(company_id, f)) if f is not None else stmt


def row_of(row: Row) -> BaseModel:
    """An overview row from a result row, without validation: the database is the source."""
    return OverviewRow.model_construct(**{c.name: c.json(row) for c in OVERVIEW_COLUMNS})
