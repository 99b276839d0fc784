"""What sales orders do to their partner: the automatic stage and the maintained columns."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import Api
from tests.helpers import (
    ORDERS,
    OVERVIEW,
    create_order,
    create_partner,
    get_partner,
    line,
    ok,
    patch_partner,
    stage_history,
    transition,
    walk,
)

# --- the automatic stage ---------------------------------------------------------------------


@pytest.mark.parametrize("before", [None, "lead", "potential", "inactive", "lost"])
def test_creating_an_order_sets_the_stage_to_active_with_history(
    api: Api, before: str | None
) -> None:
    p = create_partner(api, customer_stage=before) if before else create_partner(api)
    history_before = stage_history(api, p["number"])
    create_order(api, p["number"])
    assert get_partner(api, p["number"])["customer_stage"] == "active"
    history = stage_history(api, p["number"])
    assert len(history) == len(history_before) + 1
    newest = history[0]
    assert newest["reason"] == "sales_order_created"
    assert newest["previous_stage"] == before
    assert newest["stage"] == "active"
    assert history[1:] == history_before


def test_an_order_for_an_active_partner_writes_no_history(api: Api) -> None:
    p = create_partner(api, customer_stage="active")
    create_order(api, p["number"])
    history = stage_history(api, p["number"])
    assert [(h["previous_stage"], h["stage"], h["reason"]) for h in history] == [
        (None, "active", "manual")
    ]
    create_order(api, p["number"])
    assert stage_history(api, p["number"]) == history


def test_a_second_order_writes_no_second_history_row(api: Api) -> None:
    p = create_partner(api)
    create_order(api, p["number"])
    first = stage_history(api, p["number"])
    assert len(first) == 1
    create_order(api, p["number"])
    create_order(api, p["number"])
    assert stage_history(api, p["number"]) == first


def test_an_order_reactivates_a_partner_set_back_by_hand(api: Api) -> None:
    p = create_partner(api)
    create_order(api, p["number"])
    patch_partner(api, p["number"], customer_stage="inactive")
    create_order(api, p["number"])
    history = stage_history(api, p["number"])
    assert [(h["previous_stage"], h["stage"], h["reason"]) for h in history] == [
        ("inactive", "active", "sales_order_created"),
        ("active", "inactive", "manual"),
        (None, "active", "sales_order_created"),
    ]


# --- the maintained columns ------------------------------------------------------------------


def _expected_columns(api: Api, partner_number: int) -> tuple[str, str | None]:
    """The partner's uninvoiced total and latest delivery date, recomputed from its orders."""
    orders = walk(api, ORDERS, limit=500, partner_number=partner_number)
    uninvoiced = sum(
        (Decimal(o["total_base"]) for o in orders if o["status"] in ("open", "delivered")),
        Decimal("0.00"),
    )
    dates = [
        o["delivery_date"] for o in orders if o["status"] != "cancelled" and o["delivery_date"]
    ]
    return f"{uninvoiced:.2f}", max(dates) if dates else None


def _columns(api: Api, number: int) -> tuple[str, str | None]:
    p = get_partner(api, number)
    return p["uninvoiced_total"], p["latest_sales_delivery_date"]


def _assert_columns(api: Api, number: int, uninvoiced: str, latest: str | None) -> None:
    assert _columns(api, number) == (uninvoiced, latest)
    assert _expected_columns(api, number) == (uninvoiced, latest)
    # The overview shows the same values.
    rows = {r["number"]: r for r in walk(api, OVERVIEW, limit=500)}
    assert (rows[number]["uninvoiced_total"], rows[number]["latest_sales_delivery_date"]) == (
        uninvoiced,
        latest,
    )


def test_new_partner_has_zero_uninvoiced_and_no_delivery_date(api: Api) -> None:
    p = create_partner(api, customer_stage="lead")
    assert p["uninvoiced_total"] == "0.00"
    assert p["latest_sales_delivery_date"] is None
    _assert_columns(api, p["number"], "0.00", None)


def test_columns_after_create(api: Api) -> None:
    p = create_partner(api)
    create_order(api, p["number"], [line("1", "100.00")], delivery_date="2025-04-01")
    _assert_columns(api, p["number"], "100.00", "2025-04-01")
    create_order(
        api,
        p["number"],
        [line("1", "100.01")],
        currency="EUR",
        exchange_rate="7.4555",
        delivery_date="2025-03-01",
    )
    _assert_columns(api, p["number"], "845.62", "2025-04-01")
    create_order(api, p["number"], [line("2", "1.50")])
    _assert_columns(api, p["number"], "848.62", "2025-04-01")


def test_columns_after_line_edit(api: Api) -> None:
    p = create_partner(api)
    a = create_order(api, p["number"], [line("1", "100.00")], delivery_date="2025-04-01")
    create_order(api, p["number"], [line("1", "50.00")])
    ok(api.patch(f"{ORDERS}/{a['number']}", json={"lines": [line("3", "19.95", "10")]}))
    _assert_columns(api, p["number"], "103.87", "2025-04-01")


def test_columns_after_deliver(api: Api) -> None:
    p = create_partner(api)
    a = create_order(api, p["number"], [line("1", "100.00")], delivery_date="2025-04-01")
    ok(transition(api, a["number"], "deliver"))
    # Delivered orders are still uninvoiced.
    _assert_columns(api, p["number"], "100.00", "2025-04-01")


def test_columns_after_invoice(api: Api) -> None:
    p = create_partner(api)
    a = create_order(api, p["number"], [line("1", "100.00")], delivery_date="2025-04-01")
    b = create_order(api, p["number"], [line("1", "30.00")], delivery_date="2025-02-01")
    ok(transition(api, a["number"], "deliver"))
    ok(transition(api, a["number"], "invoice"))
    # Invoiced: no longer uninvoiced, but its delivery date still counts.
    _assert_columns(api, p["number"], "30.00", "2025-04-01")
    ok(transition(api, b["number"], "invoice"))
    _assert_columns(api, p["number"], "0.00", "2025-04-01")


def test_columns_after_cancel(api: Api) -> None:
    p = create_partner(api)
    a = create_order(api, p["number"], [line("1", "100.00")], delivery_date="2025-04-01")
    b = create_order(api, p["number"], [line("1", "30.00")], delivery_date="2025-02-01")
    ok(transition(api, a["number"], "cancel"))
    # Cancelled: neither its amount nor its delivery date count.
    _assert_columns(api, p["number"], "30.00", "2025-02-01")
    ok(transition(api, b["number"], "cancel"))
    _assert_columns(api, p["number"], "0.00", None)


def test_columns_after_delivery_date_edit(api: Api) -> None:
    p = create_partner(api)
    a = create_order(api, p["number"], [line("1", "10.00")], delivery_date="2025-04-01")
    b = create_order(api, p["number"], [line("1", "20.00")], delivery_date="2025-02-01")
    ok(api.patch(f"{ORDERS}/{b['number']}", json={"delivery_date": "2025-06-30"}))
    _assert_columns(api, p["number"], "30.00", "2025-06-30")
    ok(api.patch(f"{ORDERS}/{b['number']}", json={"delivery_date": "2025-01-01"}))
    _assert_columns(api, p["number"], "30.00", "2025-04-01")
    ok(api.patch(f"{ORDERS}/{a['number']}", json={"delivery_date": None}))
    _assert_columns(api, p["number"], "30.00", "2025-01-01")
    ok(api.patch(f"{ORDERS}/{b['number']}", json={"delivery_date": None}))
    _assert_columns(api, p["number"], "30.00", None)


def test_columns_of_one_partner_ignore_other_partners_orders(api: Api) -> None:
    p = create_partner(api)
    q = create_partner(api)
    create_order(api, p["number"], [line("1", "10.00")], delivery_date="2025-04-01")
    create_order(api, q["number"], [line("1", "99.00")], delivery_date="2026-01-01")
    _assert_columns(api, p["number"], "10.00", "2025-04-01")
    _assert_columns(api, q["number"], "99.00", "2026-01-01")


def test_partner_updated_at_moves_when_orders_change_its_columns(api: Api) -> None:
    p = create_partner(api)
    order = create_order(api, p["number"], [line("1", "10.00")])
    before: dict[str, Any] = get_partner(api, p["number"])
    ok(transition(api, order["number"], "invoice"))
    after = get_partner(api, p["number"])
    assert after["uninvoiced_total"] == "0.00"
    assert after["updated_at"] > before["updated_at"]
    # So the "changed since" filter of the overview finds it.
    rows = walk(api, OVERVIEW, limit=500, updated_since=after["updated_at"])
    assert [r["number"] for r in rows] == [p["number"]]
