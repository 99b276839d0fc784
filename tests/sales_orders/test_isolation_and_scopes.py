"""Tenant isolation and token scopes on the sales order, overview, CSV, summary and bulk routes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Api, assert_problem
from tests.helpers import (
    BULK,
    ORDERS,
    OVERVIEW,
    OVERVIEW_CSV,
    PARTNERS,
    SUMMARY,
    create_order,
    create_partner,
    get_order,
    get_partner,
    line,
    numbers,
    ok,
    overview_csv,
    stage_history,
    walk,
)


@pytest.fixture
def ours(api: Api) -> dict[str, Any]:
    """Our company: partner 1 (lead, no orders), partner 2 with open order 1 and order 2."""
    p1 = create_partner(api, name="Our Lead", customer_stage="lead")
    p2 = create_partner(api, name="Our Customer")
    o1 = create_order(api, p2["number"], [line("1", "100.00")], delivery_date="2025-05-01")
    o2 = create_order(api, p2["number"], [line("1", "50.00")])
    return {"partners": [p1, p2], "orders": [o1, o2]}


@pytest.fixture
def theirs(other_api: Api) -> dict[str, Any]:
    """The other company: one partner with a stage and no orders."""
    return {"partner": create_partner(other_api, name="Their Lead", customer_stage="potential")}


def _snapshot(api: Api) -> Any:
    return (
        walk(api, ORDERS, limit=500),
        walk(api, PARTNERS, limit=500),
        [stage_history(api, n) for n in (1, 2)],
    )


# --- isolation -------------------------------------------------------------------------------

ONE_LINE = [{"description": "x", "quantity": "1", "unit_price": "1.00"}]

ORDER_CALLS = [
    ("GET", "/api/v1/sales-orders/{n}", None),
    ("PATCH", "/api/v1/sales-orders/{n}", {"reference": "theirs"}),
    ("PATCH", "/api/v1/sales-orders/{n}", {"lines": ONE_LINE}),
    ("POST", "/api/v1/sales-orders/{n}/deliver", None),
    ("POST", "/api/v1/sales-orders/{n}/invoice", None),
    ("POST", "/api/v1/sales-orders/{n}/cancel", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ORDER_CALLS)
def test_another_company_gets_404_on_our_orders_exactly_like_a_missing_one(
    api: Api, other_api: Api, ours: Any, theirs: Any, method: str, path: str, body: Any
) -> None:
    before = _snapshot(api)
    kwargs = {"json": body} if body is not None else {}
    foreign = other_api.request(method, path.format(n=1), **kwargs)
    missing = other_api.request(method, path.format(n=999), **kwargs)
    a = assert_problem(foreign, 404)
    b = assert_problem(missing, 404)
    assert (a["code"], a["title"], a["type"]) == (b["code"], b["title"], b["type"])
    assert a["detail"].replace("1", "N") == b["detail"].replace("999", "N")
    assert _snapshot(api) == before


def test_another_companys_order_list_has_none_of_ours(
    api: Api, other_api: Api, ours: Any, theirs: Any
) -> None:
    assert walk(other_api, ORDERS, limit=500) == []
    assert walk(other_api, ORDERS, limit=500, partner_number=2) == []
    theirs_order = create_order(other_api, theirs["partner"]["number"])
    assert numbers(walk(other_api, ORDERS, limit=500)) == [theirs_order["number"]]
    assert numbers(walk(api, ORDERS, limit=500)) == [1, 2]
    # Same number in both companies, each sees its own.
    assert theirs_order["number"] == 1
    assert get_order(api, 1)["total"] == "100.00"
    assert get_order(other_api, 1)["id"] == theirs_order["id"] != get_order(api, 1)["id"]


def test_another_company_cannot_order_for_our_partner(
    api: Api, other_api: Api, ours: Any, theirs: Any
) -> None:
    before = _snapshot(api)
    r = other_api.post(ORDERS, json={"partner_number": 2, "lines": [line()]})
    assert_problem(r, 422, "unknown_partner")
    assert _snapshot(api) == before


def test_another_companys_overview_csv_and_summary_show_none_of_our_rows(
    api: Api, other_api: Api, ours: Any, theirs: Any
) -> None:
    ours_rows = walk(api, OVERVIEW, limit=500)
    assert [r["name"] for r in ours_rows] == ["Our Lead", "Our Customer"]
    their_rows = walk(other_api, OVERVIEW, limit=500)
    assert [r["name"] for r in their_rows] == ["Their Lead"]
    body = ok(other_api.get(OVERVIEW, params={"include_total": "true", "q": "Our"}))
    assert body["items"] == []
    assert body["total"] == 0
    _, lines = overview_csv(other_api)
    assert [cells[1] for cells in lines[1:]] == ["Their Lead"]
    summary = ok(other_api.get(SUMMARY))
    assert summary["total"]["partners"] == 1
    assert summary["total"]["uninvoiced_total"] == "0.00"
    assert [s["partners"] for s in summary["stages"]] == [0, 1, 0, 0, 0]
    ours_summary = ok(api.get(SUMMARY))
    assert ours_summary["total"]["partners"] == 2
    assert ours_summary["total"]["uninvoiced_total"] == "150.00"


def test_another_companys_bulk_never_touches_our_partners(
    api: Api, other_api: Api, ours: Any, theirs: Any
) -> None:
    before = _snapshot(api)
    r = other_api.post(BULK, json={"customer_stage": "lost", "numbers": [1, 2]})
    assert assert_problem(r, 422, "partners_not_found")["missing_numbers"] == [2]
    body = ok(other_api.post(BULK, json={"customer_stage": "lost", "filter": {}}))
    assert body["matched"] == 1
    assert body["changes"] == [{"number": 1, "previous_stage": "potential"}]
    assert _snapshot(api) == before
    assert get_partner(other_api, 1)["customer_stage"] == "lost"


# --- scopes ----------------------------------------------------------------------------------

WRITES = [
    ("POST", ORDERS, {"partner_number": 1, "lines": ONE_LINE}),
    ("PATCH", f"{ORDERS}/1", {"reference": "read-only"}),
    ("POST", f"{ORDERS}/1/deliver", None),
    ("POST", f"{ORDERS}/1/invoice", None),
    ("POST", f"{ORDERS}/1/cancel", None),
    ("POST", BULK, {"customer_stage": "lost", "numbers": [1, 2]}),
    ("POST", BULK, {"customer_stage": "lost", "filter": {}}),
    ("POST", BULK, {"customer_stage": "lost", "filter": {}, "dry_run": True}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_a_read_token_gets_403_on_every_write(
    api: Api, ours: Any, method: str, path: str, body: Any
) -> None:
    before = _snapshot(api)
    kwargs = {"json": body} if body is not None else {}
    r = api.as_("read").request(method, path, **kwargs)
    assert_problem(r, 403, "insufficient_scope")
    keyed = api.as_("read").request(
        method, path, headers={"Idempotency-Key": "read-scope"}, **kwargs
    )
    assert_problem(keyed, 403, "insufficient_scope")
    assert _snapshot(api) == before


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
def test_a_write_token_may_write(api: Api, ours: Any, method: str, path: str, body: Any) -> None:
    kwargs = {"json": body} if body is not None else {}
    r = api.as_("write").request(method, path, **kwargs)
    assert r.status_code in (200, 201), r.text


READS = [
    (ORDERS, {}),
    (f"{ORDERS}/1", {}),
    (OVERVIEW, {}),
    (OVERVIEW, {"sort": "-uninvoiced_total", "include_total": "true"}),
    (OVERVIEW_CSV, {}),
    (SUMMARY, {}),
]


@pytest.mark.parametrize(("path", "params"), READS)
def test_a_read_token_may_read(api: Api, ours: Any, path: str, params: dict[str, Any]) -> None:
    reader = api.as_("read")
    r = reader.get(path, params=params)
    assert r.status_code == 200, r.text
    assert r.content == api.get(path, params=params).content


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", ORDERS),
        ("POST", ORDERS),
        ("GET", f"{ORDERS}/1"),
        ("PATCH", f"{ORDERS}/1"),
        ("POST", f"{ORDERS}/1/deliver"),
        ("POST", f"{ORDERS}/1/invoice"),
        ("POST", f"{ORDERS}/1/cancel"),
        ("GET", OVERVIEW),
        ("GET", OVERVIEW_CSV),
        ("GET", SUMMARY),
        ("POST", BULK),
    ],
)
def test_no_or_unknown_token_is_401(
    client: TestClient, api: Api, ours: Any, method: str, path: str
) -> None:
    before = _snapshot(api)
    body = {"customer_stage": "lost", "filter": {}} if path == BULK else {"reference": "x"}
    kwargs: dict[str, Any] = {"json": body} if method != "GET" else {}
    assert_problem(client.request(method, path, **kwargs), 401)
    bad = {"Authorization": "Bearer not-a-real-token"}
    assert_problem(client.request(method, path, headers=bad, **kwargs), 401)
    assert _snapshot(api) == before
