"""Sales order use-cases.

Every write waits for its partner's turn and locks the partner row first, then changes the
order and the partner's maintained columns (uninvoiced total, latest delivery date), all in
one transaction. Writers of one partner therefore take turns, and the columns stay exact under
concurrent writers: a new order adds itself to them; an edit or a transition recomputes them
from the partner's orders, seeing every order committed before it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.auth.dependencies import Principal
from app.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.core.etags import check_if_match, etag
from app.core.money import CENT, format_money, quantize_money
from app.core.pagination import PageRequest, RawPage
from app.core.types import MONEY_LIMIT
from app.db.base import utcnow
from app.db.session import Database
from app.events import outbox
from app.events.types import EventType
from app.idempotency.service import Idempotency
from app.models import Company, Partner, SalesOrder, SalesOrderLine, User
from app.models.enums import (
    UNINVOICED_STATUSES,
    CreditEnforcement,
    CustomerStage,
    SalesOrderStatus,
    StageChangeReason,
)
from app.numbers.repository import next_number
from app.partners import credit
from app.partners import events as partner_events
from app.partners.repository import PartnerRepository
from app.partners.service import check_owner
from app.partners.stages import change_stage
from app.sales_orders.repository import (
    SalesOrderRepository,
    partner_total_drift,
    repair_partner_totals,
)
from app.sales_orders.schemas import (
    LineIn,
    SalesOrderCreate,
    SalesOrderFilter,
    SalesOrderRead,
    SalesOrderUpdate,
)

HUNDRED = Decimal(100)
# Partners one repair transaction locks and fixes.
REPAIR_CHUNK = 500

# Allowed transitions: action -> (statuses it may start from, status it leads to).
TRANSITIONS: dict[str, tuple[tuple[SalesOrderStatus, ...], SalesOrderStatus]] = {
    "deliver": ((SalesOrderStatus.open,), SalesOrderStatus.delivered),
    "invoice": ((SalesOrderStatus.open, SalesOrderStatus.delivered), SalesOrderStatus.invoiced),
    "cancel": ((SalesOrderStatus.open,), SalesOrderStatus.cancelled),
}


def _storable(amount: Decimal, where: tuple[str | int, ...]) -> Decimal:
    """An amount rounded half-up to the cent, or 422 when it does not fit a money column."""
    if abs(amount) >= MONEY_LIMIT:
        raise ValidationFailed(
            "An amount of this order is too large to store (at most 14 digits before the "
            "decimal point).",
            code="amount_out_of_range",
            errors=[FieldError(("body", *where), "amount too large", "amount_out_of_range")],
        )
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def line_total(
    quantity: Decimal, unit_price: Decimal, discount_percent: Decimal, *, index: int = 0
) -> Decimal:
    """quantity x unit price x (1 - discount/100), rounded half-up to the cent."""
    exact = quantity * unit_price * (HUNDRED - discount_percent) / HUNDRED
    return _storable(exact, ("lines", index))


def order_total(lines: list[SalesOrderLine]) -> Decimal:
    return _storable(sum((line.total for line in lines), Decimal("0.00")), ("lines",))


def base_total(total: Decimal, exchange_rate: Decimal) -> Decimal:
    return _storable(total * exchange_rate, ("exchange_rate",))


def _line_rows(order: SalesOrder, items: list[LineIn]) -> list[SalesOrderLine]:
    return [
        SalesOrderLine(
            company_id=order.company_id,
            position=index,
            description=item.description,
            sku=item.sku,
            quantity=item.quantity,
            unit_price=item.unit_price,
            discount_percent=item.discount_percent,
            total=line_total(item.quantity, item.unit_price, item.discount_percent, index=index),
        )
        for index, item in enumerate(items)
    ]


def _exchange_rate(
    base_currency: str, currency: str, rate: Decimal | None, *, field: str = "exchange_rate"
) -> Decimal:
    if currency == base_currency:
        if rate is not None and rate != 1:
            raise ValidationFailed(
                f"The order is in the base currency {base_currency}: the exchange rate is 1.",
                code="invalid_exchange_rate",
                errors=[
                    FieldError(
                        ("body", field), "must be 1 for the base currency", "invalid_exchange_rate"
                    )
                ],
            )
        return Decimal(1)
    if rate is None:
        raise ValidationFailed(
            f"An order in {currency} needs an exchange rate to {base_currency}.",
            code="exchange_rate_required",
            errors=[
                FieldError(
                    ("body", field),
                    f"required when the currency is not {base_currency}",
                    "exchange_rate_required",
                )
            ],
        )
    return rate


def credit_warning(order: SalesOrder) -> bool:
    return bool(order.partner.credit_limit_exceeded) and order.status in UNINVOICED_STATUSES


def etag_of(order: SalesOrder, company_version: int) -> str:
    """An order reads its partner's credit state and its company's base currency too."""
    return etag(order.version, order.partner.version, company_version)


def read(order: SalesOrder, base_currency: str) -> SalesOrderRead:
    warn = credit_warning(order)
    partner = order.partner
    warnings = []
    if warn:
        balance = partner.debtor_balance or Decimal(0)
        limit = partner.credit_limit or Decimal(0)
        warnings.append(
            {
                "code": "credit_limit_exceeded",
                "message": f"Partner {partner.number} is over its credit limit: balance "
                f"{format_money(balance)} {base_currency}, limit {format_money(limit)} "
                f"{base_currency}.",
            }
        )
    return SalesOrderRead.model_validate(
        {
            "id": order.id,
            "number": order.number,
            "partner_number": partner.number,
            "status": order.status,
            "order_date": order.order_date,
            "delivery_date": order.delivery_date,
            "currency": order.currency,
            "exchange_rate": order.exchange_rate,
            "reference": order.reference,
            "owner": order.owner,
            "lines": order.lines,
            "total": order.total,
            "total_base": order.total_base,
            "credit_warning": warn,
            "warnings": warnings,
            "created_at": order.created_at,
            "updated_at": order.updated_at,
            "delivered_at": order.delivered_at,
            "invoiced_at": order.invoiced_at,
            "cancelled_at": order.cancelled_at,
        }
    )


def _not_found(number: int) -> NotFound:
    return NotFound(f"Sales order {number} does not exist.", code="sales_order_not_found")


def _changed(
    session: Session, principal: Principal, orders: SalesOrderRepository, number: int, kind: str
) -> SalesOrder:
    """The order as it reads now, and its event (``sales_order.<kind>``)."""
    order = orders.get(number)
    assert order is not None
    outbox.emit(
        session,
        principal.company_id,
        EventType(f"sales_order.{kind}"),
        read(order, principal.company.base_currency).model_dump(mode="json"),
    )
    return order


def _refresh_partner(
    session: Session, partner: Partner, orders: SalesOrderRepository, credit_check: str
) -> None:
    """Recompute the partner's maintained columns (and its credit state) from its orders."""
    session.flush()
    uninvoiced, latest = orders.partner_totals(partner.id)
    changed = partner.uninvoiced_total != uninvoiced or partner.latest_sales_delivery_date != latest
    partner.uninvoiced_total = uninvoiced
    partner.latest_sales_delivery_date = latest
    if credit.refresh(partner, credit_check) or changed:
        partner.updated_at = utcnow()
        session.flush()


def _add_to_partner(partner: Partner, order: SalesOrder, credit_check: str) -> None:
    """Add a new order to its (locked) partner's maintained columns: the same as recomputing
    them from its orders (``_refresh_partner``) without reading them, so an order for a
    partner with thousands of orders costs what it costs for one with none."""
    assert order.status in UNINVOICED_STATUSES  # a new order is open: it counts
    uninvoiced = partner.uninvoiced_total + order.total_base
    latest = partner.latest_sales_delivery_date
    if order.delivery_date is not None and (latest is None or order.delivery_date > latest):
        latest = order.delivery_date
    changed = uninvoiced != partner.uninvoiced_total or latest != partner.latest_sales_delivery_date
    partner.uninvoiced_total = uninvoiced
    partner.latest_sales_delivery_date = latest
    if credit.refresh(partner, credit_check) or changed:
        partner.updated_at = utcnow()


def _lock_partner_of(session: Session, principal: Principal, number: int) -> Partner:
    """Lock the partner of order ``number`` (before the order: one lock order everywhere)."""
    orders = SalesOrderRepository(session, principal.company_id)
    found = orders.partner_number_of(number)
    if found is None:
        raise _not_found(number)
    partner = PartnerRepository(session, principal.company_id).get(
        found, for_update=True, related=False, in_turn=True
    )
    if partner is None:  # pragma: no cover - the foreign key makes this impossible
        raise _not_found(number)
    partner_events.touched(session, principal.company_id, [partner])
    return partner


def get(*, session: Session, principal: Principal, number: int) -> SalesOrder:
    order = SalesOrderRepository(session, principal.company_id).get(number)
    if order is None:
        raise _not_found(number)
    return order


def list_(
    *, session: Session, principal: Principal, filters: SalesOrderFilter, page: PageRequest
) -> RawPage[SalesOrder]:
    return SalesOrderRepository(session, principal.company_id).list_(filters, page)


def create(
    *,
    session: Session,
    principal: Principal,
    data: SalesOrderCreate,
    idempotency: Idempotency[SalesOrder] | None = None,
) -> SalesOrder:
    partners = PartnerRepository(session, principal.company_id)
    orders = SalesOrderRepository(session, principal.company_id)
    partner = partners.get(data.partner_number, for_update=True, related=False, in_turn=True)
    if partner is None:
        raise ValidationFailed(
            f"Partner {data.partner_number} does not exist.",
            code="unknown_partner",
            errors=[FieldError(("body", "partner_number"), "no such partner", "unknown_partner")],
        )
    check_owner(partners, data.owner_id)
    partner_events.touched(session, principal.company_id, [partner])
    company = principal.company
    if (
        partner.credit_limit_exceeded
        and company.credit_enforcement == CreditEnforcement.block.value
    ):
        raise ValidationFailed(
            f"Partner {partner.number} is over its credit limit; the company blocks new orders.",
            code="credit_limit_exceeded",
            errors=[
                FieldError(
                    ("body", "partner_number"), "over its credit limit", "credit_limit_exceeded"
                )
            ],
        )
    currency = data.currency or partner.currency
    rate = _exchange_rate(company.base_currency, currency, data.exchange_rate)
    order = SalesOrder(
        company_id=principal.company_id,
        partner_id=partner.id,
        status=SalesOrderStatus.open.value,
        order_date=data.order_date or datetime.now(UTC).date(),
        delivery_date=data.delivery_date,
        currency=currency,
        exchange_rate=rate,
        reference=data.reference,
        owner_id=data.owner_id if data.owner_id is not None else partner.owner_id,
    )
    order.lines = _line_rows(order, data.lines)
    order.total = order_total(order.lines)
    order.total_base = base_total(order.total, rate)
    change_stage(
        session=session,
        company_id=principal.company_id,
        partners=[partner],
        stage=CustomerStage.active,
        reason=StageChangeReason.sales_order_created,
        actor=principal.user,
        at=utcnow(),
    )
    _add_to_partner(partner, order, company.credit_check)
    owner = None if order.owner_id is None else session.get(User, (company.id, order.owner_id))
    set_committed_value(order, "owner", owner)
    set_committed_value(order, "partner", partner)
    # The number last, once every check has passed and the partner is written: on PostgreSQL
    # from the company's sequence, which makes no order wait for another (a failure from here
    # on leaves a gap); on SQLite from the counter (app.numbers.repository).
    order.number = next_number(session, principal.company_id, "sales_order")
    order.created_at = order.updated_at = utcnow()
    orders.add(order)
    outbox.emit(
        session,
        principal.company_id,
        EventType.sales_order_created,
        read(order, company.base_currency).model_dump(mode="json"),
    )
    if idempotency is not None:
        idempotency.record(session, order)
    session.commit()
    return order


def update(
    *,
    session: Session,
    principal: Principal,
    number: int,
    data: SalesOrderUpdate,
    if_match: str | None,
) -> SalesOrder:
    partner = _lock_partner_of(session, principal, number)
    orders = SalesOrderRepository(session, principal.company_id)
    order = orders.get(number, for_update=True)
    if order is None:
        raise _not_found(number)
    base_currency = principal.company.base_currency
    check_if_match(if_match, etag_of(order, principal.company.version))
    if order.status != SalesOrderStatus.open.value:
        raise Conflict(
            f"Sales order {number} is {order.status}; only open orders can be edited.",
            code="sales_order_not_editable",
        )
    fields = data.model_fields_set
    if not fields:
        return order
    if "owner_id" in fields:
        check_owner(PartnerRepository(session, principal.company_id), data.owner_id)
    currency = data.currency if "currency" in fields else order.currency
    if "exchange_rate" in fields:
        rate_in: Decimal | None = data.exchange_rate
    elif "currency" in fields and currency != order.currency:
        rate_in = None  # a new currency needs its own rate
    else:
        rate_in = order.exchange_rate if currency != base_currency else None
    rate = _exchange_rate(base_currency, currency, rate_in)
    for field in ("order_date", "delivery_date", "reference", "owner_id"):
        if field in fields:
            setattr(order, field, getattr(data, field))
    order.currency = currency
    order.exchange_rate = rate
    if data.lines is not None:
        order.lines.clear()
        session.flush()
        order.lines.extend(_line_rows(order, data.lines))
    order.total = order_total(order.lines)
    order.total_base = base_total(order.total, rate)
    order.updated_at = utcnow()
    _refresh_partner(session, partner, orders, principal.company.credit_check)
    updated = _changed(session, principal, orders, number, "updated")
    session.commit()
    return updated


def transition(*, session: Session, principal: Principal, number: int, action: str) -> SalesOrder:
    partner = _lock_partner_of(session, principal, number)
    orders = SalesOrderRepository(session, principal.company_id)
    order = orders.get(number, for_update=True)
    if order is None:
        raise _not_found(number)
    sources, target = TRANSITIONS[action]
    if order.status not in sources:
        raise Conflict(
            f"Sales order {number} is {order.status}; it cannot be {target.value} from there.",
            code="invalid_status_transition",
            extra={"current_status": order.status, "action": action},
        )
    now = utcnow()
    order.status = target.value
    order.updated_at = now
    setattr(order, f"{target.value}_at", now)
    _refresh_partner(session, partner, orders, principal.company.credit_check)
    done = _changed(session, principal, orders, number, target.value)
    session.commit()
    return done


@dataclass(frozen=True)
class Drift:
    number: int
    uninvoiced_total: Decimal
    expected_uninvoiced_total: Decimal
    latest_sales_delivery_date: date | None
    expected_latest_sales_delivery_date: date | None


def _drift(row: Any) -> Drift:
    return Drift(
        number=row.number,
        uninvoiced_total=row.uninvoiced_total,
        expected_uninvoiced_total=quantize_money(Decimal(str(row.expected_uninvoiced_total))),
        latest_sales_delivery_date=row.latest_sales_delivery_date,
        expected_latest_sales_delivery_date=row.expected_latest_sales_delivery_date,
    )


def check_partner_totals(
    *, db: Database, company_id: uuid.UUID, repair: bool = False
) -> list[Drift]:
    """Compare each partner's maintained columns with its orders; optionally fix the drift.

    The check is one statement in a read transaction: on SQLite it holds no write lock, on
    PostgreSQL no row lock, so writers go on meanwhile (and, reading one snapshot, it never
    mistakes a write committed meanwhile for drift). Returns the drift found.

    ``repair`` then fixes the drifted partners, a chunk at a time, each in a short write
    transaction of its own (a chunk's repair stands on its own): it locks only those partners,
    in number order like every multi-partner writer, checks them again under the lock (a writer
    may have fixed them since, or changed their orders) and recomputes those still drifting.
    Returns the drift repaired.
    """
    with db.session(write=False) as session:
        found = partner_total_drift(session, company_id)
    if not repair or not found:
        return [_drift(row) for row in found]
    repaired: list[Drift] = []
    for start in range(0, len(found), REPAIR_CHUNK):
        ids = [row.id for row in found[start : start + REPAIR_CHUNK]]  # in number order
        with db.session() as session:
            company = session.get(Company, company_id)
            assert company is not None
            PartnerRepository(session, company_id).lock_in_number_order(Partner.id.in_(ids))
            still = partner_total_drift(session, company_id, partner_ids=ids)
            if still:
                partner_events.touched(
                    session,
                    company_id,
                    PartnerRepository(session, company_id).versions([r.number for r in still]),
                )
                repair_partner_totals(
                    session,
                    company_id,
                    [row.id for row in still],
                    credit_check=company.credit_check,
                )
            session.commit()
        repaired.extend(_drift(row) for row in still)
    return repaired
