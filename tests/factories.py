"""Plain factory functions for test data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.auth.dependencies import Principal
from app.companies import service as company_service
from app.models import Company, Partner, SalesOrder, User
from app.models.enums import Scope
from app.partners import service as partner_service
from app.partners.schemas import PartnerCreate
from app.sales_orders import service as order_service
from app.sales_orders.schemas import SalesOrderCreate
from app.tags import service as tag_service
from app.tags.schemas import TagCreate
from app.tokens import service as token_service
from app.users import service as user_service
from app.users.schemas import UserCreate


@dataclass
class Tenant:
    company: Company
    admin: User
    tokens: dict[str, str]

    @property
    def principal(self) -> Principal:
        return Principal.acting_as(self.company, self.admin)


def make_company(session: Session, *, slug: str | None = None, **overrides: Any) -> Company:
    return company_service.create(
        session=session,
        slug=slug or f"co-{uuid.uuid4().hex[:8]}",
        name=overrides.get("name", "Test Foods ApS"),
        base_currency=overrides.get("base_currency", "DKK"),
    )


def make_user(session: Session, company: Company, **overrides: Any) -> User:
    data = UserCreate(
        name=overrides.get("name", "Test User"),
        email=overrides.get("email", f"user-{uuid.uuid4().hex[:8]}@example.com"),
    )
    return user_service.create(session=session, company_id=company.id, data=data)


def make_tenant(session: Session, *, slug: str | None = None) -> Tenant:
    company = make_company(session, slug=slug)
    admin = make_user(session, company, name="Admin", email=f"admin@{company.slug}.example")
    tokens = {
        scope.value: token_service.create(
            session=session,
            company_id=company.id,
            user_id=admin.id,
            name=scope.value,
            scope=scope,
            max_active=100,
        ).secret
        for scope in Scope
    }
    return Tenant(company=company, admin=admin, tokens=tokens)


def make_tag(session: Session, tenant: Tenant, name: str) -> Any:
    return tag_service.create(
        session=session, principal=tenant.principal, data=TagCreate(name=name)
    )


def make_partner(session: Session, tenant: Tenant, **overrides: Any) -> Partner:
    data = {"name": "Nordic Deli A/S", "country": "DK", **overrides}
    return partner_service.create(
        session=session, principal=tenant.principal, data=PartnerCreate(**data)
    )


def make_order(
    session: Session,
    tenant: Tenant,
    partner_number: int,
    lines: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> SalesOrder:
    """An order through the service (as ``POST /sales-orders`` makes it), without HTTP."""
    body = {
        "partner_number": partner_number,
        "lines": lines or [{"description": "Goods", "quantity": "1", "unit_price": "100.00"}],
        **fields,
    }
    return order_service.create(
        session=session, principal=tenant.principal, data=SalesOrderCreate(**body)
    )


def transition_order(session: Session, tenant: Tenant, number: int, action: str) -> SalesOrder:
    return order_service.transition(
        session=session, principal=tenant.principal, number=number, action=action
    )
