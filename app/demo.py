"""The demo company: a few users, tags and partners, so a first run has something to show."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from app.auth.dependencies import Principal
from app.companies import service as companies
from app.companies.repository import get_by_slug
from app.core.config import get_settings
from app.models.enums import CustomerStage, Scope
from app.partners import service as partners
from app.partners.schemas import LocationIn, PartnerCreate
from app.sales_orders import service as sales_orders
from app.sales_orders.schemas import LineIn, SalesOrderCreate
from app.tags import service as tags
from app.tags.schemas import TagCreate
from app.tokens import service as tokens
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


# (partner number, days from today to delivery, currency, rate, lines, then what happens to it)
_ORDERS: list[
    tuple[int, int, str | None, str | None, list[tuple[str, str, str, str]], str | None]
] = [
    (
        1,
        5,
        None,
        None,
        [("Rye bread 1 kg", "120", "18.50", "5"), ("Butter 250 g", "60", "21.95", "0")],
        None,
    ),
    (1, -20, None, None, [("Sourdough 800 g", "200", "24.00", "10")], "invoice"),
    (3, 12, "EUR", "7.4603", [("Smoked salmon 200 g", "150", "6.80", "0")], None),
    (3, -3, "EUR", "7.4580", [("Pickled herring 500 g", "80", "4.25", "2.5")], "deliver"),
    (4, 30, "SEK", "0.6521", [("Crispbread 250 g", "500", "24.90", "0")], "cancel"),
    (
        7,
        9,
        "EUR",
        "7.4610",
        [("Organic oats 1 kg", "300", "2.15", "0"), ("Honey 450 g", "40", "5.60", "0")],
        None,
    ),
    (7, -40, "EUR", "7.4555", [("Organic flour 2 kg", "250", "3.05", "0")], "deliver"),
    (2, 2, None, None, [("Cinnamon buns", "96", "9.75", "0")], None),
]


def _make_orders(session: Session, principal: Principal) -> None:
    today = datetime.now(UTC).date()
    for number, days, currency, rate, lines, then in _ORDERS:
        order = sales_orders.create(
            session=session,
            principal=principal,
            data=SalesOrderCreate(
                partner_number=number,
                order_date=today - timedelta(days=7),
                delivery_date=today + timedelta(days=days),
                currency=currency,
                exchange_rate=Decimal(rate) if rate else None,
                lines=[
                    LineIn(
                        description=d,
                        quantity=Decimal(q),
                        unit_price=Decimal(p),
                        discount_percent=Decimal(disc),
                    )
                    for d, q, p, disc in lines
                ],
            ),
        )
        if then:
            sales_orders.transition(
                session=session, principal=principal, number=order.number, action=then
            )


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
        principal = Principal.acting_as(company, admin)
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
        _make_orders(session, principal)
    admin_user = UserRepository(session, company.id).get_by_email(ADMIN_EMAIL)
    if admin_user is None:
        admin_user = users.create(
            session=session,
            company_id=company.id,
            data=UserCreate(name="Demo Admin", email=ADMIN_EMAIL),
        )
    # Each run replaces the demo token of the run before: restarts do not pile up tokens.
    tokens.revoke_named(session=session, company_id=company.id, user_id=admin_user.id, name="demo")
    issued = tokens.create(
        session=session,
        company_id=company.id,
        user_id=admin_user.id,
        name="demo",
        scope=Scope.admin,
        max_active=get_settings().max_tokens_per_company,
    )
    return issued.secret
