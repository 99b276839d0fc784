"""The demo company: a few users, tags and partners, so a first run has something to show."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from app.auth import service as tokens
from app.auth.dependencies import Principal
from app.companies import service as companies
from app.companies.repository import get_by_slug
from app.models.enums import CustomerStage, Scope
from app.partners import service as partners
from app.partners.schemas import LocationIn, PartnerCreate
from app.tags import service as tags
from app.tags.schemas import TagCreate
from app.users import service as users
from app.users.repository import UserRepository
from app.users.schemas import UserCreate

DEMO_SLUG = "demo"
ADMIN_EMAIL = "admin@demo.example"

_PARTNERS = [
    ("Nordic Deli Wholesale A/S", "DK", ["Wholesale"], CustomerStage.active, "50000.00", 0),
    ("Bageriet Øresund ApS", "DK", ["Organic", "Retail"], CustomerStage.potential, None, 1),
    ("Hamburg Feinkost GmbH", "DE", ["Export", "Wholesale"], CustomerStage.active, "120000.00", 2),
    ("Malmö Matmarknad AB", "SE", ["Export"], CustomerStage.lead, None, 1),
    ("Fjord Seafood AS", "NO", ["Export", "Organic"], CustomerStage.inactive, "25000.00", 2),
    ("Café Latte I/S", "DK", ["Retail"], CustomerStage.lost, None, None),
    ("Amsterdam Organics B.V.", "NL", ["Organic", "Export"], CustomerStage.active, "75000.00", 0),
    ("Packaging Supplies Ltd", "GB", [], None, None, None),
]


def ensure_demo(session: Session) -> str:
    company = get_by_slug(session, DEMO_SLUG)
    if company is None:
        company = companies.create(
            session=session, slug=DEMO_SLUG, name="Demo Foods ApS", base_currency="DKK"
        )
        admin = users.create(
            session=session,
            company_id=company.id,
            data=UserCreate(name="Demo Admin", email=ADMIN_EMAIL),
        )
        sellers = [
            users.create(
                session=session,
                company_id=company.id,
                data=UserCreate(name=name, email=email),
            )
            for name, email in (
                ("Mette Sørensen", "mette@demo.example"),
                ("Lars Jensen", "lars@demo.example"),
                ("Anna Berg", "anna@demo.example"),
            )
        ]
        principal = Principal(company=company, user=admin, scope=Scope.admin, token_id=admin.id)
        for tag in ("Wholesale", "Organic", "Export", "Retail"):
            tags.create(session=session, principal=principal, data=TagCreate(name=tag))
        for index, (name, country, tag_names, stage, limit, owner) in enumerate(_PARTNERS):
            partners.create(
                session=session,
                principal=principal,
                data=PartnerCreate(
                    name=name,
                    country=country,
                    tags=tag_names,
                    customer_stage=stage,
                    credit_limit=Decimal(limit) if limit else None,
                    owner_id=sellers[owner].id if owner is not None else None,
                    accounting_ref=str(1000 + index),
                    locations=[LocationIn(name="Head office", country=country, is_primary=True)],
                ),
            )
    admin_user = UserRepository(session, company.id).get_by_email(ADMIN_EMAIL)
    if admin_user is None:
        admin_user = users.create(
            session=session,
            company_id=company.id,
            data=UserCreate(name="Demo Admin", email=ADMIN_EMAIL),
        )
    issued = tokens.create(
        session=session,
        company_id=company.id,
        user_id=admin_user.id,
        name="demo",
        scope=Scope.admin,
    )
    return issued.secret
