"""The one way to change customer stages: every change (a PATCH, a new partner, a bulk change,
a first sales order; imports and dormancy later) goes through :func:`change_stage`, which
flushes what is pending, bumps each partner's version, writes one stage history row per
change, and gives loaded partners their new stage, version and time."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from app.models import Partner
from app.models.enums import CustomerStage, StageChangeReason
from app.partners import events
from app.partners.repository import PartnerRepository, StageRow

__all__ = ["Actor", "StageRow", "change_stage"]


class Actor(Protocol):
    """Who changes a stage: a user (the principal's), by id and name."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def name(self) -> str: ...


def change_stage(
    *,
    session: Session,
    company_id: uuid.UUID,
    partners: Sequence[Partner | StageRow],
    stage: CustomerStage | None,
    reason: StageChangeReason,
    actor: Actor | None,
    at: datetime,
) -> list[StageRow]:
    """Set ``stage`` on these partners (the caller holds their locks); returns those whose
    stage changed. Set-based: one UPDATE and one INSERT of history per chunk, whatever the
    count; and their events (``partner.stage_changed`` and ``partner.updated``). ``actor``
    is the user who changes them (None: the service itself, e.g. dormancy)."""
    session.flush()  # pending changes first: their versions are the ones to build on
    rows = [p if isinstance(p, StageRow) else StageRow.of(p) for p in partners]
    value = stage.value if stage is not None else None
    changing = [r for r in rows if r.customer_stage != value]
    if changing:
        repo = PartnerRepository(session, company_id)
        events.touched(session, company_id, changing, credit_may_change=False, changed=True)
        actor_id = actor.id if actor is not None else None
        repo.set_stage(changing, stage=value, reason=reason.value, actor_id=actor_id, at=at)
        events.stage_changed(
            session,
            company_id,
            changing,
            stage=value,
            reason=reason.value,
            changed_by={"id": str(actor.id), "name": actor.name} if actor is not None else None,
        )
    return changing
