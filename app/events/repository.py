"""The event log's SQL: the feed's reads and the retention."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.events.outbox import EVENT_SEQUENCE
from app.models import Event, NumberSequence


@dataclass
class EventRepository:
    session: Session
    company_id: uuid.UUID

    def last_seq(self) -> int:
        """The last number handed out by a committed transaction: every event up to it is
        committed (the counter commits with its events)."""
        value = self.session.scalar(
            select(NumberSequence.last_value).where(
                NumberSequence.company_id == self.company_id,
                NumberSequence.kind == EVENT_SEQUENCE,
            )
        )
        return int(value or 0)

    def oldest_seq(self) -> int | None:
        return self.session.scalar(
            select(func.min(Event.seq)).where(Event.company_id == self.company_id)
        )

    def after(
        self, position: int, *, upto: int, limit: int, types: Sequence[str] | None
    ) -> list[Event]:
        stmt = (
            select(Event)
            .where(Event.company_id == self.company_id, Event.seq > position, Event.seq <= upto)
            .order_by(Event.seq)
            .limit(limit)
        )
        if types:
            stmt = stmt.where(Event.type.in_(types))
        return list(self.session.scalars(stmt))

    def get(self, seq: int) -> Event | None:
        return self.session.get(Event, (self.company_id, seq))


def prune(session: Session, before: datetime) -> int:
    """Delete, per company, the events up to the last one that occurred before ``before``:
    what is kept is always an unbroken run of numbers (the feed's expiry test relies on it).
    Returns how many were deleted (the caller commits)."""
    horizons = session.execute(
        select(Event.company_id, func.max(Event.seq))
        .where(Event.occurred_at < before)
        .group_by(Event.company_id)
    ).all()
    deleted = 0
    for company_id, seq in horizons:
        result = session.execute(
            delete(Event).where(Event.company_id == company_id, Event.seq <= seq)
        )
        deleted += int(getattr(result, "rowcount", 0) or 0)
    return deleted
