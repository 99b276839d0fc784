"""Company use-cases: creation (operators, through the CLI), reading and settings."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.dependencies import Principal
from app.companies.repository import get_by_slug
from app.companies.schemas import CompanyUpdate
from app.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.core.etags import check_if_match, etag
from app.core.types import clean_text, currencies
from app.db.base import utcnow
from app.models import Company
from app.numbers.repository import add_sequences
from app.partners import events as partner_events
from app.partners.repository import PartnerRepository

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def create(*, session: Session, slug: str, name: str, base_currency: str) -> Company:
    if not SLUG_PATTERN.match(slug):
        raise ValidationFailed(
            "The slug takes 1-63 lowercase letters, digits and inner hyphens.",
            errors=[FieldError(("slug",), "invalid slug", "invalid_slug")],
        )
    name = clean_text(name.strip())
    if not name or len(name) > 200:
        raise ValidationFailed(
            "The name takes 1-200 characters.",
            errors=[FieldError(("name",), "invalid name", "invalid_name")],
        )
    if base_currency not in currencies():
        raise ValidationFailed(
            f"{base_currency!r} is not an ISO 4217 currency code.",
            errors=[FieldError(("base_currency",), "unknown currency", "invalid_currency")],
        )
    if get_by_slug(session, slug) is not None:
        raise Conflict(f"A company with the slug {slug!r} exists already.", code="slug_taken")
    company = Company(slug=slug, name=name, base_currency=base_currency)
    try:
        session.add(company)
        session.flush()
        add_sequences(session, company.id)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(
            f"A company with the slug {slug!r} exists already.", code="slug_taken"
        ) from exc
    return company


def require_by_slug(session: Session, slug: str) -> Company:
    company = get_by_slug(session, slug)
    if company is None:
        raise NotFound(f"No company with the slug {slug!r}.", code="company_not_found")
    return company


def update(
    *, session: Session, principal: Principal, data: CompanyUpdate, if_match: str | None
) -> Company:
    company = session.scalar(
        select(Company).where(Company.id == principal.company_id).with_for_update()
    )
    if company is None:  # deleted while the request ran
        raise NotFound("The company does not exist.", code="company_not_found")
    check_if_match(if_match, etag(company.version))
    changes = data.model_dump(exclude_unset=True)
    if changes:
        previous_check = company.credit_check
        for field, value in changes.items():
            setattr(company, field, value.value if hasattr(value, "value") else value)
        company.updated_at = utcnow()
        if company.credit_check != previous_check:
            repo = PartnerRepository(session, company.id)
            flipped = repo.refresh_credit_states(company.credit_check)
            partner_events.touched(session, company.id, flipped)
        session.commit()
    return company
