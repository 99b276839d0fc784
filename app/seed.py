"""``crm seed``: deterministic, realistic bulk data for benchmarks and demos.

Partners with stages, tags, owners, locations, several countries and currencies, credit limits
and balances (some over their limit), and sales orders in every status with delivery dates over
several years and about three lines each. PostgreSQL is loaded with COPY, SQLite with batched
inserts. The maintained partner columns are computed from the orders afterwards, in SQL, so
``crm check`` finds no drift.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from app.companies.repository import get_by_slug
from app.companies.service import create as create_company
from app.core.money import CENT
from app.models import (
    Company,
    Partner,
    PartnerLocation,
    PartnerTag,
    SalesOrder,
    SalesOrderLine,
    Tag,
    User,
)
from app.models.enums import STAGE_ORDER
from app.numbers.repository import last_number, set_last_number
from app.partners.repository import PartnerRepository
from app.sales_orders.repository import repair_partner_totals

COUNTRIES = [
    ("DK", "DKK", 40),
    ("SE", "SEK", 15),
    ("DE", "EUR", 15),
    ("NO", "NOK", 10),
    ("NL", "EUR", 8),
    ("GB", "GBP", 7),
    ("FI", "EUR", 5),
]
RATES = {
    "DKK": Decimal(1),
    "EUR": Decimal("7.4600"),
    "SEK": Decimal("0.6520"),
    "NOK": Decimal("0.6390"),
    "GBP": Decimal("8.7100"),
}
PREFIXES = [
    "Nordic",
    "Baltic",
    "Green",
    "Golden",
    "Royal",
    "Fresh",
    "Organic",
    "Old Town",
    "Harbour",
    "Valley",
    "Fjord",
    "Meadow",
    "Copper",
    "Amber",
    "Oak",
    "Birch",
]
TRADES = [
    "Deli",
    "Bakery",
    "Foods",
    "Wholesale",
    "Market",
    "Kitchen",
    "Dairy",
    "Seafood",
    "Grocers",
    "Catering",
    "Provisions",
    "Trading",
]
SUFFIX = {"DK": "A/S", "SE": "AB", "DE": "GmbH", "NO": "AS", "NL": "B.V.", "GB": "Ltd", "FI": "Oy"}
PRODUCTS = [
    ("Rye bread 1 kg", "18.50"),
    ("Butter 250 g", "21.95"),
    ("Smoked salmon 200 g", "54.00"),
    ("Organic oats 1 kg", "16.25"),
    ("Honey 450 g", "41.80"),
    ("Pickled herring", "32.50"),
    ("Cheese 1 kg", "119.00"),
    ("Apple juice 1 l", "22.40"),
    ("Crispbread", "17.95"),
    ("Coffee beans 500 g", "74.50"),
]
TAGS = ["Wholesale", "Retail", "Export", "Organic", "HoReCa", "Key account", "Discount", "New"]
STATUSES = [("invoiced", 68), ("open", 16), ("delivered", 11), ("cancelled", 5)]
BATCH = 5000


@dataclass
class SeedReport:
    partners: int
    orders: int
    lines: int


def _weighted(rng: random.Random, items: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    return rng.choices(items, weights=[i[-1] for i in items])[0]


def _batched(rows: Iterator[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Writer:
    """COPY on PostgreSQL, batched executemany elsewhere."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"

    def write(self, model: Any, rows: Iterator[dict[str, Any]]) -> int:
        table = model.__table__
        count = 0
        if self.postgres:
            columns = [c.name for c in table.columns if c.computed is None]
            raw = self.session.connection().connection.driver_connection
            assert raw is not None
            with (
                raw.cursor() as cur,
                cur.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row([row.get(c) for c in columns])
                    count += 1
            return count
        for batch in _batched(rows):
            self.session.execute(insert(table), batch)
            count += len(batch)
        return count


# The tables a seed fills, analyzed at its end.
_ANALYZED = ("partners", "partner_tags", "partner_locations", "sales_orders", "sales_order_lines")


def seed(
    session: Session,
    *,
    slug: str,
    partners: int,
    orders: int,
    seed_value: int = 1,
    progress: Callable[[str], None] = lambda _: None,
) -> SeedReport:
    rng = random.Random(seed_value)
    company = get_by_slug(session, slug) or create_company(
        session=session, slug=slug, name=f"{slug.title()} Foods", base_currency="DKK"
    )
    company_id = company.id
    writer = _Writer(session)
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    users: list[dict[str, Any]] = [
        {
            "company_id": company_id,
            "id": uuid.UUID(int=rng.getrandbits(128)),
            "name": f"Seller {i}",
            "email": f"seller{i}.{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}@{slug}.example",
            "created_at": now,
        }
        for i in range(1, 21)
    ]
    for u in users:
        u["email_key"] = u["email"].lower()
    writer.write(User, iter(users))
    existing = {
        t.name_key: t.id for t in session.scalars(select(Tag).where(Tag.company_id == company_id))
    }
    tag_ids = []
    for name in TAGS:
        if name.lower() not in existing:
            tag_id = uuid.UUID(int=rng.getrandbits(128))
            session.execute(
                insert(Tag),
                [
                    {
                        "company_id": company_id,
                        "id": tag_id,
                        "name": name,
                        "name_key": name.lower(),
                        "created_at": now,
                    }
                ],
            )
            existing[name.lower()] = tag_id
        tag_ids.append(existing[name.lower()])

    first = last_number(session, company_id, "partner")
    partner_rows: list[tuple[uuid.UUID, str, Any]] = []  # id, currency, owner id

    def partner_iter() -> Iterator[dict[str, Any]]:
        for i in range(partners):
            number = first + i + 1
            country, currency, _ = _weighted(rng, COUNTRIES)
            pid = uuid.UUID(int=rng.getrandbits(128))
            seller = rng.choice(users) if rng.random() < 0.85 else None
            owner = seller["id"] if seller else None
            stage = rng.choice(STAGE_ORDER).value if rng.random() < 0.9 else None
            limit = (
                Decimal(rng.choice([10, 25, 50, 75, 100, 250])) * 1000
                if rng.random() < 0.6
                else None
            )
            balance = (Decimal(rng.randint(0, 12_000_000)) / 100) if rng.random() < 0.7 else None
            partner_rows.append((pid, currency, owner))
            created = now - timedelta(days=rng.randint(0, 2000), seconds=rng.randint(0, 86399))
            yield {
                "company_id": company_id,
                "id": pid,
                "number": number,
                "name": f"{rng.choice(PREFIXES)} {rng.choice(TRADES)} {number} {SUFFIX[country]}",
                "country": country,
                "vat_id": f"{country}{rng.randint(10_000_000, 99_999_999)}",
                "currency": currency,
                "email": f"orders{number}@example.com",
                "phone": None,
                "website": None,
                "owner_id": owner,
                "owner_name": seller["name"] if seller else None,
                "customer_stage": stage,
                "credit_limit": limit,
                "accounting_ref": str(100_000 + number),
                "debtor_balance": balance,
                "debtor_balance_synced_at": now if balance is not None else None,
                "credit_limit_exceeded": False,
                "uninvoiced_total": Decimal("0.00"),
                "latest_sales_delivery_date": None,
                "version": 1,
                "created_at": created,
                "updated_at": created,
            }

    progress(f"partners: {writer.write(Partner, partner_iter())}")

    def location_iter() -> Iterator[dict[str, Any]]:
        for pid, _currency, _owner in partner_rows:
            yield {
                "company_id": company_id,
                "id": uuid.UUID(int=rng.getrandbits(128)),
                "partner_id": pid,
                "position": 0,
                "name": "Head office",
                "address": None,
                "postal_code": None,
                "city": None,
                "country": "DK",
                "is_primary": True,
            }

    writer.write(PartnerLocation, location_iter())

    def tag_iter() -> Iterator[dict[str, Any]]:
        for pid, _currency, _owner in partner_rows:
            for tag_id in rng.sample(tag_ids, rng.choice([0, 1, 1, 2, 2, 3])):
                yield {"company_id": company_id, "partner_id": pid, "tag_id": tag_id}

    writer.write(PartnerTag, tag_iter())

    first_order = last_number(session, company_id, "sales_order")
    line_rows: list[dict[str, Any]] = []
    lines_written = 0
    start_day = date(2023, 1, 1)

    def order_iter() -> Iterator[dict[str, Any]]:
        for i in range(orders):
            pid, currency, owner = partner_rows[rng.randrange(len(partner_rows))]
            status = _weighted(rng, STATUSES)[0]
            order_date = start_day + timedelta(days=rng.randint(0, 1430))
            delivery = (
                order_date + timedelta(days=rng.randint(1, 30)) if rng.random() < 0.9 else None
            )
            oid = uuid.UUID(int=rng.getrandbits(128))
            total = Decimal("0.00")
            for position in range(rng.choice([1, 2, 3, 3, 4, 5])):
                description, price = rng.choice(PRODUCTS)
                quantity = Decimal(rng.randint(1, 400))
                unit_price = Decimal(price)
                discount = Decimal(rng.choice([0, 0, 0, 5, 10, 12.5]))
                line_total = (quantity * unit_price * (100 - discount) / 100).quantize(
                    CENT, rounding=ROUND_HALF_UP
                )
                total += line_total
                line_rows.append(
                    {
                        "company_id": company_id,
                        "id": uuid.UUID(int=rng.getrandbits(128)),
                        "order_id": oid,
                        "position": position,
                        "description": description,
                        "sku": None,
                        "quantity": quantity,
                        "unit_price": unit_price,
                        "discount_percent": discount,
                        "total": line_total,
                    }
                )
            rate = RATES[currency]
            stamp = datetime.combine(order_date, datetime.min.time(), tzinfo=UTC)
            yield {
                "company_id": company_id,
                "id": oid,
                "number": first_order + i + 1,
                "partner_id": pid,
                "status": status,
                "order_date": order_date,
                "delivery_date": delivery,
                "currency": currency,
                "exchange_rate": rate,
                "reference": None,
                "owner_id": owner,
                "total": total,
                "total_base": (total * rate).quantize(CENT, rounding=ROUND_HALF_UP),
                "version": 1,
                "created_at": stamp,
                "updated_at": stamp,
                "delivered_at": stamp if status in ("delivered", "invoiced") else None,
                "invoiced_at": stamp if status == "invoiced" else None,
                "cancelled_at": stamp if status == "cancelled" else None,
            }

    order_count = 0
    if partner_rows:
        # Orders first, then their lines, a chunk at a time: memory stays bounded.
        orders_left = order_iter()
        while True:
            chunk = [row for _, row in zip(range(50_000), orders_left, strict=False)]
            if not chunk:
                break
            order_count += writer.write(SalesOrder, iter(chunk))
            lines_written += writer.write(SalesOrderLine, iter(line_rows))
            line_rows.clear()
    progress(f"orders: {order_count}, lines: {lines_written}")

    for kind, value in (("partner", first + partners), ("sales_order", first_order + order_count)):
        set_last_number(session, company_id, kind, value)
    # Every partner of the company at once (the company's orders scanned once); only those
    # whose columns change are written.
    repair_partner_totals(session, company_id, None)
    company_row = session.get(Company, company_id)
    assert company_row is not None
    PartnerRepository(session, company_id).refresh_credit_states(company_row.credit_check)
    session.commit()
    progress("maintained columns computed")
    # Fresh statistics: without them the planner guesses a few dozen rows per company and
    # answered the overview's first page with a scan of every partner (70 ms instead of 1 ms
    # on 50k partners) until autovacuum came by.
    for table in _ANALYZED:  # one at a time: SQLite's ANALYZE takes one name
        session.execute(text(f"ANALYZE {table}"))
    session.commit()
    progress("tables analyzed")
    return SeedReport(partners=partners, orders=order_count, lines=lines_written)
