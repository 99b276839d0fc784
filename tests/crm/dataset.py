"""A small company for the overview, CSV and summary tests, and the rows it must produce.

Ten partners (nine with a customer stage), made through the API with real sales orders; only
the accounting columns (balance, its sync time, the exceeded flag) and `updated_at` are set in
the database, as an accounting sync and the clock would. The expected overview rows are
computed here in plain Python from the same specification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from tests.conftest import Api
from tests.helpers import (
    create_order,
    create_partner,
    create_tag,
    create_user,
    line,
    ok,
    patch_partner,
    ref_base_total,
    ref_line_total,
    set_partner_columns,
    sync_balance,
    transition,
)

# (unit price, currency, rate, delivery date, actions)
Order = tuple[str, str, str | None, str | None, tuple[str, ...]]


@dataclass
class Spec:
    name: str
    country: str
    stage: str | None
    tags: list[str]
    owner: str | None  # "admin", "bea", "carl"
    credit_limit: str | None
    balance: str | None
    orders: list[Order] = field(default_factory=list)


SPECS: list[Spec] = [
    Spec("Alpha Foods", "DK", "lead", ["Wholesale"], "bea", "1000.00", "1500.00"),
    Spec(
        "Bravo Dairy",
        "SE",
        "active",
        ["Organic", "Wholesale"],
        None,
        None,
        "200.00",
        [("100.00", "DKK", None, "2025-03-01", ())],
    ),
    Spec(
        "Charlie Bakery",
        "DK",
        "potential",
        [],
        "admin",
        "500.00",
        None,
        [("100.01", "EUR", "7.4555", "2025-05-01", ())],
    ),
    Spec(
        "Alpha Foods",
        "DE",
        "inactive",
        ["export"],
        "carl",
        "500.00",
        "100.00",
        [
            ("200.00", "DKK", None, "2024-12-01", ("deliver",)),
            ("50.00", "DKK", None, "2026-01-01", ("cancel",)),
        ],
    ),
    Spec("Delta Drinks", "NO", None, ["Wholesale"], "bea", "10.00", "20.00"),
    Spec(
        "Echo Eggs",
        "DK",
        "lost",
        ["Organic"],
        "bea",
        None,
        None,
        [("70.00", "DKK", None, "2025-03-01", ("invoice",))],
    ),
    Spec(
        "Foxtrot Fish",
        "FI",
        "active",
        ["Wholesale", "export"],
        "admin",
        "0.00",
        "0.00",
        [("100.00", "DKK", None, None, ())],
    ),
    Spec("Golf Grains", "DK", "lead", [], None, "1000.00", "1500.00"),
    Spec("Hotel Honey", "SE", "potential", ["Organic"], "carl", None, "250.00"),
    Spec(
        "India Ice",
        "DK",
        "active",
        [],
        "bea",
        "300.00",
        "301.00",
        [("10.00", "DKK", None, "2025-03-01", ())],
    ),
]


def synced_at(number: int) -> datetime:
    return datetime(2025, 2, number, 8, 30, tzinfo=UTC)


def updated_at(number: int) -> datetime:
    return datetime(2025, 1, number, 12, 0, tzinfo=UTC)


def iso(value: datetime) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Dataset:
    users: dict[str, dict[str, Any]]
    rows: list[dict[str, Any]]  # the expected overview rows, by number

    def row(self, number: int) -> dict[str, Any]:
        return next(r for r in self.rows if r["number"] == number)

    def numbers(self) -> list[int]:
        return [r["number"] for r in self.rows]


def build(api: Api, session: Session) -> Dataset:
    me = ok(api.get("/api/v1/me"))
    admin = me["user"]
    users = {
        "admin": {"id": admin["id"], "name": admin["name"]},
        "bea": {k: v for k, v in create_user(api, "Bea Berg").items() if k in ("id", "name")},
        "carl": {k: v for k, v in create_user(api, "Carl Dahl").items() if k in ("id", "name")},
    }
    for tag in ("Wholesale", "Organic", "export"):
        create_tag(api, tag)
    company_id = api.tenant.company.id
    rows: list[dict[str, Any]] = []
    for spec in SPECS:
        fields: dict[str, Any] = {"name": spec.name, "country": spec.country, "tags": spec.tags}
        if spec.stage:
            fields["customer_stage"] = spec.stage
        if spec.owner:
            fields["owner_id"] = users[spec.owner]["id"]
        if spec.credit_limit is not None:
            fields["credit_limit"] = spec.credit_limit
        number = create_partner(api, **fields)["number"]
        uninvoiced = Decimal("0.00")
        dates: list[str] = []
        for price, currency, rate, delivery, actions in spec.orders:
            body: dict[str, Any] = {"currency": currency}
            if rate:
                body["exchange_rate"] = rate
            if delivery:
                body["delivery_date"] = delivery
            order = create_order(api, number, [line("1", price)], **body)
            for action in actions:
                ok(transition(api, order["number"], action))
            base = ref_base_total(ref_line_total("1", price), rate or "1")
            assert order["total_base"] == f"{base:.2f}"
            if not actions or actions[-1] == "deliver":
                uninvoiced += base
            if delivery and "cancel" not in actions:
                dates.append(delivery)
        if spec.orders and spec.stage != "active":
            patch_partner(api, number, customer_stage=spec.stage)
        if spec.balance is not None:
            sync_balance(
                session, company_id, number, spec.balance, spec.credit_limit, synced_at(number)
            )
        set_partner_columns(session, company_id, number, updated_at=updated_at(number))
        if spec.stage is None:
            continue
        exceeded = (
            spec.balance is not None
            and spec.credit_limit is not None
            and Decimal(spec.balance) > Decimal(spec.credit_limit)
        )
        rows.append(
            {
                "number": number,
                "name": spec.name,
                "country": spec.country,
                "credit_limit": spec.credit_limit,
                "debtor_balance": spec.balance,
                "debtor_balance_synced_at": iso(synced_at(number))
                if spec.balance is not None
                else None,
                "credit_limit_exceeded": exceeded,
                "uninvoiced_total": f"{uninvoiced:.2f}",
                "tags": sorted(spec.tags, key=str.lower),
                "latest_sales_delivery_date": max(dates) if dates else None,
                "owner": users[spec.owner] if spec.owner else None,
                "customer_stage": spec.stage,
            }
        )
    return Dataset(users=users, rows=rows)
