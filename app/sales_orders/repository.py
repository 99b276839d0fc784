"""All sales order SQL, and the partner columns that orders maintain."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session, joinedload

from app.core.money import quantize_money
from app.core.pagination import PageRequest, RawPage, SortField, Sorting, paginate
from app.db.base import fill_collection, utcnow
from app.models import Partner, SalesOrder, SalesOrderLine
from app.models.enums import UNINVOICED_STATUSES, SalesOrderStatus
from app.partners.repository import exceeded_sql
from app.sales_orders.schemas import SalesOrderFilter

ORDER_NUMBER = SortField.of(SalesOrder.number)
# Each sort but `number` has an index of its own: (company, column, number), see the model.
SALES_ORDER_SORTING = Sorting(
    fields={
        "number": ORDER_NUMBER,
        "order_date": SortField.of(SalesOrder.order_date),
        "delivery_date": SortField.of(SalesOrder.delivery_date),
        "total_base": SortField.of(SalesOrder.total_base),
        "created_at": SortField.of(SalesOrder.created_at),
        "updated_at": SortField.of(SalesOrder.updated_at),
    },
    tiebreak=ORDER_NUMBER,
    default="number",
)


# Which orders count, in every computation of the maintained columns: uninvoiced totals sum
# the open and delivered ones; the latest delivery date skips the cancelled ones.
_UNINVOICED = SalesOrder.status.in_(UNINVOICED_STATUSES)
_NOT_CANCELLED = SalesOrder.status != SalesOrderStatus.cancelled.value


def _differs(stored_total: Any, stored_latest: Any, total: Any, latest: Any) -> Any:
    """SQL: stored maintained columns that are not what the orders say."""
    return or_(stored_total != total, stored_latest.is_distinct_from(latest))


def uninvoiced_total_of(company_id: Any, partner_id: Any) -> Any:
    """SQL: the sum of base totals of a partner's open and delivered orders."""
    return (
        select(func.coalesce(func.sum(SalesOrder.total_base), Decimal("0")))
        .where(
            SalesOrder.company_id == company_id,
            SalesOrder.partner_id == partner_id,
            _UNINVOICED,
        )
        .scalar_subquery()
    )


def latest_delivery_date_of(company_id: Any, partner_id: Any) -> Any:
    """SQL: the latest delivery date of a partner's orders that are not cancelled.

    The status test sits inside max(), not in WHERE: with a bare ``max(delivery_date)``
    SQLite's min/max optimisation walks the (company_id, delivery_date) index backwards
    through the company's orders until it meets one of this partner (all of them for a
    partner without orders), on every order write and for every partner `crm check` looks
    at (15 minutes for 20k partners and 40k orders). This way both databases find the
    partner's orders through (company_id, partner_id, status).
    """
    return (
        select(func.max(case((_NOT_CANCELLED, SalesOrder.delivery_date))))
        .where(SalesOrder.company_id == company_id, SalesOrder.partner_id == partner_id)
        .scalar_subquery()
    )


@dataclass
class SalesOrderRepository:
    session: Session
    company_id: uuid.UUID

    def _select(self) -> Any:
        return (
            select(SalesOrder)
            .where(SalesOrder.company_id == self.company_id)
            .options(joinedload(SalesOrder.partner), joinedload(SalesOrder.owner))
        )

    def _with_lines(self, orders: Sequence[SalesOrder]) -> None:
        """Load the lines of ``orders``, read afresh, with one statement
        (``fill_collection``)."""
        if not orders:
            return
        lines = self.session.scalars(
            select(SalesOrderLine)
            .where(SalesOrderLine.company_id == self.company_id)
            .where(SalesOrderLine.order_id.in_([order.id for order in orders]))
            .order_by(SalesOrderLine.position)
            .execution_options(populate_existing=True)
        )
        fill_collection(orders, "lines", ((line.order_id, line) for line in lines))

    def get(self, number: int, *, for_update: bool = False) -> SalesOrder | None:
        stmt = (
            self._select()
            .where(SalesOrder.number == number)
            .execution_options(populate_existing=True)
        )
        if for_update:
            stmt = stmt.with_for_update(of=SalesOrder)
        order: SalesOrder | None = self.session.scalar(stmt)
        if order is not None:
            self._with_lines([order])
        return order

    def partner_number_of(self, number: int) -> int | None:
        """The number of order ``number``'s partner."""
        return self.session.scalar(
            select(Partner.number)
            .join(
                SalesOrder,
                and_(
                    SalesOrder.company_id == Partner.company_id,
                    SalesOrder.partner_id == Partner.id,
                ),
            )
            .where(SalesOrder.company_id == self.company_id, SalesOrder.number == number)
        )

    def list_(self, f: SalesOrderFilter, page: PageRequest) -> RawPage[SalesOrder]:
        stmt = self._select().where(*self._conditions(f))
        result = paginate(self.session, stmt, sorting=SALES_ORDER_SORTING, request=page)
        self._with_lines(result.rows)
        return result

    def _conditions(self, f: SalesOrderFilter) -> list[Any]:
        conditions: list[Any] = []
        if f.partner_number is not None:
            conditions.append(
                SalesOrder.partner_id
                == select(Partner.id)
                .where(Partner.company_id == self.company_id, Partner.number == f.partner_number)
                .scalar_subquery()
            )
        if f.status:
            conditions.append(SalesOrder.status.in_([s.value for s in f.status]))
        if f.delivery_date_from is not None:
            conditions.append(SalesOrder.delivery_date >= f.delivery_date_from)
        if f.delivery_date_to is not None:
            conditions.append(SalesOrder.delivery_date <= f.delivery_date_to)
        if f.credit_warning is not None:
            warned = and_(
                SalesOrder.status.in_(UNINVOICED_STATUSES),
                select(Partner.credit_limit_exceeded)
                .where(Partner.company_id == self.company_id, Partner.id == SalesOrder.partner_id)
                .scalar_subquery()
                .is_(True),
            )
            conditions.append(warned if f.credit_warning else ~warned)
        if f.updated_since is not None:
            conditions.append(SalesOrder.updated_at >= f.updated_since)
        return conditions

    def add(self, order: SalesOrder) -> None:
        self.session.add(order)
        self.session.flush()

    def partner_totals(self, partner_id: uuid.UUID) -> tuple[Decimal, date | None]:
        """The partner's uninvoiced total and latest delivery date, from its orders."""
        row = self.session.execute(
            select(
                uninvoiced_total_of(self.company_id, partner_id),
                latest_delivery_date_of(self.company_id, partner_id),
            )
        ).one()
        return quantize_money(Decimal(str(row[0]))), row[1]


def partner_total_drift(
    session: Session, company_id: uuid.UUID, *, partner_ids: list[Any] | None = None
) -> list[Any]:
    """Partners whose stored uninvoiced total or latest delivery date differ from their orders
    (of all the company's partners, or of these), by number.

    One statement: it reads one snapshot, so a write committed meanwhile (which changes a
    partner's orders and columns together) never shows as drift. Each partner's orders are
    found through the (company_id, partner_id, status) index.
    """
    uninvoiced = uninvoiced_total_of(Partner.company_id, Partner.id)
    latest = latest_delivery_date_of(Partner.company_id, Partner.id)
    computed = (
        select(
            Partner.id,
            Partner.number,
            Partner.uninvoiced_total,
            Partner.latest_sales_delivery_date,
            uninvoiced.label("expected_uninvoiced_total"),
            latest.label("expected_latest_sales_delivery_date"),
        )
        .where(Partner.company_id == company_id)
        .where(*([Partner.id.in_(partner_ids)] if partner_ids is not None else []))
        .subquery()
    )
    stmt = (
        select(computed)
        .where(
            _differs(
                computed.c.uninvoiced_total,
                computed.c.latest_sales_delivery_date,
                computed.c.expected_uninvoiced_total,
                computed.c.expected_latest_sales_delivery_date,
            )
        )
        .order_by(computed.c.number)
    )
    return list(session.execute(stmt).all())


def _partner_totals(company_id: uuid.UUID, partner_ids: list[Any] | None) -> Any:
    """Per partner of the company that has orders (of ``partner_ids``; None: every one), its
    uninvoiced total and latest delivery date, as ``uninvoiced_total_of`` and
    ``latest_delivery_date_of`` define them, from one pass over its orders (one scan of the
    company's orders for all of them)."""
    uninvoiced = case((_UNINVOICED, SalesOrder.total_base))
    stmt = (
        select(
            SalesOrder.partner_id.label("id"),
            func.coalesce(func.sum(uninvoiced), Decimal("0")).label("uninvoiced_total"),
            func.max(case((_NOT_CANCELLED, SalesOrder.delivery_date))).label("latest"),
        )
        .where(SalesOrder.company_id == company_id)
        .group_by(SalesOrder.partner_id)
    )
    if partner_ids is not None:
        stmt = stmt.where(SalesOrder.partner_id.in_(partner_ids))
    return stmt.subquery("totals")


def repair_partner_totals(
    session: Session,
    company_id: uuid.UUID,
    partner_ids: list[Any] | None,
    *,
    credit_check: str | None = None,
) -> None:
    """Recompute the maintained columns of these partners (None: every partner of the
    company, with one scan of its orders) from their orders (set-based); those already right
    are left as they are.

    With the company's ``credit_check`` their credit state follows the new uninvoiced totals
    too, as after an order write (the caller has locked them).
    """
    chunks = (
        [None]
        if partner_ids is None
        else [partner_ids[start : start + 1000] for start in range(0, len(partner_ids), 1000)]
    )
    for chunk in chunks:
        totals = _partner_totals(company_id, chunk)
        in_chunk = [Partner.company_id == company_id]
        if chunk is not None:
            in_chunk.append(Partner.id.in_(chunk))
        # Partners without orders: nothing uninvoiced, no delivery date.
        has_orders = (
            select(SalesOrder.id)
            .where(SalesOrder.company_id == Partner.company_id, SalesOrder.partner_id == Partner.id)
            .exists()
        )
        session.execute(
            update(Partner)
            .where(
                *in_chunk,
                ~has_orders,
                _differs(Partner.uninvoiced_total, Partner.latest_sales_delivery_date, 0, None),
            )
            .values(
                uninvoiced_total=Decimal("0"),
                latest_sales_delivery_date=None,
                version=Partner.version + 1,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Partner)
            .where(
                Partner.company_id == company_id,
                Partner.id == totals.c.id,
                # A partner whose columns are right is not written (nor its version moved).
                _differs(
                    Partner.uninvoiced_total,
                    Partner.latest_sales_delivery_date,
                    totals.c.uninvoiced_total,
                    totals.c.latest,
                ),
            )
            .values(
                uninvoiced_total=totals.c.uninvoiced_total,
                latest_sales_delivery_date=totals.c.latest,
                version=Partner.version + 1,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        if credit_check is not None:
            exceeded = exceeded_sql(credit_check)
            session.execute(
                update(Partner)
                .where(*in_chunk, Partner.credit_limit_exceeded != exceeded)
                .values(credit_limit_exceeded=exceeded)
                .execution_options(synchronize_session=False)
            )
