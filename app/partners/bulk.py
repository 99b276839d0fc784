"""Bulk customer stage: set one stage on many partners, all or nothing, in set-based SQL."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.auth.dependencies import Principal
from app.core.errors import FieldError, ValidationFailed
from app.db.base import utcnow
from app.idempotency.service import Idempotency
from app.models.enums import CustomerStage, StageChangeReason
from app.partners.repository import PartnerRepository, StageRow, filter_conditions
from app.partners.schemas import (
    BULK_CHANGES_LISTED,
    BulkStageChange,
    BulkStageRequest,
    BulkStageResult,
)
from app.partners.stages import change_stage


def _too_many(count: int, max_partners: int, field: str) -> ValidationFailed:
    what = "The filter matches" if field == "filter" else "The request names"
    return ValidationFailed(
        f"{what} {count:,} partners; one bulk change may touch at most {max_partners:,}. "
        "Narrow the selection (e.g. by customer_stage, tag, owner_id or country) and send "
        "several requests; nothing was changed.",
        code="too_many_partners",
        errors=[
            FieldError(
                ("body", field),
                f"selects {count} partners, more than the limit of {max_partners}",
                "too_many_partners",
            )
        ],
        extra={"matched": count, "max_partners": max_partners},
    )


def stage_result(
    stage: CustomerStage, rows: list[StageRow], changing: list[StageRow], *, dry_run: bool
) -> BulkStageResult:
    """The answer of a bulk stage change (by numbers, by filter, or by the dormancy rule)."""
    return BulkStageResult(
        customer_stage=stage,
        dry_run=dry_run,
        matched=len(rows),
        changed=len(changing),
        unchanged=len(rows) - len(changing),
        changes=[
            BulkStageChange(number=r.number, previous_stage=r.customer_stage)
            for r in changing[:BULK_CHANGES_LISTED]
        ],
        changes_truncated=len(changing) > BULK_CHANGES_LISTED,
    )


def set_stage(
    *,
    session: Session,
    principal: Principal,
    data: BulkStageRequest,
    max_partners: int,
    idempotency: Idempotency[BulkStageResult] | None = None,
) -> BulkStageResult:
    """Lock the selected partners, then write the history and the stage for those that change.

    More than ``max_partners`` selected changes nothing (422 ``too_many_partners``): counted
    before any lock is taken, so an oversized filter holds no lock at all. Unknown numbers
    change nothing (422 ``partners_not_found``). A dry run answers the same without locking
    or changing anything (with an Idempotency-Key its answer is stored, to be replayed). The
    answer lists at most ``BULK_CHANGES_LISTED`` changes (``changes_truncated``); every change
    is in the stage history.
    """
    repo = PartnerRepository(session, principal.company_id)
    stage = data.customer_stage.value
    lock = not data.dry_run
    if data.numbers is not None:
        selected = len(set(data.numbers))
        if selected > max_partners:
            raise _too_many(selected, max_partners, "numbers")
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
        conditions = filter_conditions(principal.company_id, data.filter)
        matched = repo.count_matching(conditions)
        if matched > max_partners:
            raise _too_many(matched, max_partners, "filter")
        # Partners added since the count could push the selection over the limit: lock at
        # most one more than the limit, and give up (rolling back, so unlocking) if it is over.
        rows = repo.stage_rows(conditions=conditions, lock=lock, limit=max_partners + 1)
        if len(rows) > max_partners:
            count = max(len(rows), repo.count_matching(conditions))
            raise _too_many(count, max_partners, "filter")
    changing = [r for r in rows if r.customer_stage != stage]
    result = stage_result(data.customer_stage, rows, changing, dry_run=data.dry_run)
    if data.dry_run:
        if idempotency is not None:  # a dry run with a key replays its answer too
            idempotency.record(session, result)
            session.commit()
        return result
    change_stage(
        session=session,
        company_id=principal.company_id,
        partners=changing,
        stage=data.customer_stage,
        reason=StageChangeReason.bulk,
        actor=principal.user,
        at=utcnow(),
    )
    if idempotency is not None:
        idempotency.record(session, result)
    session.commit()
    return result
