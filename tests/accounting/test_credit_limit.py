"""The credit-limit state: re-evaluated on every balance refresh, limit change and company
option change; the warning on open and delivered orders; warn or block on new orders; and the
overview's filter and sort."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.accounting.fake_economic import FakeEconomic, customer
from tests.accounting.helpers import (
    COMPANY,
    ORDERS,
    connect,
    create_order,
    create_partner,
    get_order,
    get_partner,
    line,
    money,
    ok,
    overview,
    patch_partner,
    sync_ok,
    transition,
)
from tests.conftest import Api, assert_problem


@pytest.fixture
def connected(api: Api, economic: FakeEconomic) -> FakeEconomic:
    connect(api, economic)
    return economic


def refresh(api: Api, fake: FakeEconomic, **balances: str) -> dict[str, Any]:
    """A sync in which customer number N owes balances['cN']."""
    fake.set_customers([customer(int(k[1:]), v) for k, v in balances.items()])
    return sync_ok(api)


def set_company(api: Api, **fields: str) -> dict[str, Any]:
    return ok(api.patch(COMPANY, json=fields))


def assert_warned(order: dict[str, Any], balance: str, limit: str) -> None:
    assert order["credit_warning"] is True, order
    assert len(order["warnings"]) == 1, order["warnings"]
    (warning,) = order["warnings"]
    assert warning["code"] == "credit_limit_exceeded"
    assert money(balance) in warning["message"], warning
    assert money(limit) in warning["message"], warning


def assert_not_warned(order: dict[str, Any]) -> None:
    assert order["credit_warning"] is False, order
    assert order["warnings"] == [], order


@pytest.fixture
def with_orders(api: Api, connected: FakeEconomic) -> dict[str, Any]:
    """Partner (limit 1000.00, customer 1) with an open, a delivered, an invoiced and a
    cancelled order, and a balance of 400.00 under the limit."""
    partner = create_partner(api, name="Limited", accounting_ref="1", credit_limit="1000.00")
    number = partner["number"]
    orders = {
        s: create_order(api, number, unit_price="10.00")["number"]
        for s in ("open", "delivered", "invoiced", "cancelled")
    }
    transition(api, orders["delivered"], "deliver")
    transition(api, orders["invoiced"], "invoice")
    transition(api, orders["cancelled"], "cancel")
    refresh(api, connected, c1="400.00")
    assert get_partner(api, number)["credit_limit_exceeded"] is False
    for o in orders.values():
        assert_not_warned(get_order(api, o))
    return {"partner": number, "orders": orders}


def test_a_refresh_over_the_limit_warns_on_open_and_delivered_orders_only(
    api: Api, connected: FakeEconomic, with_orders: dict[str, Any]
) -> None:
    run = refresh(api, connected, c1="1234.56")
    assert run["updated"] == 1
    p = get_partner(api, with_orders["partner"])
    assert (p["debtor_balance"], p["credit_limit_exceeded"]) == ("1234.56", True)
    orders = with_orders["orders"]
    for status in ("open", "delivered"):
        assert_warned(get_order(api, orders[status]), "1234.56", "1000.00")
    for status in ("invoiced", "cancelled"):
        assert_not_warned(get_order(api, orders[status]))
    warned = ok(api.get(ORDERS, params={"credit_warning": "true", "limit": 500}))["items"]
    assert sorted(o["number"] for o in warned) == sorted([orders["open"], orders["delivered"]])
    for o in warned:
        assert_warned(o, "1234.56", "1000.00")


def test_a_refresh_back_under_the_limit_clears_it(
    api: Api, connected: FakeEconomic, with_orders: dict[str, Any]
) -> None:
    refresh(api, connected, c1="1500.00")
    assert get_partner(api, with_orders["partner"])["credit_limit_exceeded"] is True
    refresh(api, connected, c1="999.99")
    assert get_partner(api, with_orders["partner"])["credit_limit_exceeded"] is False
    for o in with_orders["orders"].values():
        assert_not_warned(get_order(api, o))
    assert ok(api.get(ORDERS, params={"credit_warning": "true"}))["items"] == []


def test_a_balance_equal_to_the_limit_is_not_exceeded(
    api: Api, connected: FakeEconomic, with_orders: dict[str, Any]
) -> None:
    refresh(api, connected, c1="1000.00")
    assert get_partner(api, with_orders["partner"])["credit_limit_exceeded"] is False
    refresh(api, connected, c1="1000.01")
    assert get_partner(api, with_orders["partner"])["credit_limit_exceeded"] is True


def test_changing_the_limit_re_evaluates_it(
    api: Api, connected: FakeEconomic, with_orders: dict[str, Any]
) -> None:
    number, orders = with_orders["partner"], with_orders["orders"]
    assert patch_partner(api, number, credit_limit="399.99")["credit_limit_exceeded"] is True
    assert_warned(get_order(api, orders["open"]), "400.00", "399.99")
    assert patch_partner(api, number, credit_limit="400.00")["credit_limit_exceeded"] is False
    assert_not_warned(get_order(api, orders["open"]))
    patch_partner(api, number, credit_limit="100.00")
    assert patch_partner(api, number, credit_limit=None)["credit_limit_exceeded"] is False
    assert_not_warned(get_order(api, orders["delivered"]))


def test_no_limit_or_no_balance_is_never_exceeded(api: Api, connected: FakeEconomic) -> None:
    no_limit = create_partner(api, name="No limit", accounting_ref="1")["number"]
    no_balance = create_partner(api, name="No balance", accounting_ref="2", credit_limit="0.00")
    refresh(api, connected, c1="1000000.00")
    assert get_partner(api, no_limit)["credit_limit_exceeded"] is False
    assert get_partner(api, no_balance["number"])["debtor_balance"] is None
    assert get_partner(api, no_balance["number"])["credit_limit_exceeded"] is False
    refresh(api, connected, c1="1000000.00", c2="0.01")
    assert get_partner(api, no_balance["number"])["credit_limit_exceeded"] is True


def test_a_new_order_over_the_limit_is_created_with_the_warning(
    api: Api, connected: FakeEconomic, with_orders: dict[str, Any]
) -> None:
    refresh(api, connected, c1="2000.00")
    r = api.post(ORDERS, json={"partner_number": with_orders["partner"], "lines": [line()]})
    created = ok(r, 201)
    assert r.headers["location"].endswith(f"/{created['number']}")
    assert_warned(created, "2000.00", "1000.00")
    assert_warned(get_order(api, created["number"]), "2000.00", "1000.00")


def test_block_enforcement_refuses_new_orders_and_stores_nothing(
    api: Api, connected: FakeEconomic, with_orders: dict[str, Any]
) -> None:
    number = with_orders["partner"]
    ok_partner = create_partner(api, name="Fine", accounting_ref="2", credit_limit="1000.00")
    refresh(api, connected, c1="2000.00", c2="10.00")
    assert set_company(api, credit_enforcement="block")["credit_enforcement"] == "block"
    before_orders = ok(api.get(ORDERS, params={"limit": 500, "include_total": "true"}))["total"]
    before_partner = get_partner(api, number)

    r = api.post(ORDERS, json={"partner_number": number, "lines": [line()]})
    problem = assert_problem(r, 422, "credit_limit_exceeded")
    assert any("partner_number" in e["loc"] for e in problem["errors"])
    after_orders = ok(api.get(ORDERS, params={"limit": 500, "include_total": "true"}))["total"]
    assert after_orders == before_orders
    after_partner = get_partner(api, number)
    assert after_partner["uninvoiced_total"] == before_partner["uninvoiced_total"]
    assert after_partner["updated_at"] == before_partner["updated_at"]

    # Under the limit, orders are still created; back under, the blocked partner may order.
    assert_not_warned(create_order(api, ok_partner["number"]))
    refresh(api, connected, c1="10.00", c2="10.00")
    assert_not_warned(create_order(api, number))


def test_balance_plus_uninvoiced_counts_open_and_delivered_orders(
    api: Api, connected: FakeEconomic
) -> None:
    number = create_partner(api, name="Exposed", accounting_ref="1", credit_limit="1000.00")[
        "number"
    ]
    open_order = create_order(api, number, unit_price="300.00")["number"]
    delivered = create_order(api, number, unit_price="200.00")["number"]
    transition(api, delivered, "deliver")
    invoiced = create_order(api, number, unit_price="5000.00")["number"]
    transition(api, invoiced, "invoice")
    refresh(api, connected, c1="600.00")
    p = get_partner(api, number)
    assert Decimal(p["uninvoiced_total"]) == Decimal("500.00")
    assert p["credit_limit_exceeded"] is False  # balance 600 <= 1000

    body = set_company(api, credit_check="balance_plus_uninvoiced")
    assert body["credit_check"] == "balance_plus_uninvoiced"
    assert get_partner(api, number)["credit_limit_exceeded"] is True  # 600 + 500 > 1000
    assert get_order(api, open_order)["credit_warning"] is True
    assert get_order(api, delivered)["credit_warning"] is True
    assert get_order(api, invoiced)["credit_warning"] is False

    # Invoicing the open order moves 300 out of the uninvoiced total: 600 + 200 <= 1000.
    transition(api, open_order, "invoice")
    assert get_partner(api, number)["credit_limit_exceeded"] is False
    # A new order puts it over again.
    created = create_order(api, number, unit_price="250.00")
    assert created["credit_warning"] is True
    assert get_partner(api, number)["credit_limit_exceeded"] is True

    body = set_company(api, credit_check="balance")
    assert get_partner(api, number)["credit_limit_exceeded"] is False
    assert get_order(api, created["number"])["credit_warning"] is False


def test_switching_the_credit_check_re_evaluates_every_partner(
    api: Api, connected: FakeEconomic
) -> None:
    made = {}
    for ref, limit, price in (("1", "100.00", "60.00"), ("2", "100.00", "10.00"), ("3", None, "1")):
        fields = {"credit_limit": limit} if limit else {}
        made[ref] = create_partner(api, name=f"P{ref}", accounting_ref=ref, **fields)["number"]
        create_order(api, made[ref], unit_price=price)
    refresh(api, connected, c1="50.00", c2="50.00", c3="50.00")
    assert [get_partner(api, made[r])["credit_limit_exceeded"] for r in "123"] == [False] * 3

    set_company(api, credit_check="balance_plus_uninvoiced")
    assert [get_partner(api, made[r])["credit_limit_exceeded"] for r in "123"] == [
        True,
        False,
        False,
    ]
    # A refresh under this option keeps counting the uninvoiced orders.
    refresh(api, connected, c1="50.00", c2="95.00", c3="50.00")
    assert [get_partner(api, made[r])["credit_limit_exceeded"] for r in "123"] == [
        True,
        True,
        False,
    ]
    set_company(api, credit_check="balance")
    assert [get_partner(api, made[r])["credit_limit_exceeded"] for r in "123"] == [False] * 3


def test_the_overview_filter_and_sort_follow_the_state(api: Api, connected: FakeEconomic) -> None:
    numbers = [
        create_partner(api, name=f"P{n}", accounting_ref=str(n), credit_limit="100.00")["number"]
        for n in range(1, 6)
    ]
    refresh(api, connected, c1="150.00", c2="50.00", c3="101.00", c4="0", c5="100.00")

    exceeded = overview(api, credit_limit_exceeded="true")
    assert [r["number"] for r in exceeded] == [numbers[0], numbers[2]]
    assert all(r["credit_limit_exceeded"] is True for r in exceeded)
    within = overview(api, credit_limit_exceeded="false")
    assert [r["number"] for r in within] == [numbers[1], numbers[3], numbers[4]]
    assert [r["number"] for r in overview(api, sort="-credit_limit_exceeded")] == [
        numbers[2],
        numbers[0],
        numbers[4],
        numbers[3],
        numbers[1],
    ]
    assert [r["number"] for r in overview(api, sort="debtor_balance")] == [
        numbers[3],
        numbers[1],
        numbers[4],
        numbers[2],
        numbers[0],
    ]
    summary = ok(api.get("/api/v1/crm/summary"))
    assert summary["total"]["credit_limit_exceeded"] == 2

    refresh(api, connected, c1="10.00", c2="500.00", c3="101.00", c4="0", c5="100.00")
    assert [r["number"] for r in overview(api, credit_limit_exceeded="true")] == [
        numbers[1],
        numbers[2],
    ]
