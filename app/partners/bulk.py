"""Bulk customer stage: set one stage on many partners, all or nothing, in set-based SQL."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.auth.dependencies import Principal
from app.core.errors import FieldError, ValidationFailed
from app.db.base import utcnow
from app.idempotency.service import Idempotency
from app.models.enums import StageChangeReason
from app.partners.repository import PartnerRepository, filter_conditions
from app.partners.schemas import BulkStageChange, BulkStageRequest, BulkStageResult


def set_stage(
    *,
    session: Session,
    principal: Principal,
    data: BulkStageRequest,
    idempotency: Idempotency | None = None,
) -> BulkStageResult:
    """Lock the selected partners, then write the history and the stage for those that change.

    Unknown numbers change nothing (422 ``partners_not_found``). A dry run answers the same
    without locking or writing anything.
    """
    repo = PartnerRepository(session, principal.company_id)
    stage = data.customer_stage.value
    lock = not data.dry_run
    if data.numbers is not None:
        rows = repo.stage_rows(numbers=data.numbers, lock=lock)
        missing = sorted(set(data.numbers) - {r.number for r in rows})
        if missing:
            raise ValidationFailed(
                f"{len(missing)} partner number(s) do not exist; nothing was changed.",
                code="partners_not_found",
                errors=[
                    FieldError(("body", "numbers"), "unknown partner numbers", "partners_not_found")
                ],
                extra={"missing_numbers": missing},
            )
    else:
        assert data.filter is not None
        rows = repo.stage_rows(
            conditions=filter_conditions(principal.company_id, data.filter), lock=lock
        )
    changing = [r for r in rows if r.customer_stage != stage]
    result = BulkStageResult(
        customer_stage=data.customer_stage,
        dry_run=data.dry_run,
        matched=len(rows),
        changed=len(changing),
        unchanged=len(rows) - len(changing),
        changes=[
            BulkStageChange(number=r.number, previous_stage=r.customer_stage) for r in changing
        ],
    )
    if data.dry_run:
        return result
    if changing:
        repo.bulk_set_stage(
            changing,
            stage=stage,
            reason=StageChangeReason.bulk,
            actor_id=principal.user.id,
            at=utcnow(),
        )
    if idempotency is not None:
        idempotency.record(session, result, status_code=200)
    session.commit()
    return result
