"""The credit-limit state of a partner.

Exceeded means: a credit limit is set, a debtor balance is known, and the exposure is greater
than the limit. The exposure is the debtor balance, or with the company option
``balance_plus_uninvoiced`` the balance plus the uninvoiced orders (as Odoo and ERPNext count).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.models import Partner
from app.models.enums import CreditCheck


def is_exceeded(
    *, balance: Decimal | None, limit: Decimal | None, uninvoiced: Decimal, check: str
) -> bool:
    if limit is None or balance is None:
        return False
    exposure = balance + uninvoiced if check == CreditCheck.balance_plus_uninvoiced else balance
    return exposure > limit


def exceeded_sql(check: str) -> Any:
    exposure: Any = Partner.debtor_balance
    if check == CreditCheck.balance_plus_uninvoiced:
        exposure = Partner.debtor_balance + Partner.uninvoiced_total
    return and_(
        Partner.credit_limit.is_not(None),
        Partner.debtor_balance.is_not(None),
        exposure > Partner.credit_limit,
    )


def refresh(partner: Partner, check: str) -> bool:
    """Re-evaluate one loaded partner; True when its state changed."""
    exceeded = is_exceeded(
        balance=partner.debtor_balance,
        limit=partner.credit_limit,
        uninvoiced=partner.uninvoiced_total,
        check=check,
    )
    if exceeded == partner.credit_limit_exceeded:
        return False
    partner.credit_limit_exceeded = exceeded
    return True


def lock_in_number_order(session: Session, company_id: uuid.UUID, *conditions: Any) -> None:
    """Lock these partners of a company in number order, the order every multi-partner writer
    uses, so that concurrent writers queue instead of deadlocking."""
    session.execute(
        select(Partner.id)
        .where(Partner.company_id == company_id, *conditions)
        .order_by(Partner.number)
        .with_for_update()
    ).all()


def refresh_company(session: Session, company_id: uuid.UUID, check: str) -> None:
    """Re-evaluate every partner of a company (after its credit check option changed)."""
    expr = exceeded_sql(check)
    lock_in_number_order(session, company_id, Partner.credit_limit_exceeded != expr)
    session.execute(
        update(Partner)
        .where(Partner.company_id == company_id, Partner.credit_limit_exceeded != expr)
        .values(credit_limit_exceeded=expr, version=Partner.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
