"""Per-company number sequences (partner and sales order numbers): shared by the domains that
number what they make, owned by none of them."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.models import NumberSequence

# "event" numbers the company's events (app.events.outbox).
SEQUENCE_KINDS = ("partner", "sales_order", "event")


def add_sequences(session: Session, company_id: uuid.UUID) -> None:
    session.add_all(
        NumberSequence(company_id=company_id, kind=k, last_value=0) for k in SEQUENCE_KINDS
    )


def next_number(session: Session, company_id: uuid.UUID, kind: str) -> int:
    """The next number of a per-company sequence.

    The UPDATE locks the counter row until the transaction ends (on SQLite the write
    transaction does), so concurrent writers get unique numbers that increase in the order
    their transactions commit. The counter only grows, so a deleted number is never reused.
    """
    value = session.scalar(
        update(NumberSequence)
        .where(NumberSequence.company_id == company_id, NumberSequence.kind == kind)
        .values(last_value=NumberSequence.last_value + 1)
        .returning(NumberSequence.last_value)
    )
    if value is None:
        raise RuntimeError(f"number sequence {kind!r} missing for company {company_id}")
    return int(value)


def next_numbers(session: Session, company_id: uuid.UUID, kind: str, count: int) -> range:
    """``count`` consecutive numbers of a per-company sequence in one statement (a block, e.g.
    for an import), under the same lock as :func:`next_number`."""
    if count <= 0:
        return range(0)
    last = session.scalar(
        update(NumberSequence)
        .where(NumberSequence.company_id == company_id, NumberSequence.kind == kind)
        .values(last_value=NumberSequence.last_value + count)
        .returning(NumberSequence.last_value)
    )
    if last is None:
        raise RuntimeError(f"number sequence {kind!r} missing for company {company_id}")
    return range(int(last) - count + 1, int(last) + 1)
