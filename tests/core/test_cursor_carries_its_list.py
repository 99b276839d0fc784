"""A cursor carries the list it came from: its sort and its filters.

Sent alone, a cursor continues that list (same sort, same filters). Sent with another sort or
other filters it is 422 ``invalid_cursor``, and the detail says which: a page of some other
list, started at a row of this one, is never an answer. The partner list, the order list and
the CRM overview, each on a nullable and a non-nullable sort.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.core.pagination import fingerprint
from tests.conftest import Api, assert_problem
from tests.factories import Tenant, make_order, make_partner, transition_order
from tests.helpers import (
    ORDERS,
    OVERVIEW,
    PARTNERS,
    USERS,
    assert_loc,
    create_partner,
    create_tag,
    create_user,
    line,
    ok,
    walk,
)


@dataclass(frozen=True)
class ListCase:
    path: str
    sort: str
    other_sort: str
    filters: dict[str, Any]
    other_filters: dict[str, Any]
    same_filters: dict[str, Any]  # the same filters, written another way
    key: str  # a field that tells the items apart

    def __str__(self) -> str:
        return f"{self.path}?sort={self.sort}"


CASES = [
    ListCase(
        PARTNERS,
        "-name",
        "name",
        {"country": "DK", "customer_stage": ["lead", "active"]},
        {"country": "SE", "customer_stage": ["lead", "active"]},
        {"customer_stage": ["active", "lead", "active"], "country": "DK"},
        "number",
    ),
    ListCase(
        PARTNERS,
        "credit_limit",
        "-credit_limit",
        {"customer_stage": ["lead", "active"]},
        {"customer_stage": ["lead"]},
        {"customer_stage": ["active", "lead"]},
        "number",
    ),
    ListCase(
        OVERVIEW,
        "-name",
        "-number",
        {"country": "DK", "customer_stage": ["lead", "active"]},
        {"country": "DK"},
        {"customer_stage": ["active", "lead"], "country": "DK"},
        "number",
    ),
    ListCase(
        OVERVIEW,
        "latest_sales_delivery_date",
        "-latest_sales_delivery_date",
        {"customer_stage": ["lead", "active"]},
        {"customer_stage": ["lead", "active"], "credit_limit_exceeded": "false"},
        {"customer_stage": ["lead", "active", "lead"]},
        "number",
    ),
    ListCase(
        ORDERS,
        "-delivery_date",
        "delivery_date",
        {"status": ["open", "delivered"]},
        {"status": ["open"]},
        {"status": ["delivered", "open"]},
        "number",
    ),
    ListCase(
        ORDERS,
        "-total_base",
        "total_base",
        {"status": ["open", "delivered"], "delivery_date_from": "2025-01-01"},
        {"status": ["open", "delivered"], "delivery_date_from": "2025-01-02"},
        {"delivery_date_from": "2025-01-01", "status": ["delivered", "open"]},
        "number",
    ),
]


@pytest.fixture
def data(session: Session, tenant: Tenant) -> None:
    """Twelve partners in two countries and three stages (some without a credit limit),
    and orders of several statuses, some without a delivery date (made through the
    services: the lists under test are read over HTTP)."""
    stages = ["lead", "active", "lost", None]
    for i in range(12):
        fields: dict[str, Any] = {
            "name": f"{chr(ord('A') + (i * 5) % 12)} Partner",
            "country": "DK" if i % 3 else "SE",
        }
        if stages[i % 4]:
            fields["customer_stage"] = stages[i % 4]
        if i % 2:
            fields["credit_limit"] = f"{100 * (i % 5)}.00"
        partner = make_partner(session, tenant, **fields)
        for j in range(2):
            delivery = {"delivery_date": f"2025-0{1 + (i + j) % 3}-1{j}"} if (i + j) % 3 else {}
            order = make_order(
                session, tenant, partner.number, [line("1", f"{10 + i}.00")], **delivery
            )
            if (i + j) % 4 == 1:
                transition_order(session, tenant, order.number, "deliver")
            elif (i + j) % 4 == 2:
                transition_order(session, tenant, order.number, "cancel")


def _keys(case: ListCase, items: list[dict[str, Any]]) -> list[Any]:
    return [item[case.key] for item in items]


def _first_page(api: Api, case: ListCase, **params: Any) -> dict[str, Any]:
    body = ok(api.get(case.path, params={"limit": 2, **params}))
    assert body["next_cursor"], "the data must make more than one page"
    return body


def _follow(api: Api, case: ListCase, cursor: str | None, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while cursor:
        body = ok(api.get(case.path, params={"limit": 2, "cursor": cursor, **params}))
        items += body["items"]
        cursor = body["next_cursor"]
    return items


def _payload(cursor: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))


def _cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _refused(response: Any, why: str) -> None:
    body = assert_problem(response, 422, "invalid_cursor")
    assert_loc(body, "query", "cursor")
    assert why in body["detail"], body["detail"]


# --- alone, a cursor continues its own list -------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=str)
def test_cursor_alone_continues_its_list_with_its_sort_and_filters(
    api: Api, data: None, case: ListCase
) -> None:
    expected = walk(api, case.path, limit=500, sort=case.sort, **case.filters)
    assert _keys(case, expected) != _keys(case, walk(api, case.path, limit=500)), (
        "the sort and filters must make another list than the default one"
    )
    first = _first_page(api, case, sort=case.sort, **case.filters)
    rest = _follow(api, case, first["next_cursor"])
    assert _keys(case, first["items"] + rest) == _keys(case, expected)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_cursor_with_its_own_sort_and_filters_continues_the_same(
    api: Api, data: None, case: ListCase
) -> None:
    first = _first_page(api, case, sort=case.sort, **case.filters)
    alone = _follow(api, case, first["next_cursor"])
    assert _follow(api, case, first["next_cursor"], sort=case.sort, **case.filters) == alone
    assert _follow(api, case, first["next_cursor"], **case.filters) == alone
    assert _follow(api, case, first["next_cursor"], sort=case.sort) == alone


@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_same_filters_written_another_way_are_the_same_list(
    api: Api, data: None, case: ListCase
) -> None:
    first = _first_page(api, case, sort=case.sort, **case.filters)
    alone = _follow(api, case, first["next_cursor"])
    assert _follow(api, case, first["next_cursor"], **case.same_filters) == alone


# --- with another sort or other filters, it is refused, saying why --------------------------


@pytest.mark.parametrize("case", CASES, ids=str)
def test_cursor_with_another_sort_is_invalid_cursor_naming_its_sort(
    api: Api, data: None, case: ListCase
) -> None:
    cursor = _first_page(api, case, sort=case.sort, **case.filters)["next_cursor"]
    for params in ({"sort": case.other_sort}, {"sort": case.other_sort, **case.filters}):
        r = api.get(case.path, params={"cursor": cursor, **params})
        _refused(r, f"The cursor was made for sort={case.sort};")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_cursor_with_other_filters_is_invalid_cursor(api: Api, data: None, case: ListCase) -> None:
    cursor = _first_page(api, case, sort=case.sort, **case.filters)["next_cursor"]
    some = dict(list(case.filters.items())[:1])  # fewer filters are other filters too
    for filters in (case.other_filters, some) if some != case.filters else (case.other_filters,):
        for params in ({}, {"sort": case.sort}):
            r = api.get(case.path, params={"cursor": cursor, **params, **filters})
            _refused(r, "The cursor was made for other filters")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_cursor_made_without_filters_is_invalid_cursor_with_filters(
    api: Api, data: None, case: ListCase
) -> None:
    cursor = _first_page(api, case, sort=case.sort)["next_cursor"]
    r = api.get(case.path, params={"cursor": cursor, **case.filters})
    _refused(r, "The cursor was made for other filters")


# --- what the cursor carries is checked like the query string -------------------------------


def test_filters_too_long_to_travel_must_be_sent_with_the_cursor(api: Api) -> None:
    names = [f"{i:02d} " + "x" * 44 for i in range(25)]  # 25 x 47 characters: too long
    for name in names:
        create_tag(api, name)
    for i in range(5):
        create_partner(api, name=f"P{i}", tags=[names[i]])
    params = {"sort": "-name", "tag": names}
    first = ok(api.get(PARTNERS, params={"limit": 2, **params}))
    cursor = first["next_cursor"]
    assert cursor
    assert len(cursor) <= 1000
    assert "w" not in _payload(cursor)
    _refused(api.get(PARTNERS, params={"cursor": cursor}), "The cursor was made for other filters")
    rest = walk(api, PARTNERS, limit=2, cursor=cursor, **params)
    assert [p["name"] for p in first["items"] + rest] == ["P4", "P3", "P2", "P1", "P0"]


def _orders_cursor(api: Api) -> dict[str, Any]:
    cursor = _first_page(api, CASES[4], sort="-delivery_date", status=["open", "delivered"])
    payload = _payload(cursor["next_cursor"])
    assert payload["w"] == {"status": ["delivered", "open"]}
    assert payload["f"] == fingerprint(payload["w"])
    return payload


@pytest.mark.parametrize(
    "carried",
    [
        {"partner_number": 2**40},  # past the query parameter's bound
        {"partner_number": 0},
        {"status": ["shipped"]},
        {"status": ["open"] * 5},  # more than the parameter allows
        {"status": ["open", "delivered"]},  # not the normalized form handed out
        {"status": "open"},
        {"updated_since": "2025-01-01T00:00:00"},  # without a time zone
        {"updated_since": "2025-01-01T02:00:00+02:00"},  # not in UTC
        {"delivery_date_from": "20250101"},
        {"credit_warning": "true"},
        {"shoe_size": 44},
        {},
        ["status", "open"],
    ],
)
def test_carried_filters_are_checked_like_the_query_string(
    api: Api, data: None, carried: Any
) -> None:
    payload = _orders_cursor(api)
    payload["w"] = carried
    payload["f"] = fingerprint(carried) if isinstance(carried, dict) else "AAAAAAAAAAAA"
    r = api.get(ORDERS, params={"cursor": _cursor(payload)})
    _refused(r, "The cursor is not one this list handed out.")


def test_carried_filters_must_match_their_fingerprint(api: Api, data: None) -> None:
    payload = _orders_cursor(api)
    payload["w"] = {"status": ["open"]}
    _refused(
        api.get(ORDERS, params={"cursor": _cursor(payload)}),
        "The cursor is not one this list handed out.",
    )
    payload = _orders_cursor(api)
    for fingerprint_ in ("short", 12, None, "A" * 12 + "="):
        r = api.get(ORDERS, params={"cursor": _cursor({**payload, "f": fingerprint_})})
        _refused(r, "The cursor is not one this list handed out.")


def test_a_list_without_filters_refuses_a_cursor_with_filters(api: Api) -> None:
    for name in ("Ann", "Bo", "Cy"):
        create_user(api, name)
    cursor = _first_page(api, ListCase(USERS, "", "", {}, {}, {}, "id"))["next_cursor"]
    payload = _payload(cursor)
    assert set(payload) == {"s", "k"}
    assert ok(api.get(USERS, params={"cursor": cursor}))["items"]
    carried = {"country": "DK"}
    for extra in ({"f": fingerprint(carried)}, {"f": fingerprint(carried), "w": carried}):
        r = api.get(USERS, params={"cursor": _cursor({**payload, **extra})})
        _refused(r, "The cursor is not one this list handed out.")
