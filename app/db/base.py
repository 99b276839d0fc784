"""Declarative base with one naming convention, and the column types every table shares."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import DateTime, MetaData, Numeric
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.types import TypeDecorator

from app.core.money import MONEY_MAX_DIGITS

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ScaledDecimal(TypeDecorator[Decimal]):
    """An exact decimal with a fixed number of places, rounded half-up on the way in.

    PostgreSQL stores it as NUMERIC(precision, scale). SQLite has no exact decimal type (its
    NUMERIC keeps non-integers as 8-byte floats, which lose cents past 15 digits), so there
    the value is stored as a scaled integer: cents for money. SQL arithmetic, comparisons and
    sums stay exact, as every such column of the same scale is scaled alike.
    """

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision, scale)
        self.scale = scale
        self.quantum = Decimal(1).scaleb(-scale)

    def _exact(self, value: Any) -> Decimal:
        return Decimal(value).quantize(self.quantum, rounding=ROUND_HALF_UP)

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return lambda v: None if v is None else int(self._exact(v).scaleb(self.scale))
        return lambda v: None if v is None else self._exact(v)

    def literal_processor(self, dialect: Dialect) -> Any:
        bind = self.bind_processor(dialect)
        return lambda v: str(bind(v))

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name == "sqlite":
            return lambda v: None if v is None else self._exact(Decimal(str(v)).scaleb(-self.scale))
        return lambda v: None if v is None else self._exact(v)

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal


class Money(ScaledDecimal):
    """Money: NUMERIC(16, 2) (cents as integers on SQLite)."""

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(MONEY_MAX_DIGITS, 2)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC timestamp is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def fill_collection(
    parents: Sequence[Any], attribute: str, keyed_children: Iterable[tuple[Any, Any]]
) -> None:
    """Set ``attribute`` (a one-to-many or many-to-many collection) of each of ``parents``, as
    loaded, from ``(parent id, child)`` pairs in the collection's order: the children of a
    page of parents read by one statement of the form their index answers,
    ``company_id = :company AND parent_id IN (...)``. (SQLAlchemy's selectin loading of a
    composite key sends ``(company_id, parent_id) IN ((...), ...)``, which PostgreSQL plans
    as one probe per parent, and for a join once per row of the other table.)"""
    grouped: dict[Any, list[Any]] = {}
    for parent_id, child in keyed_children:
        grouped.setdefault(parent_id, []).append(child)
    for parent in parents:
        set_committed_value(parent, attribute, grouped.get(parent.id, []))
