"""Per-company numbers (partner and sales order numbers): shared by the domains that number
what they make, owned by none of them.

Two ways to count, one per promise:

- **A counter row** (``number_sequences``) for partner numbers (and the event feed's ``seq``,
  which ``app.events.outbox`` takes itself): the UPDATE that takes a number locks the row until
  the transaction ends, so numbers are gap-free and increase in commit order. Every creation of
  the company waits for the one before it to commit; people create partners one at a time.
- **A sequence per company** for sales order numbers on PostgreSQL (``numbers_sales_order_<company
  id>``): orders are what many clients and integrations create at once, and a counter row made
  every order of a company wait for the commit of the one before (measured: with 16 clients
  ordering for 5 partners, a good part of their waiting was on that row). A sequence never
  waits: numbers are unique, increase in the order they are taken and are never reused; a
  creation that fails after taking its number leaves a gap (the order takes it last, after
  every check), and two orders created at the same moment may commit in the other order.
  SQLite, one writer at a time, keeps the counter row for orders too: there it costs nothing.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from app.models import NumberSequence

# "event" numbers the company's events (app.events.outbox).
SEQUENCE_KINDS = ("partner", "sales_order", "event")
# Kinds numbered by a sequence per company on PostgreSQL.
ON_SEQUENCES = ("sales_order",)


def sequence_name(company_id: uuid.UUID, kind: str) -> str:
    """The PostgreSQL sequence of a company's ``kind`` numbers (migration 0013 names it so)."""
    return f"numbers_{kind}_{company_id.hex}"


def _on_sequence(session: Session, kind: str) -> bool:
    return kind in ON_SEQUENCES and session.get_bind().dialect.name == "postgresql"


def add_sequences(session: Session, company_id: uuid.UUID) -> None:
    """The counters (and on PostgreSQL the sequences) of a new company, all at 0."""
    session.add_all(
        NumberSequence(company_id=company_id, kind=k, last_value=0)
        for k in SEQUENCE_KINDS
        if not _on_sequence(session, k)
    )
    for kind in ON_SEQUENCES:
        if _on_sequence(session, kind):
            name = sequence_name(company_id, kind)
            session.execute(text(f'CREATE SEQUENCE "{name}" AS bigint MINVALUE 1'))


def next_number(session: Session, company_id: uuid.UUID, kind: str) -> int:
    """The next number of a company's ``kind`` (see the module's docstring for the two ways).

    A counter's UPDATE locks its row until the transaction ends (on SQLite the write
    transaction does), so concurrent writers get unique numbers that increase in the order
    their transactions commit. Neither way ever goes back, so a deleted number is never reused.
    """
    if _on_sequence(session, kind):
        value = session.scalar(
            text("SELECT nextval(CAST(:name AS regclass))"),
            {"name": sequence_name(company_id, kind)},
        )
    else:
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
    """``count`` consecutive numbers of a counter in one statement (a block, e.g. for an
    import), under the same lock as :func:`next_number`."""
    if _on_sequence(session, kind):
        raise ValueError(f"{kind} numbers come from a sequence: no consecutive blocks")
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


def last_number(session: Session, company_id: uuid.UUID, kind: str) -> int:
    """The last number taken of a company's ``kind`` (0 for none)."""
    if _on_sequence(session, kind):
        last = session.scalar(
            text("SELECT pg_sequence_last_value(CAST(:name AS regclass))"),
            {"name": sequence_name(company_id, kind)},
        )
        return int(last or 0)  # NULL: none taken yet
    value = session.scalar(
        select(NumberSequence.last_value).where(
            NumberSequence.company_id == company_id, NumberSequence.kind == kind
        )
    )
    return int(value or 0)


def set_last_number(session: Session, company_id: uuid.UUID, kind: str, value: int) -> None:
    """Set the last number taken (after writing numbered rows directly, as ``crm seed`` does).
    On a sequence this is not undone by a rollback."""
    if _on_sequence(session, kind):
        session.execute(
            text("SELECT setval(CAST(:name AS regclass), :value, :called)"),
            {"name": sequence_name(company_id, kind), "value": max(value, 1), "called": value > 0},
        )
        return
    session.execute(
        update(NumberSequence)
        .where(NumberSequence.company_id == company_id, NumberSequence.kind == kind)
        .values(last_value=value)
    )
