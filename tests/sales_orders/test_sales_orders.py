"""Sales orders through the HTTP API: creation, money, currencies, status, edits, lists."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from tests.conftest import Api, assert_problem
from tests.helpers import (
    ORDERS,
    PARTNERS,
    create_order,
    create_partner,
    create_user,
    get_order,
    get_partner,
    line,
    numbers,
    ok,
    order_sort,
    ref_base_total,
    ref_line_total,
    sync_balance,
    transition,
    walk,
)

# --- creation --------------------------------------------------------------------------------


def test_create_answers_201_with_location_of_the_new_order(api: Api) -> None:
    p = create_partner(api)
    r = api.post(
        ORDERS,
        json={
            "partner_number": p["number"],
            "order_date": "2025-01-10",
            "delivery_date": "2025-01-20",
            "reference": "PO-77",
            "lines": [line("2", "10.00", description="Rye bread", discount_percent="0")],
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"] == f"{ORDERS}/{body['number']}"
    assert body["partner_number"] == p["number"]
    assert body["status"] == "open"
    assert body["order_date"] == "2025-01-10"
    assert body["delivery_date"] == "2025-01-20"
    assert body["reference"] == "PO-77"
    assert body["currency"] == "DKK"
    assert body["exchange_rate"] == "1"
    assert body["lines"] == [
        {
            "description": "Rye bread",
            "sku": None,
            "quantity": "2",
            "unit_price": "10.00",
            "discount_percent": "0",
            "total": "20.00",
        }
    ]
    assert body["total"] == "20.00"
    assert body["total_base"] == "20.00"
    assert body["credit_warning"] is False
    assert body["warnings"] == []
    assert body["invoiced_at"] is None
    # The Location really names the order.
    assert ok(api.get(r.headers["location"])) == body


def test_the_created_answer_its_event_and_a_read_agree(api: Api) -> None:
    """The new order is answered (and its event rendered) from what was written, not read
    back: it must read exactly as GET reads it, with the same ETag."""
    owner = create_user(api, name="Order Owner")
    p = create_partner(api, owner_id=owner["id"])
    cases = [
        {
            "lines": [
                line("1.5", "9.99", discount_percent="12.5"),
                {**line("3", "0.10"), "sku": "B-2"},
            ]
        },
        {
            "currency": "EUR",
            "exchange_rate": "7.4601",
            "reference": "PO-1",
            "lines": [line("2", "10.5")],
        },
        {"owner_id": owner["id"], "delivery_date": "2031-02-03", "lines": [line("1", "0")]},
    ]
    for fields in cases:
        r = api.post(ORDERS, json={"partner_number": p["number"], **fields})
        assert r.status_code == 201, r.text
        read = api.get(r.headers["location"])
        assert r.json() == ok(read)
        assert r.headers["etag"] == read.headers["etag"]
        assert r.json()["owner"]["name"] == "Order Owner"
    events = ok(api.get("/api/v1/events", params={"type": "sales_order.created"}))["items"]
    created = [e["data"] for e in events if e["type"] == "sales_order.created"]
    assert created == [get_order(api, n) for n in (1, 2, 3)]


def test_order_numbers_start_at_1_per_company_and_increase(api: Api, other_api: Api) -> None:
    p = create_partner(api)
    q = create_partner(other_api)
    ours = [create_order(api, p["number"])["number"] for _ in range(3)]
    theirs = [create_order(other_api, q["number"])["number"] for _ in range(2)]
    ours.append(create_order(api, p["number"])["number"])
    assert ours == [1, 2, 3, 4]
    assert theirs == [1, 2]


@pytest.mark.parametrize(
    ("quantity", "unit_price", "discount", "expected"),
    [
        ("0.5", "0.05", "0", "0.03"),  # 0.025: half-up, not half-even (0.02)
        ("3", "19.95", "10", "53.87"),  # 53.865
        ("1.005", "1.00", "0", "1.01"),  # 1.005 (a float would give 1.00)
        ("2.5", "4.10", "12.5", "8.97"),  # 8.96875
        ("7", "3.00", "100", "0.00"),
        ("0.333333", "3.00", "0", "1.00"),  # 0.999999
    ],
)
def test_line_total_is_quantity_times_price_less_discount_rounded_half_up(
    api: Api, quantity: str, unit_price: str, discount: str, expected: str
) -> None:
    assert f"{ref_line_total(quantity, unit_price, discount):.2f}" == expected
    p = create_partner(api)
    order = create_order(api, p["number"], [line(quantity, unit_price, discount)])
    assert order["lines"][0]["total"] == expected
    assert order["total"] == expected
    assert get_order(api, order["number"])["lines"][0]["total"] == expected


@pytest.mark.parametrize("discount", ["0", "0.00", 0, "100", 100, "0.01"])
def test_discount_accepts_the_whole_range_0_to_100(api: Api, discount: Any) -> None:
    p = create_partner(api)
    item = {"description": "Goods", "quantity": "2", "unit_price": "10.00"}
    r = api.post(
        ORDERS,
        json={"partner_number": p["number"], "lines": [{**item, "discount_percent": discount}]},
    )
    assert r.status_code == 201, r.text
    expected = ref_line_total("2", "10.00", str(discount))
    assert r.json()["lines"][0]["total"] == f"{expected:.2f}"


def test_order_total_is_the_sum_of_the_rounded_line_totals(api: Api) -> None:
    p = create_partner(api)
    lines = [line("0.5", "0.05"), line("3", "19.95", "10"), line("1.005", "1.00")]
    order = create_order(api, p["number"], lines)
    assert [li["total"] for li in order["lines"]] == ["0.03", "53.87", "1.01"]
    # 0.03 + 53.87 + 1.01, not round(0.025 + 53.865 + 1.005) = 54.90
    assert order["total"] == "54.91"
    assert order["total_base"] == "54.91"


def test_total_base_is_total_times_exchange_rate_rounded_half_up(api: Api) -> None:
    p = create_partner(api, currency="EUR")
    order = create_order(api, p["number"], [line("1", "100.01")], exchange_rate="7.4555")
    assert order["currency"] == "EUR"
    assert order["exchange_rate"] == "7.4555"
    assert order["total"] == "100.01"
    assert order["total_base"] == "745.62"  # 745.624555
    assert f"{ref_base_total(Decimal('100.01'), '7.4555'):.2f}" == "745.62"


def test_total_base_rounds_a_half_cent_up(api: Api) -> None:
    p = create_partner(api)
    order = create_order(
        api, p["number"], [line("1", "100.00")], currency="EUR", exchange_rate="1.23445"
    )
    assert order["total_base"] == "123.45"  # 123.445: half-even would give 123.44
    order = create_order(
        api, p["number"], [line("1", "10.00")], currency="USD", exchange_rate="6.8125"
    )
    assert order["total_base"] == "68.13"  # 68.125


def test_currency_defaults_to_the_partners_currency(api: Api) -> None:
    eur = create_partner(api, currency="EUR")
    dkk = create_partner(api)
    assert create_order(api, eur["number"], exchange_rate="7.45")["currency"] == "EUR"
    assert create_order(api, dkk["number"])["currency"] == "DKK"
    # An explicit currency wins over the partner's.
    assert create_order(api, eur["number"], currency="DKK")["currency"] == "DKK"


def test_foreign_currency_without_exchange_rate_is_422_and_stores_nothing(api: Api) -> None:
    eur = create_partner(api, currency="EUR")
    dkk = create_partner(api)
    r = api.post(ORDERS, json={"partner_number": eur["number"], "lines": [line()]})
    assert_problem(r, 422, "exchange_rate_required")
    r = api.post(
        ORDERS, json={"partner_number": dkk["number"], "currency": "SEK", "lines": [line()]}
    )
    assert_problem(r, 422, "exchange_rate_required")
    assert walk(api, ORDERS, limit=50) == []
    # A rejected order neither activates the partner nor changes its totals.
    assert get_partner(api, eur["number"])["customer_stage"] is None
    assert get_partner(api, dkk["number"])["uninvoiced_total"] == "0.00"


@pytest.mark.parametrize("rate", ["7.45", "0.5", "1.000001"])
def test_base_currency_with_a_rate_other_than_1_is_422_invalid_exchange_rate(
    api: Api, rate: str
) -> None:
    p = create_partner(api)
    r = api.post(
        ORDERS, json={"partner_number": p["number"], "exchange_rate": rate, "lines": [line()]}
    )
    assert_problem(r, 422, "invalid_exchange_rate")
    assert walk(api, ORDERS, limit=50) == []


def test_base_currency_accepts_rate_1_or_none(api: Api) -> None:
    p = create_partner(api)
    assert create_order(api, p["number"], exchange_rate="1")["exchange_rate"] == "1"
    assert create_order(api, p["number"], exchange_rate="1.000000")["exchange_rate"] == "1"
    assert create_order(api, p["number"], currency="DKK")["exchange_rate"] == "1"


def test_owner_defaults_to_the_partners_owner(api: Api) -> None:
    bea = create_user(api, "Bea Berg")
    carl = create_user(api, "Carl Dahl")
    owned = create_partner(api, owner_id=bea["id"])
    unowned = create_partner(api)
    assert create_order(api, owned["number"])["owner"] == {"id": bea["id"], "name": "Bea Berg"}
    assert create_order(api, unowned["number"])["owner"] is None
    explicit = create_order(api, owned["number"], owner_id=carl["id"])
    assert explicit["owner"] == {"id": carl["id"], "name": "Carl Dahl"}


def test_unknown_partner_is_422_unknown_partner(api: Api) -> None:
    p = create_partner(api)
    r = api.post(ORDERS, json={"partner_number": p["number"] + 1, "lines": [line()]})
    assert_problem(r, 422, "unknown_partner")
    assert walk(api, ORDERS, limit=50) == []


def test_credit_warning_is_returned_with_an_order_of_a_partner_over_its_limit(
    api: Api, session: Session
) -> None:
    p = create_partner(api, credit_limit="100.00")
    sync_balance(session, api.tenant.company.id, p["number"], "150.00", "100.00")
    order = create_order(api, p["number"])
    assert order["credit_warning"] is True
    assert [w["code"] for w in order["warnings"]] == ["credit_limit_exceeded"]


@pytest.mark.parametrize(
    "body",
    [
        {"lines": [line("0", "1.00")]},
        {"lines": [line("-1", "1.00")]},
        {"lines": [line("1.0000001", "1.00")]},
        {"lines": [line("1", "1.001")]},
        {"lines": [line("1", "-1.00")]},
        {"lines": [line("1", "1.00", "100.01")]},
        {"lines": [line("1", "1.00", "-1")]},
        {"lines": [line("1", "1.00", "10.001")]},
        {"lines": []},
        {"currency": "EUR", "exchange_rate": "0", "lines": [line()]},
        {"currency": "EUR", "exchange_rate": "1.0000001", "lines": [line()]},
        {"currency": "eur", "exchange_rate": "7", "lines": [line()]},
        {"status": "invoiced", "lines": [line()]},
        {"number": 7, "lines": [line()]},
        {"total": "5.00", "lines": [line()]},
        {"total_base": "5.00", "lines": [line()]},
    ],
)
def test_bad_order_bodies_are_422_and_store_nothing(api: Api, body: dict[str, Any]) -> None:
    p = create_partner(api)
    assert_problem(api.post(ORDERS, json={"partner_number": p["number"], **body}), 422)
    assert walk(api, ORDERS, limit=50) == []
    assert get_partner(api, p["number"])["customer_stage"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"lines": [line("999999999999", "99999999999999.99")]},
        {"lines": [line("1", "99999999999999.99"), line("1", "99999999999999.99")]},
        {
            "currency": "EUR",
            "exchange_rate": "999999999999",
            "lines": [line("1", "99999999999.99")],
        },
    ],
)
def test_an_order_beyond_the_money_range_is_422_not_500(api: Api, body: dict[str, Any]) -> None:
    """Totals that do not fit the stored amounts are bad input: 422, and nothing stored."""
    p = create_partner(api)
    r = api.post(ORDERS, json={"partner_number": p["number"], **body})
    assert_problem(r, 422)
    assert walk(api, ORDERS, limit=50) == []
    assert get_partner(api, p["number"])["uninvoiced_total"] == "0.00"


def test_order_date_defaults_to_today_utc(api: Api) -> None:
    p = create_partner(api)
    order = create_order(api, p["number"])
    assert order["order_date"] == datetime.now(UTC).date().isoformat()


def test_get_honours_if_none_match(api: Api) -> None:
    p = create_partner(api)
    number = create_order(api, p["number"])["number"]
    first = api.get(f"{ORDERS}/{number}")
    again = api.get(f"{ORDERS}/{number}", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    ok(transition(api, number, "deliver"))
    changed = api.get(f"{ORDERS}/{number}", headers={"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200
    assert changed.json()["status"] == "delivered"


# --- status ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actions", "final"),
    [
        (["deliver"], "delivered"),
        (["deliver", "invoice"], "invoiced"),
        (["invoice"], "invoiced"),
        (["cancel"], "cancelled"),
    ],
)
def test_allowed_transitions(api: Api, actions: list[str], final: str) -> None:
    p = create_partner(api)
    number = create_order(api, p["number"])["number"]
    for action in actions:
        body = ok(transition(api, number, action))
    assert body["status"] == final
    assert get_order(api, number)["status"] == final
    if final == "invoiced":
        assert body["invoiced_at"] is not None
    else:
        assert body["invoiced_at"] is None


FORBIDDEN = [
    (["deliver"], "deliver"),
    (["deliver"], "cancel"),
    (["invoice"], "deliver"),
    (["invoice"], "invoice"),
    (["invoice"], "cancel"),
    (["deliver", "invoice"], "deliver"),
    (["deliver", "invoice"], "invoice"),
    (["deliver", "invoice"], "cancel"),
    (["cancel"], "deliver"),
    (["cancel"], "invoice"),
    (["cancel"], "cancel"),
]


@pytest.mark.parametrize(("setup", "action"), FORBIDDEN)
def test_every_other_transition_is_409_invalid_status_transition_and_changes_nothing(
    api: Api, setup: list[str], action: str
) -> None:
    p = create_partner(api)
    number = create_order(api, p["number"], delivery_date="2025-05-05")["number"]
    for step in setup:
        ok(transition(api, number, step))
    order_before = get_order(api, number)
    partner_before = get_partner(api, p["number"])
    assert_problem(transition(api, number, action), 409, "invalid_status_transition")
    assert get_order(api, number) == order_before
    assert get_partner(api, p["number"]) == partner_before


def test_transition_of_an_unknown_order_is_404(api: Api) -> None:
    for action in ("deliver", "invoice", "cancel"):
        assert_problem(transition(api, 999, action), 404)


# --- edits -----------------------------------------------------------------------------------


@pytest.mark.parametrize("setup", [["deliver"], ["invoice"], ["cancel"]])
def test_patch_of_an_order_that_is_not_open_is_409_sales_order_not_editable(
    api: Api, setup: list[str]
) -> None:
    p = create_partner(api)
    number = create_order(api, p["number"])["number"]
    for step in setup:
        ok(transition(api, number, step))
    before = get_order(api, number)
    for body in (
        {"lines": [line("5", "5.00")]},
        {"delivery_date": "2030-01-01"},
        {"reference": "changed"},
    ):
        r = api.patch(f"{ORDERS}/{number}", json=body)
        assert_problem(r, 409, "sales_order_not_editable")
    assert get_order(api, number) == before


def test_patch_lines_replaces_every_line_and_recomputes_totals(api: Api) -> None:
    p = create_partner(api, currency="EUR")
    order = create_order(
        api, p["number"], [line("1", "10.00"), line("2", "20.00")], exchange_rate="7.5"
    )
    assert order["total"] == "50.00"
    assert order["total_base"] == "375.00"
    new_lines = [line("3", "19.95", "10", description="Only line")]
    body = ok(api.patch(f"{ORDERS}/{order['number']}", json={"lines": new_lines}))
    assert [li["description"] for li in body["lines"]] == ["Only line"]
    assert body["lines"][0]["total"] == "53.87"
    assert body["total"] == "53.87"
    assert body["total_base"] == "404.03"  # 53.87 x 7.5 = 404.025
    assert get_order(api, order["number"]) == body
    assert get_partner(api, p["number"])["uninvoiced_total"] == "404.03"


def test_patch_exchange_rate_recomputes_total_base(api: Api) -> None:
    p = create_partner(api, currency="EUR")
    order = create_order(api, p["number"], [line("1", "100.01")], exchange_rate="7")
    body = ok(api.patch(f"{ORDERS}/{order['number']}", json={"exchange_rate": "7.4555"}))
    assert body["total_base"] == "745.62"
    assert get_partner(api, p["number"])["uninvoiced_total"] == "745.62"


def test_patch_to_a_foreign_currency_without_rate_is_422(api: Api) -> None:
    p = create_partner(api)
    order = create_order(api, p["number"])
    r = api.patch(f"{ORDERS}/{order['number']}", json={"currency": "EUR"})
    assert_problem(r, 422, "exchange_rate_required")
    assert get_order(api, order["number"]) == order


def test_patch_to_the_base_currency_sets_rate_1_and_recomputes(api: Api) -> None:
    p = create_partner(api, currency="EUR")
    order = create_order(api, p["number"], [line("1", "100.00")], exchange_rate="7.45")
    assert get_partner(api, p["number"])["uninvoiced_total"] == "745.00"
    body = ok(api.patch(f"{ORDERS}/{order['number']}", json={"currency": "DKK"}))
    assert (body["currency"], body["exchange_rate"], body["total_base"]) == ("DKK", "1", "100.00")
    assert get_partner(api, p["number"])["uninvoiced_total"] == "100.00"
    r = api.patch(f"{ORDERS}/{order['number']}", json={"exchange_rate": "2"})
    assert_problem(r, 422, "invalid_exchange_rate")
    assert get_order(api, order["number"]) == body


@pytest.mark.parametrize(
    "body",
    [
        {"status": "invoiced"},
        {"number": 5},
        {"partner_number": 2},
        {"total": "1.00"},
        {"lines": None},
        {"order_date": None},
        {"currency": None},
    ],
)
def test_patch_of_read_only_or_null_fields_is_422(api: Api, body: dict[str, Any]) -> None:
    p = create_partner(api)
    create_partner(api)
    order = create_order(api, p["number"])
    assert_problem(api.patch(f"{ORDERS}/{order['number']}", json=body), 422)
    assert get_order(api, order["number"]) == order


def test_patch_with_stale_if_match_is_412_and_with_current_etag_succeeds(api: Api) -> None:
    p = create_partner(api)
    number = create_order(api, p["number"])["number"]
    first = api.get(f"{ORDERS}/{number}")
    stale = first.headers["etag"]
    ok(api.patch(f"{ORDERS}/{number}", json={"reference": "one"}))
    current = api.get(f"{ORDERS}/{number}")
    r = api.patch(f"{ORDERS}/{number}", json={"reference": "two"}, headers={"If-Match": stale})
    assert_problem(r, 412)
    assert get_order(api, number)["reference"] == "one"
    r = api.patch(
        f"{ORDERS}/{number}",
        json={"reference": "two"},
        headers={"If-Match": current.headers["etag"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["reference"] == "two"


# --- lists -----------------------------------------------------------------------------------


def _order_numbers(api: Api, **params: Any) -> list[int]:
    return numbers(walk(api, ORDERS, limit=500, **params))


@pytest.fixture
def orders(api: Api, session: Session) -> dict[str, Any]:
    """Six orders of three partners, in every status, with and without delivery dates."""
    a = create_partner(api, name="A", credit_limit="10.00")
    b = create_partner(api, name="B")
    c = create_partner(api, name="C")
    made = [
        create_order(api, a["number"], [line("1", "30.00")], delivery_date="2025-03-01"),
        create_order(api, a["number"], [line("1", "10.00")], delivery_date="2025-01-15"),
        create_order(api, b["number"], [line("1", "20.00")]),
        create_order(api, b["number"], [line("1", "20.00")], delivery_date="2025-02-01"),
        create_order(api, c["number"], [line("1", "5.00")], delivery_date="2025-03-01"),
        create_order(api, a["number"], [line("1", "40.00")], delivery_date="2024-12-31"),
    ]
    ok(transition(api, 2, "deliver"))
    ok(transition(api, 3, "invoice"))
    ok(transition(api, 4, "cancel"))
    ok(transition(api, 6, "deliver"))
    ok(transition(api, 6, "invoice"))
    # Partner A is over its limit: its open and delivered orders (1, 2) carry the warning.
    sync_balance(session, api.tenant.company.id, a["number"], "99.00", "10.00")
    return {"partners": (a, b, c), "orders": made}


def test_list_filter_by_partner_number(api: Api, orders: dict[str, Any]) -> None:
    a, b, c = orders["partners"]
    assert _order_numbers(api, partner_number=a["number"]) == [1, 2, 6]
    assert _order_numbers(api, partner_number=b["number"]) == [3, 4]
    assert _order_numbers(api, partner_number=c["number"] + 10) == []


def test_list_filter_by_status_is_repeatable(api: Api, orders: dict[str, Any]) -> None:
    assert _order_numbers(api, status="open") == [1, 5]
    assert _order_numbers(api, status="delivered") == [2]
    assert _order_numbers(api, status=["invoiced", "cancelled"]) == [3, 4, 6]
    assert _order_numbers(api, status=["open", "delivered"]) == [1, 2, 5]


def test_list_filter_by_delivery_date_range(api: Api, orders: dict[str, Any]) -> None:
    assert _order_numbers(api, delivery_date_from="2025-02-01") == [1, 4, 5]
    assert _order_numbers(api, delivery_date_to="2025-01-15") == [2, 6]
    assert _order_numbers(api, delivery_date_from="2025-01-15", delivery_date_to="2025-02-01") == [
        2,
        4,
    ]


def test_list_filter_by_credit_warning(api: Api, orders: dict[str, Any]) -> None:
    assert _order_numbers(api, credit_warning="true") == [1, 2]
    assert _order_numbers(api, credit_warning="false") == [3, 4, 5, 6]
    for item in walk(api, ORDERS, limit=500):
        assert item["credit_warning"] is (item["number"] in (1, 2))


def test_list_filter_by_updated_since(api: Api, orders: dict[str, Any]) -> None:
    ok(api.patch(f"{ORDERS}/5", json={"reference": "touched"}))
    items = walk(api, ORDERS, limit=500)
    stamps = sorted(item["updated_at"] for item in items)
    since = stamps[3]
    expected = sorted(item["number"] for item in items if item["updated_at"] >= since)
    assert 5 in expected
    assert _order_numbers(api, updated_since=since) == expected
    assert _order_numbers(api, updated_since=stamps[-1]) == [
        item["number"] for item in items if item["updated_at"] == stamps[-1]
    ]


ORDER_SORTS = [
    s
    for f in ("number", "order_date", "delivery_date", "total_base", "created_at", "updated_at")
    for s in (f, f"-{f}")
]


@pytest.mark.parametrize("sort", ORDER_SORTS)
def test_list_sorts_nulls_last_ties_by_number_over_every_page(
    api: Api, orders: dict[str, Any], sort: str
) -> None:
    ok(api.patch(f"{ORDERS}/1", json={"order_date": "2025-01-01"}))
    ok(api.patch(f"{ORDERS}/5", json={"order_date": "2025-01-01"}))
    everything = walk(api, ORDERS, limit=500)
    assert len(everything) == 6
    expected = numbers(order_sort(everything, sort))
    assert numbers(walk(api, ORDERS, limit=2, sort=sort)) == expected
    assert numbers(walk(api, ORDERS, limit=500, sort=sort)) == expected


def test_list_unknown_sort_is_422(api: Api) -> None:
    assert_problem(api.get(ORDERS, params={"sort": "partner"}), 422)


# --- partner deletion ------------------------------------------------------------------------


def test_deleting_a_partner_with_orders_is_409_partner_has_sales_orders(api: Api) -> None:
    p = create_partner(api)
    order = create_order(api, p["number"])
    ok(transition(api, order["number"], "cancel"))
    r = api.delete(f"{PARTNERS}/{p['number']}")
    assert_problem(r, 409, "partner_has_sales_orders")
    assert get_partner(api, p["number"])["number"] == p["number"]
    assert get_order(api, order["number"])["status"] == "cancelled"
    # A partner without orders can still be deleted.
    q = create_partner(api)
    assert api.delete(f"{PARTNERS}/{q['number']}").status_code == 204


def test_an_order_page_reads_its_orders_lines_in_one_statement_by_company(
    api: Api, db: Any
) -> None:
    partner = create_partner(api)["number"]
    create_order(api, partner, [line("1", "10.00", description=d) for d in ("Rye", "Oat", "Malt")])
    create_order(api, partner, [line("2", "5.00", description="Barley")])
    statements: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        items = ok(api.get(ORDERS))["items"]
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert [[item["description"] for item in order["lines"]] for order in items] == [
        ["Rye", "Oat", "Malt"],
        ["Barley"],
    ]
    related = [s for s in statements if "FROM sales_order_lines" in s]
    assert len(related) == 1, related
    # The form the (company_id, order_id) index answers (see fill_collection).
    assert not re.search(r"\(\w+\.company_id, \w+\.order_id\) IN", related[0]), related[0]
    assert re.search(r"\w+\.company_id = \S+ AND \w+\.order_id IN", related[0]), related[0]


@pytest.mark.postgres_only
def test_an_order_locks_the_company_wide_row_only_with_its_last_statement(
    api: Api, db: Any
) -> None:
    """The company's event counter serialises every write of the company from the statement
    that locks it to the commit: an order's events are numbered and inserted by its last
    statement. Its number comes from the company's sequence, which locks nothing, taken once
    every check is done and its partner written."""
    partner = create_partner(api)["number"]
    create_order(api, partner, [line("1", "10.00")])
    statements: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()))

    def commit(_conn: Any) -> None:
        statements.append("COMMIT")

    event.listen(db.engine, "before_cursor_execute", capture)
    event.listen(db.engine, "commit", commit)
    try:
        create_order(api, partner, [line("2", "5.00")])
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
        event.remove(db.engine, "commit", commit)
    begin = next(i for i, s in enumerate(statements) if s.startswith("SELECT partners."))
    assert statements[begin].endswith("FOR UPDATE OF partners"), statements[begin]
    assert "pg_advisory_xact_lock" in statements[begin]  # its turn, in the same statement
    # (the tests' sessions commit by releasing a savepoint of the test's transaction)
    end = next(
        i
        for i, s in enumerate(statements)
        if i > begin and (s == "COMMIT" or s.startswith("RELEASE SAVEPOINT"))
    )
    writes = statements[begin:end]
    counter = [i for i, s in enumerate(writes) if "number_sequences" in s]
    assert counter == [len(writes) - 1], writes  # only the events' statement, the last
    assert writes[-1].startswith("WITH counter AS ( UPDATE number_sequences"), writes[-1]
    assert "INSERT INTO events" in writes[-1]
    taken = next(i for i, s in enumerate(writes) if "nextval(" in s)
    assert any(s.startswith("UPDATE partners") for s in writes[:taken]), writes
    assert not any(s.startswith("UPDATE partners") for s in writes[taken:]), writes
    # The partner's event needs no read of its version: the loaded partner knows it, and the
    # events' statement renders the partner only at that version (see tests/events).
    assert not any(s.startswith("SELECT partners.number, partners.version") for s in writes)
    assert "p.version = " in writes[-1], writes[-1]
