"""The one way to change customer stages: every change (a PATCH, a new partner, a bulk change,
a first sales order; imports and dormancy later) goes through :func:`change_stage`, which
flushes what is pending, bumps each partner's version, writes one stage history row per
change, and leaves loaded partners to be read again."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from app.models import Partner
from app.models.enums import CustomerStage, StageChangeReason
from app.partners.repository import PartnerRepository, StageRow

__all__ = ["StageRow", "change_stage"]


def change_stage(
    *,
    session: Session,
    company_id: uuid.UUID,
    partners: Sequence[Partner | StageRow],
    stage: CustomerStage | None,
    reason: StageChangeReason,
    actor_id: uuid.UUID | None,
    at: datetime,
) -> list[StageRow]:
    """Set ``stage`` on these partners (the caller holds their locks); returns those whose
    stage changed. Set-based: one UPDATE and one INSERT of history per chunk, whatever the
    count."""
    session.flush()  # pending changes first: their versions are the ones to build on
    rows = [p if isinstance(p, StageRow) else StageRow.of(p) for p in partners]
    value = stage.value if stage is not None else None
    changing = [r for r in rows if r.customer_stage != value]
    if changing:
        PartnerRepository(session, company_id).set_stage(
            changing, stage=value, reason=reason.value, actor_id=actor_id, at=at
        )
    return changing
