"""Partner use-cases. Each write is one transaction with exactly one commit."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.dependencies import Principal
from app.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.core.etags import check_if_match, etag
from app.core.pagination import PageRequest, RawPage
from app.core.types import tag_key
from app.db.base import utcnow
from app.idempotency.service import Idempotency
from app.models import Partner, StageChange
from app.models.enums import StageChangeReason
from app.numbers.repository import next_number
from app.partners import credit, events
from app.partners.repository import PartnerRepository
from app.partners.schemas import (
    LocationIn,
    PartnerCreate,
    PartnerFilter,
    PartnerUpdate,
    location_rows,
)
from app.partners.stages import change_stage


def _not_found(number: int) -> NotFound:
    return NotFound(f"Partner {number} does not exist.", code="partner_not_found")


def _check_locations(items: list[LocationIn]) -> None:
    if sum(1 for item in items if item.is_primary) > 1:
        raise ValidationFailed(
            "Exactly one location can be primary.",
            code="several_primary_locations",
            errors=[
                FieldError(
                    ("body", "locations"),
                    "more than one location is primary",
                    "several_primary_locations",
                )
            ],
        )


def _resolve_tags(repo: PartnerRepository, names: list[str]) -> list[uuid.UUID]:
    found = repo.tags_by_key(names)
    missing = [(i, n) for i, n in enumerate(names) if tag_key(n) not in found]
    if missing:
        raise ValidationFailed(
            "Unknown tag(s): " + ", ".join(repr(n) for _, n in missing) + ". Create them first.",
            code="unknown_tag",
            errors=[
                FieldError(("body", "tags", i), f"unknown tag {n!r}", "unknown_tag")
                for i, n in missing
            ],
        )
    return [found[tag_key(n)].id for n in names]


def check_owner(repo: PartnerRepository, owner_id: uuid.UUID | None) -> str | None:
    """The owner's name (None for no owner); 422 when the user does not exist."""
    if owner_id is None:
        return None
    name = repo.owner_name(owner_id)
    if name is None:
        raise ValidationFailed(
            f"User {owner_id} does not exist.",
            code="unknown_owner",
            errors=[FieldError(("body", "owner_id"), "no such user", "unknown_owner")],
        )
    return name


def _integrity(exc: IntegrityError) -> Conflict:
    message = str(exc.orig).lower()
    if "accounting_ref" in message:
        return Conflict(
            "Another partner already has this accounting_ref.",
            code="accounting_ref_taken",
            errors=[
                FieldError(("body", "accounting_ref"), "already in use", "accounting_ref_taken")
            ],
        )
    return Conflict("The change conflicts with existing data.", code="conflict")


def get(*, session: Session, principal: Principal, number: int) -> Partner:
    partner = PartnerRepository(session, principal.company_id).get(number)
    if partner is None:
        raise _not_found(number)
    return partner


def etag_of(partner: Partner) -> str:
    """Every change to what a partner reads as bumps its version (tags, owner and maintained
    columns included)."""
    return etag(partner.version)


def list_(
    *, session: Session, principal: Principal, filters: PartnerFilter, page: PageRequest
) -> RawPage[Partner]:
    return PartnerRepository(session, principal.company_id).list_(filters, page)


def create(
    *,
    session: Session,
    principal: Principal,
    data: PartnerCreate,
    idempotency: Idempotency[Partner] | None = None,
) -> Partner:
    repo = PartnerRepository(session, principal.company_id)
    owner_name = check_owner(repo, data.owner_id)
    _check_locations(data.locations)
    tag_ids = _resolve_tags(repo, data.tags)
    # The number first: its lock orders creations, so the newest has the highest number
    # and the latest created_at.
    number = next_number(session, principal.company_id, "partner")
    now = utcnow()
    partner = Partner(
        company_id=principal.company_id,
        number=number,
        name=data.name,
        country=data.country,
        vat_id=data.vat_id,
        currency=data.currency or principal.company.base_currency,
        email=data.email,
        phone=data.phone,
        website=str(data.website) if data.website else None,
        owner_id=data.owner_id,
        owner_name=owner_name,
        customer_stage=None,  # set below, with its history
        credit_limit=data.credit_limit,
        accounting_ref=data.accounting_ref,
        created_at=now,
        updated_at=now,
    )
    partner.locations = location_rows(principal.company_id, data.locations)
    try:
        repo.add(partner)
        events.touched(session, principal.company_id, [partner], created=True)
        repo.replace_tags(partner, tag_ids)
        change_stage(
            session=session,
            company_id=principal.company_id,
            partners=[partner],
            stage=data.customer_stage,
            reason=StageChangeReason.manual,
            actor=principal.user,
            at=now,
        )
    except IntegrityError as exc:
        session.rollback()
        raise _integrity(exc) from exc
    created = get(session=session, principal=principal, number=partner.number)
    if idempotency is not None:
        idempotency.record(session, created)
    session.commit()
    return created


def update(
    *,
    session: Session,
    principal: Principal,
    number: int,
    data: PartnerUpdate,
    if_match: str | None,
) -> Partner:
    repo = PartnerRepository(session, principal.company_id)
    partner = repo.get(number, for_update=True)
    if partner is None:
        raise _not_found(number)
    check_if_match(if_match, etag_of(partner))
    events.touched(session, principal.company_id, [partner])
    changes: dict[str, Any] = data.model_dump(
        exclude_unset=True, exclude={"tags", "locations", "customer_stage"}
    )
    if "owner_id" in changes:
        changes["owner_name"] = check_owner(repo, data.owner_id)
    tag_ids = _resolve_tags(repo, data.tags) if data.tags is not None else None
    if data.locations is not None:
        _check_locations(data.locations)
    if not data.model_fields_set:
        return partner
    for field, value in changes.items():
        if field == "website" and value is not None:
            value = str(data.website)
        setattr(partner, field, value)
    credit.refresh(partner, principal.company.credit_check)
    now = utcnow()
    partner.updated_at = now
    try:
        if data.locations is not None:
            partner.locations.clear()
            session.flush()
            partner.locations.extend(location_rows(principal.company_id, data.locations))
        if tag_ids is not None:
            repo.replace_tags(partner, tag_ids)
        if "customer_stage" in data.model_fields_set:
            change_stage(
                session=session,
                company_id=principal.company_id,
                partners=[partner],
                stage=data.customer_stage,
                reason=StageChangeReason.manual,
                actor=principal.user,
                at=now,
            )
        session.flush()
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise _integrity(exc) from exc
    # The answer is the partner as written, read under its lock, not read back: only what
    # was written around the ORM is loaded again (replaced tags; an owner is a relationship).
    if "owner_id" in changes:
        session.expire(partner, ["owner"])
    return partner


def delete(*, session: Session, principal: Principal, number: int, if_match: str | None) -> None:
    repo = PartnerRepository(session, principal.company_id)
    partner = repo.get(number, for_update=True)
    if partner is None:
        raise _not_found(number)
    check_if_match(if_match, etag_of(partner))
    try:
        repo.delete(partner)
        events.deleted(session, principal.company_id, number)
        session.commit()
    except IntegrityError as exc:
        # Sales orders reference their partner without ON DELETE: the database refuses.
        session.rollback()
        raise Conflict(
            f"Partner {number} has sales orders and cannot be deleted.",
            code="partner_has_sales_orders",
        ) from exc


def stage_history(
    *, session: Session, principal: Principal, number: int, page: PageRequest
) -> RawPage[StageChange]:
    repo = PartnerRepository(session, principal.company_id)
    partner = repo.get(number)
    if partner is None:
        raise _not_found(number)
    return repo.stage_history(partner, page)
