"""Helpers of the accounting tests: routes, API calls and small checks."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from tests.accounting.fake_economic import AGREEMENT_GRANT_TOKEN, APP_SECRET_TOKEN, FakeEconomic
from tests.conftest import Api

CONNECTION = "/api/v1/accounting/connection"
SYNC = "/api/v1/accounting/sync"
RUNS = "/api/v1/accounting/sync-runs"
BALANCES = "/api/v1/accounting/balances"
PARTNERS = "/api/v1/partners"
ORDERS = "/api/v1/sales-orders"
OVERVIEW = "/api/v1/crm/overview"
COMPANY = "/api/v1/company"

TOKENS = (APP_SECRET_TOKEN, AGREEMENT_GRANT_TOKEN)
RUN_FIELDS = {
    "id",
    "status",
    "trigger",
    "started_at",
    "finished_at",
    "fetched",
    "updated",
    "unchanged",
    "unmatched",
    "warnings",
    "error",
}


def events(text: str) -> list[str]:
    """The ``event`` of every JSON log line in ``text``."""
    found = []
    for raw in text.splitlines():
        raw = raw.strip()
        if raw.startswith("{"):
            try:
                found.append(json.loads(raw).get("event"))
            except ValueError:
                continue
    return found


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None


def connect(api: Api, fake: FakeEconomic, **fields: Any) -> dict[str, Any]:
    body = {
        "provider": "e-conomic",
        "base_url": fake.base_url,
        "app_secret_token": APP_SECRET_TOKEN,
        "agreement_grant_token": AGREEMENT_GRANT_TOKEN,
        **fields,
    }
    return ok(api.put(CONNECTION, json=body))


def start_sync(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    """POST /sync (202), then the run at its Location (TestClient ran the background task)."""
    r = api.post(SYNC)
    started = ok(r, 202)
    location = r.headers["location"]
    assert location == f"{RUNS}/{started['id']}"
    return started, ok(api.get(location))


def sync_ok(api: Api) -> dict[str, Any]:
    _, run = start_sync(api)
    assert run["status"] == "succeeded", run
    assert run["error"] is None
    return run


def sync_failed(api: Api, code: str) -> dict[str, Any]:
    _, run = start_sync(api)
    assert run["status"] == "failed", run
    assert run["finished_at"] is not None
    assert run["error"] is not None, run
    assert run["error"]["code"] == code, run
    assert run["error"]["message"]
    return run


def create_partner(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"name": "Nordic Deli A/S", "country": "DK", "customer_stage": "active", **fields}
    return ok(api.post(PARTNERS, json=body), 201)


def get_partner(api: Api, number: int) -> dict[str, Any]:
    return ok(api.get(f"{PARTNERS}/{number}"))


def patch_partner(api: Api, number: int, **fields: Any) -> dict[str, Any]:
    return ok(api.patch(f"{PARTNERS}/{number}", json=fields))


def balances(api: Api, numbers: list[int]) -> dict[int, tuple[str | None, str | None, bool]]:
    """Each partner's (debtor_balance, debtor_balance_synced_at, credit_limit_exceeded)."""
    out = {}
    for number in numbers:
        p = get_partner(api, number)
        out[number] = (
            p["debtor_balance"],
            p["debtor_balance_synced_at"],
            p["credit_limit_exceeded"],
        )
    return out


def line(quantity: str = "1", unit_price: str = "100.00") -> dict[str, Any]:
    return {"description": "Goods", "quantity": quantity, "unit_price": unit_price}


def create_order(api: Api, partner_number: int, unit_price: str = "100.00") -> dict[str, Any]:
    body = {"partner_number": partner_number, "lines": [line(unit_price=unit_price)]}
    return ok(api.post(ORDERS, json=body), 201)


def get_order(api: Api, number: int) -> dict[str, Any]:
    return ok(api.get(f"{ORDERS}/{number}"))


def transition(api: Api, number: int, action: str) -> dict[str, Any]:
    return ok(api.post(f"{ORDERS}/{number}/{action}"))


def overview(api: Api, **params: Any) -> list[dict[str, Any]]:
    body = ok(api.get(OVERVIEW, params={"limit": 500, **params}))
    assert body["next_cursor"] is None
    items: list[dict[str, Any]] = body["items"]
    return items


def money(value: str | Decimal) -> str:
    return f"{Decimal(value):.2f}"


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for token in TOKENS:
            assert token not in text, f"a token leaked into: {text[:300]}"
