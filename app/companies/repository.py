"""Companies and their number sequences."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Company


def get_by_slug(session: Session, slug: str) -> Company | None:
    return session.scalar(select(Company).where(Company.slug == slug))


def lock(session: Session, company_id: uuid.UUID) -> None:
    """Lock the company's row until the transaction ends (serialises per-company quotas; on
    SQLite the write transaction already does)."""
    session.execute(select(Company.id).where(Company.id == company_id).with_for_update())
