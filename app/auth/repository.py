"""What authentication itself writes: a token's last use."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from app.auth.cache import UNCACHED_ONLY
from app.models import ApiToken


def touch(
    session: Session,
    company_id: uuid.UUID,
    token_id: uuid.UUID,
    now: datetime,
    resolution: timedelta,
) -> None:
    """Set ``last_used_at``, unless another request did within ``resolution``. Never waits for
    a row lock: a token row that a concurrent request is touching is skipped."""
    stale = (
        select(ApiToken.id)
        .where(
            ApiToken.company_id == company_id,
            ApiToken.id == token_id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now - resolution),
        )
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    session.execute(
        update(ApiToken)
        .where(ApiToken.company_id == company_id, ApiToken.id == stale)
        .values(last_used_at=now)
        .execution_options(synchronize_session=False, **{UNCACHED_ONLY: True})
    )
