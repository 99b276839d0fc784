"""Shared helpers for the HTTP API tests: API calls, and a plain-Python reference for the sales
order and CRM overview tests.

Every change goes through the public HTTP API, except the columns the API keeps read-only: the
ones only the accounting system writes (debtor balance, its sync time, the exceeded flag) and
timestamps, which the tests set in the database the same way an accounting sync would.
``tests.factories`` makes companies, users and tokens directly in the database.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from tests.conftest import Api

PARTNERS = "/api/v1/partners"
BULK = "/api/v1/partners/bulk/customer-stage"
ORDERS = "/api/v1/sales-orders"
OVERVIEW = "/api/v1/crm/overview"
OVERVIEW_CSV = "/api/v1/crm/overview.csv"
SUMMARY = "/api/v1/crm/summary"
TAGS = "/api/v1/tags"
USERS = "/api/v1/users"
TOKENS = "/api/v1/tokens"
ME = "/api/v1/me"
COMPANY = "/api/v1/company"

STAGES = ("lead", "potential", "active", "inactive", "lost")
OVERVIEW_FIELDS = [
    "number",
    "name",
    "country",
    "credit_limit",
    "debtor_balance",
    "debtor_balance_synced_at",
    "credit_limit_exceeded",
    "uninvoiced_total",
    "tags",
    "latest_sales_delivery_date",
    "owner",
    "customer_stage",
]
OVERVIEW_SORT_FIELDS = [
    "number",
    "name",
    "country",
    "credit_limit",
    "debtor_balance",
    "credit_limit_exceeded",
    "uninvoiced_total",
    "latest_sales_delivery_date",
    "owner",
    "customer_stage",
]
OVERVIEW_SORTS = [v for f in OVERVIEW_SORT_FIELDS for v in (f, f"-{f}")]

CENT = Decimal("0.01")
BOM = b"\xef\xbb\xbf"


# --- money -----------------------------------------------------------------------------------


def half_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: Decimal | str | None) -> str | None:
    return None if value is None else f"{half_up(Decimal(value)):.2f}"


def ref_line_total(quantity: str, unit_price: str, discount: str = "0") -> Decimal:
    q, p, d = Decimal(quantity), Decimal(unit_price), Decimal(discount)
    return half_up(q * p * (Decimal(100) - d) / Decimal(100))


def ref_order_total(lines: Sequence[dict[str, Any]]) -> Decimal:
    return sum(
        (
            ref_line_total(
                str(li["quantity"]), str(li["unit_price"]), str(li.get("discount_percent", "0"))
            )
            for li in lines
        ),
        Decimal("0.00"),
    )


def ref_base_total(total: Decimal, rate: Decimal | str) -> Decimal:
    return half_up(total * Decimal(rate))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- API calls -------------------------------------------------------------------------------


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None


def line(
    quantity: str = "1",
    unit_price: str = "100.00",
    discount_percent: str | None = None,
    description: str = "Goods",
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "description": description,
        "quantity": quantity,
        "unit_price": unit_price,
    }
    if discount_percent is not None:
        item["discount_percent"] = discount_percent
    return item


def create_partner(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"name": "Nordic Deli A/S", "country": "DK", **fields}
    return ok(api.post(PARTNERS, json=body), 201)


def get_partner(api: Api, number: int) -> dict[str, Any]:
    return ok(api.get(f"{PARTNERS}/{number}"))


def patch_partner(api: Api, number: int, **fields: Any) -> dict[str, Any]:
    return ok(api.patch(f"{PARTNERS}/{number}", json=fields))


def partner_count(api: Api) -> int:
    total = ok(api.get(PARTNERS, params={"include_total": "true", "limit": 1}))["total"]
    assert isinstance(total, int)
    return total


def stage_history(api: Api, number: int) -> list[dict[str, Any]]:
    return walk(api, f"{PARTNERS}/{number}/stage-history", limit=500)


def create_tag(api: Api, name: str) -> dict[str, Any]:
    return ok(api.post(TAGS, json={"name": name}), 201)


def create_user(api: Api, name: str = "Sales Person", email: str | None = None) -> dict[str, Any]:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    return ok(api.post(USERS, json={"name": name, "email": email}), 201)


def create_token(
    api: Api, scope: str, *, user_id: str | None = None, name: str = "test"
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "scope": scope}
    if user_id is not None:
        body["user_id"] = user_id
    return ok(api.post(TOKENS, json=body), 201)


def with_token(api: Api, secret: str) -> Api:
    """The same client, authenticating with another token of the same company."""
    tenant = dataclasses.replace(api.tenant, tokens={**api.tenant.tokens, "custom": secret})
    return Api(api.client, tenant, "custom")


def create_order(
    api: Api, partner_number: int, lines: list[dict[str, Any]] | None = None, **fields: Any
) -> dict[str, Any]:
    body = {"partner_number": partner_number, "lines": lines or [line()], **fields}
    return ok(api.post(ORDERS, json=body), 201)


def get_order(api: Api, number: int) -> dict[str, Any]:
    return ok(api.get(f"{ORDERS}/{number}"))


def transition(api: Api, number: int, action: str) -> Any:
    return api.post(f"{ORDERS}/{number}/{action}")


def walk(api: Api, path: str, *, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, following next_cursor page by page."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10_000):
        query = {**params, "limit": limit}
        if cursor:
            query["cursor"] = cursor
        body = ok(api.get(path, params=query))
        assert len(body["items"]) <= limit
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items
        assert body["items"], "a page with a next_cursor must not be empty"
    raise AssertionError("the cursor never ended")


def numbers(items: Iterable[dict[str, Any]]) -> list[int]:
    return [item["number"] for item in items]


# --- problems --------------------------------------------------------------------------------


def locs(problem: dict[str, Any]) -> list[list[Any]]:
    return [e["loc"] for e in problem.get("errors", [])]


def assert_loc(problem: dict[str, Any], *loc: Any) -> None:
    """Some entry of errors[] names the field ``loc`` (or something inside it)."""
    want = list(loc)
    assert any(list(got[: len(want)]) == want for got in locs(problem)), problem


# --- the overview's CSV ----------------------------------------------------------------------


def overview_csv(api: Api, **params: Any) -> tuple[Any, list[list[str]]]:
    """The response and its parsed lines (header first), without the BOM."""
    r = api.get(OVERVIEW_CSV, params=params)
    assert r.status_code == 200, r.text
    text = r.content.decode("utf-8")
    text = text.removeprefix("\ufeff")
    return r, list(csv.reader(io.StringIO(text, newline="")))


def csv_cells_of(row: dict[str, Any]) -> list[str]:
    """The CSV line the API should write for one JSON overview row."""

    def text(value: str | None) -> str:
        if not value:
            return ""
        return "'" + value if value[0] in "=+-@\t\r" else value

    return [
        str(row["number"]),
        text(row["name"]),
        row["country"],
        row["credit_limit"] or "",
        row["debtor_balance"] or "",
        row["debtor_balance_synced_at"] or "",
        "true" if row["credit_limit_exceeded"] else "false",
        row["uninvoiced_total"],
        text(";".join(row["tags"])),
        row["latest_sales_delivery_date"] or "",
        text(row["owner"]["name"]) if row["owner"] else "",
        row["customer_stage"],
    ]


# --- read-only columns, as the accounting sync (or the clock) would write them ---------------


def set_partner_columns(
    session: Session, company_id: uuid.UUID, number: int, **values: Any
) -> None:
    """Set columns the API keeps read-only (balances, timestamps...), for list tests."""
    from app.models import Partner

    result = session.execute(
        update(Partner)
        .where(Partner.company_id == company_id, Partner.number == number)
        .values(**values)
    )
    assert result.rowcount == 1
    session.commit()


def sync_balance(
    session: Session,
    company_id: uuid.UUID,
    number: int,
    balance: str | None,
    credit_limit: str | None,
    synced_at: datetime | None = None,
) -> None:
    """Store a debtor balance and its exceeded state (balance > limit), like a sync run."""
    exceeded = (
        balance is not None
        and credit_limit is not None
        and Decimal(balance) > Decimal(credit_limit)
    )
    set_partner_columns(
        session,
        company_id,
        number,
        debtor_balance=None if balance is None else Decimal(balance),
        debtor_balance_synced_at=(synced_at or datetime.now(UTC)) if balance is not None else None,
        credit_limit_exceeded=exceeded,
    )


# --- reference sorting -----------------------------------------------------------------------


def _sort_value(row: dict[str, Any], field: str) -> Any:
    value = row[field]
    if value is None:
        return None
    if field in ("credit_limit", "debtor_balance", "uninvoiced_total"):
        return Decimal(value)
    if field == "owner":
        return value["name"]
    if field == "customer_stage":
        return STAGES.index(value)
    return value


def ref_sort(rows: Sequence[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    """Rows ordered like the API: by the field, nulls last either way, ties by number in the
    same direction."""
    descending = sort.startswith("-")
    field = sort.lstrip("-")
    present = [r for r in rows if _sort_value(r, field) is not None]
    absent = [r for r in rows if _sort_value(r, field) is None]
    present.sort(key=lambda r: (_sort_value(r, field), r["number"]), reverse=descending)
    absent.sort(key=lambda r: r["number"], reverse=descending)
    return present + absent


def order_sort(rows: Sequence[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    """Sales orders ordered like the API (same rules; money compared as numbers)."""
    descending = sort.startswith("-")
    field = sort.lstrip("-")

    def value(r: dict[str, Any]) -> Any:
        v = r[field]
        return Decimal(v) if field == "total_base" and v is not None else v

    present = [r for r in rows if value(r) is not None]
    absent = [r for r in rows if value(r) is None]
    present.sort(key=lambda r: (value(r), r["number"]), reverse=descending)
    absent.sort(key=lambda r: r["number"], reverse=descending)
    return present + absent
