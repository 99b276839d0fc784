"""Every accounting route: another company never sees this one's connection or runs, and the
scopes (read < write < admin) are enforced."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.accounting.fake_economic import (
    AGREEMENT_GRANT_TOKEN,
    APP_SECRET_TOKEN,
    FakeEconomic,
    customer,
)
from tests.accounting.helpers import (
    BALANCES,
    CONNECTION,
    RUNS,
    SYNC,
    connect,
    create_partner,
    get_partner,
    ok,
    sync_ok,
)
from tests.conftest import Api, assert_problem


def _now() -> str:
    """A current as_of: newer than anything stored, and not in the future (which is 422)."""
    return datetime.now(UTC).isoformat()


PUSH = {"balances": [{"accounting_ref": "1", "balance": "5.00"}], "as_of": "2025-01-01T00:00:00Z"}


def connection_body(fake: FakeEconomic) -> dict[str, Any]:
    return {
        "provider": "e-conomic",
        "base_url": fake.base_url,
        "app_secret_token": APP_SECRET_TOKEN,
        "agreement_grant_token": AGREEMENT_GRANT_TOKEN,
    }


@pytest.fixture
def a_synced(api: Api, economic: FakeEconomic) -> dict[str, Any]:
    connect(api, economic)
    partner = create_partner(api, accounting_ref="1")
    economic.set_customers([customer(1, "77.00")])
    run = sync_ok(api)
    return {"run": run, "partner": partner["number"]}


def test_another_company_sees_no_connection_and_no_runs(
    api: Api, other_api: Api, a_synced: dict[str, Any], economic: FakeEconomic
) -> None:
    assert_problem(other_api.get(CONNECTION), 404, "accounting_not_connected")
    assert ok(other_api.get(RUNS, params={"include_total": "true"})) == {
        "items": [],
        "next_cursor": None,
        "total": 0,
    }
    run_id = a_synced["run"]["id"]
    mine = other_api.get(f"{RUNS}/{run_id}")
    missing = other_api.get(f"{RUNS}/00000000-0000-4000-8000-000000000000")
    assert_problem(mine, 404, "sync_run_not_found")
    assert_problem(missing, 404, "sync_run_not_found")
    assert mine.json()["title"] == missing.json()["title"]
    # B has no connection of its own: its sync does not borrow A's.
    economic.clear_faults()
    before = len(economic.requests)
    assert_problem(other_api.post(SYNC), 409, "accounting_not_connected")
    assert len(economic.requests) == before
    assert ok(api.get(RUNS))["items"][0]["id"] == run_id


def test_another_companys_sync_and_push_never_touch_this_company(
    api: Api, other_api: Api, a_synced: dict[str, Any], foreign: FakeEconomic
) -> None:
    other_partner = create_partner(other_api, accounting_ref="1")["number"]
    ok(other_api.put(CONNECTION, json=connection_body(foreign)))
    foreign.set_customers([customer(1, "999.00")])
    sync_ok(other_api)
    body = ok(other_api.post(BALANCES, json={**PUSH, "as_of": _now()}))
    assert body["updated"] == 1
    assert get_partner(api, a_synced["partner"])["debtor_balance"] == "77.00"
    assert get_partner(other_api, other_partner)["debtor_balance"] == "5.00"
    # Each company lists only its own runs; A's connection still points at A's server.
    assert [r["id"] for r in ok(api.get(RUNS))["items"]] == [a_synced["run"]["id"]]
    assert len(ok(other_api.get(RUNS))["items"]) == 1
    assert ok(api.get(CONNECTION))["base_url"] != ok(other_api.get(CONNECTION))["base_url"]


def test_read_scope(api: Api, a_synced: dict[str, Any], economic: FakeEconomic) -> None:
    reader = api.as_("read")
    assert_problem(reader.get(CONNECTION), 403, "insufficient_scope")
    assert_problem(
        reader.put(CONNECTION, json=connection_body(economic)), 403, "insufficient_scope"
    )
    assert_problem(reader.post(SYNC), 403, "insufficient_scope")
    assert_problem(reader.post(BALANCES, json=PUSH), 403, "insufficient_scope")
    assert len(ok(reader.get(RUNS))["items"]) == 1
    assert ok(reader.get(f"{RUNS}/{a_synced['run']['id']}"))["status"] == "succeeded"
    # Nothing changed.
    assert get_partner(api, a_synced["partner"])["debtor_balance"] == "77.00"
    assert len(ok(api.get(RUNS))["items"]) == 1


def test_write_scope(api: Api, a_synced: dict[str, Any], economic: FakeEconomic) -> None:
    writer = api.as_("write")
    assert_problem(writer.get(CONNECTION), 403, "insufficient_scope")
    r = writer.put(CONNECTION, json={**connection_body(economic), "enabled": False})
    assert_problem(r, 403, "insufficient_scope")
    assert ok(api.get(CONNECTION))["enabled"] is True
    # A writer starts syncs and pushes balances.
    assert sync_ok(writer)["status"] == "succeeded"
    assert ok(writer.post(BALANCES, json={**PUSH, "as_of": _now()}))["updated"] == 1
    assert len(ok(writer.get(RUNS))["items"]) == 2


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", CONNECTION, None),
        ("PUT", CONNECTION, {"provider": "e-conomic"}),
        ("POST", SYNC, None),
        ("GET", RUNS, None),
        ("GET", f"{RUNS}/00000000-0000-4000-8000-000000000000", None),
        ("POST", BALANCES, PUSH),
    ],
)
def test_every_route_needs_a_token(api: Api, method: str, path: str, body: Any) -> None:
    kwargs = {"json": body} if body is not None else {}
    assert_problem(api.client.request(method, path, **kwargs), 401)
    bad = {"Authorization": "Bearer crm_not-a-real-token"}
    assert_problem(api.client.request(method, path, headers=bad, **kwargs), 401)
