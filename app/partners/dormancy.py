"""The dormancy rule: an ``active`` customer whose most recent non-cancelled sales order is
dated more than the company's ``dormancy_days`` ago becomes ``inactive`` (stage history
``reason: dormant``, ``changed_by: null``, and its events).

Days are counted in UTC: with ``dormancy_days = 180``, on 2026-07-01 an order dated
2026-01-02 (180 days before) keeps its partner active, one dated 2026-01-01 does not.

Set-based: one statement selects and locks every dormant partner, one more re-reads their
latest orders, and :func:`~app.partners.stages.change_stage` writes the stage, the history
and the events per chunk. The re-read closes a race on PostgreSQL: an order committed after
the first statement's snapshot but before its lock was granted is invisible to that
statement; sales orders take their partner's row lock, so once the partners are locked no
further order can commit for them, and a new statement sees every order that did. (SQLite
runs one writer at a time: nothing commits in between.)
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.errors import AppError, Conflict
from app.db.base import utcnow
from app.db.session import Database
from app.idempotency.service import Idempotency
from app.models import Company
from app.models.enums import CustomerStage, StageChangeReason
from app.partners.bulk import stage_result
from app.partners.repository import PartnerRepository
from app.partners.schemas import BulkStageResult
from app.partners.stages import change_stage

log = structlog.get_logger("crm.dormancy")


def cutoff(dormancy_days: int, today: date) -> date:
    """Partners whose latest order is dated before this day are dormant."""
    return today - timedelta(days=dormancy_days)


def apply(
    *,
    session: Session,
    company_id: uuid.UUID,
    dry_run: bool,
    today: date | None = None,
    idempotency: Idempotency[BulkStageResult] | None = None,
) -> BulkStageResult:
    """Move the company's dormant customers to ``inactive``, all or nothing; a dry run
    answers the same and changes nothing. 409 ``dormancy_off`` when the company has no
    ``dormancy_days``."""
    company = session.get(Company, company_id)
    if company is None or company.dormancy_days is None:
        raise Conflict(
            "The dormancy rule is off for this company: set `dormancy_days` "
            "(PATCH /api/v1/company) first.",
            code="dormancy_off",
        )
    repo = PartnerRepository(session, company.id)
    conditions = repo.dormant(cutoff(company.dormancy_days, today or utcnow().date()))
    rows = repo.stage_rows(conditions=conditions, lock=not dry_run)
    if rows and not dry_run:
        still = {r.id for r in repo.stage_rows(conditions=conditions, lock=False)}
        rows = [r for r in rows if r.id in still]
    result = stage_result(CustomerStage.inactive, rows, rows, dry_run=dry_run)
    if not dry_run:
        change_stage(
            session=session,
            company_id=company.id,
            partners=rows,
            stage=CustomerStage.inactive,
            reason=StageChangeReason.dormant,
            actor=None,
            at=utcnow(),
        )
    if idempotency is not None:
        idempotency.record(session, result)
    session.commit()
    return result


def run_daily(db: Database) -> int:
    """The scheduled round (``app.worker``, once a day across all processes): apply the rule
    for every company that has it on, each in its own transaction; returns how many
    partners became inactive."""
    with db.session(write=False) as session:
        company_ids = list(
            session.scalars(select(Company.id).where(Company.dormancy_days.is_not(None)))
        )
    moved = 0
    for company_id in company_ids:
        try:
            with db.session() as session:
                result = apply(session=session, company_id=company_id, dry_run=False)
        except AppError:
            continue  # the rule was turned off meanwhile
        except Exception:
            log.exception("dormancy_failed", company_id=str(company_id))
            continue
        if result.changed:
            log.info("dormancy_applied", company_id=str(company_id), changed=result.changed)
        moved += result.changed
    return moved
