"""The credit-limit state of a partner.

Exceeded means: a credit limit is set, a debtor balance is known, and the exposure is greater
than the limit. The exposure is the debtor balance, or with the company option
``balance_plus_uninvoiced`` the balance plus the uninvoiced orders (as Odoo and ERPNext count).

The rule only: its SQL form and the locking live in ``app.partners.repository``.
"""

from __future__ import annotations

from decimal import Decimal

from app.models import Partner
from app.models.enums import CreditCheck


def is_exceeded(
    *, balance: Decimal | None, limit: Decimal | None, uninvoiced: Decimal, check: str
) -> bool:
    if limit is None or balance is None:
        return False
    exposure = balance + uninvoiced if check == CreditCheck.balance_plus_uninvoiced else balance
    return exposure > limit


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
