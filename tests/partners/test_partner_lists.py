"""The partner list: limits, totals, every filter, every sort, keyset cursors."""

from __future__ import annotations

import base64
import json
import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from tests.conftest import Api, assert_problem
from tests.helpers import (
    PARTNERS,
    STAGES,
    TAGS,
    assert_loc,
    create_partner,
    create_tag,
    create_user,
    get_partner,
    numbers,
    set_partner_columns,
    utc,
    walk,
)


def _list(api: Api, **params: Any) -> dict[str, Any]:
    r = api.get(PARTNERS, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _numbers(api: Api, **params: Any) -> list[int]:
    return numbers(_list(api, limit=500, **params)["items"])


# --- shape, limit, total ------------------------------------------------------------------


def test_empty_list_has_no_items_and_no_cursor(api: Api) -> None:
    body = _list(api)
    assert body["items"] == []
    assert body["next_cursor"] is None


def test_list_items_are_the_same_as_get(api: Api) -> None:
    create_tag(api, "Organic")
    p = create_partner(api, tags=["Organic"], customer_stage="lead", locations=[{"country": "DK"}])
    assert _list(api)["items"] == [get_partner(api, p["number"])]


def test_list_default_order_is_by_number(api: Api) -> None:
    for name in ("Zulu", "Alpha", "Mike"):
        create_partner(api, name=name)
    assert _numbers(api) == [1, 2, 3]


def test_default_limit_is_50(api: Api) -> None:
    for i in range(51):
        create_partner(api, name=f"P{i}")
    body = _list(api)
    assert len(body["items"]) == 50
    assert body["next_cursor"] is not None


@pytest.mark.parametrize("limit", [0, 501, -1, 100000])
def test_limit_out_of_range_is_422_not_clamped(api: Api, limit: int) -> None:
    create_partner(api)
    body = assert_problem(api.get(PARTNERS, params={"limit": limit}), 422)
    assert_loc(body, "query", "limit")


def test_non_numeric_limit_is_422(api: Api) -> None:
    body = assert_problem(api.get(PARTNERS, params={"limit": "ten"}), 422)
    assert_loc(body, "query", "limit")


@pytest.mark.parametrize("limit", [1, 500])
def test_limit_at_the_bounds_is_accepted(api: Api, limit: int) -> None:
    create_partner(api)
    create_partner(api)
    body = _list(api, limit=limit)
    assert len(body["items"]) == min(limit, 2)


def test_limit_cuts_the_page_and_gives_a_cursor(api: Api) -> None:
    for _ in range(3):
        create_partner(api)
    body = _list(api, limit=2)
    assert numbers(body["items"]) == [1, 2]
    assert isinstance(body["next_cursor"], str)
    assert body["next_cursor"]


def test_last_page_has_null_cursor(api: Api) -> None:
    for _ in range(2):
        create_partner(api)
    assert _list(api, limit=2)["next_cursor"] is None


def test_include_total_counts_every_match_not_just_the_page(api: Api) -> None:
    for _ in range(4):
        create_partner(api)
    body = _list(api, limit=1, include_total="true")
    assert body["total"] == 4
    assert len(body["items"]) == 1


def test_total_is_absent_without_include_total(api: Api) -> None:
    create_partner(api)
    assert _list(api).get("total") is None


def test_include_total_counts_only_filtered_matches(api: Api) -> None:
    create_partner(api, country="DK")
    create_partner(api, country="SE")
    create_partner(api, country="DK")
    assert _list(api, limit=1, country="DK", include_total="true")["total"] == 2


# --- filters ------------------------------------------------------------------------------


def test_q_matches_part_of_the_name_in_any_case(api: Api) -> None:
    create_partner(api, name="Nordic Deli A/S")
    create_partner(api, name="DELICATESSEN Hansen")
    create_partner(api, name="Fjord Fisk")
    assert _numbers(api, q="deli") == [1, 2]
    assert _numbers(api, q="DeLi") == [1, 2]
    assert _numbers(api, q="fisk") == [3]


def test_q_matches_the_exact_number(api: Api) -> None:
    letters = "abcdefghijkl"
    for ch in letters:
        create_partner(api, name=f"Partner {ch}")
    assert _numbers(api, q="1") == [1]
    assert _numbers(api, q="12") == [12]
    assert _numbers(api, q="13") == []


def test_q_matches_name_or_number(api: Api) -> None:
    create_partner(api, name="Alpha")
    create_partner(api, name="Shop 1 Copenhagen")
    assert _numbers(api, q="1") == [1, 2]


def test_q_treats_like_wildcards_literally(api: Api) -> None:
    create_partner(api, name="100% Organic")
    create_partner(api, name="Plain Foods")
    create_partner(api, name="Under_score")
    create_partner(api, name="Back\\slash")
    assert _numbers(api, q="%") == [1]
    assert _numbers(api, q="\\") == [4]
    assert _numbers(api, q="_") == [3]
    assert _numbers(api, q="0%") == [1]


def test_q_matches_non_ascii_name_in_any_case(api: Api) -> None:
    create_partner(api, name="ØRESUND Fisk")
    create_partner(api, name="Ærø Æbler")
    create_partner(api, name="Plain Foods")
    assert _numbers(api, q="øresund") == [1]
    assert _numbers(api, q="ærø") == [2]
    assert _numbers(api, q="ÆBLER") == [2]


def test_q_that_matches_nothing_gives_empty_list(api: Api) -> None:
    create_partner(api, name="Nordic")
    assert _numbers(api, q="zzz") == []


def test_customer_stage_filter_is_repeatable(api: Api) -> None:
    for stage in ("lead", "potential", "active", None, "lost", "lead"):
        create_partner(api, customer_stage=stage)
    assert _numbers(api, customer_stage="lead") == [1, 6]
    assert _numbers(api, customer_stage=["lead", "active"]) == [1, 3, 6]
    assert _numbers(api, customer_stage=list(STAGES)) == [1, 2, 3, 5, 6]


def test_unknown_customer_stage_filter_is_422(api: Api) -> None:
    body = assert_problem(api.get(PARTNERS, params={"customer_stage": "customer"}), 422)
    assert_loc(body, "query", "customer_stage")


def test_tag_filter_any_of_and_each_partner_once(api: Api) -> None:
    for name in ("Organic", "Export", "Wholesale"):
        create_tag(api, name)
    create_partner(api, tags=["Organic"])
    create_partner(api, tags=["Export"])
    create_partner(api, tags=["Organic", "Export"])
    create_partner(api)
    assert _numbers(api, tag="Organic") == [1, 3]
    assert _numbers(api, tag=["Organic", "Export"]) == [1, 2, 3]
    assert _numbers(api, tag="Wholesale") == []


def test_tag_filter_ignores_case(api: Api) -> None:
    create_tag(api, "Organic")
    create_partner(api, tags=["Organic"])
    create_partner(api)
    assert _numbers(api, tag="oRGANIC") == [1]


def test_tag_filter_total_counts_each_partner_once(api: Api) -> None:
    create_tag(api, "Organic")
    create_tag(api, "Export")
    create_partner(api, tags=["Organic", "Export"])
    body = _list(api, tag=["Organic", "Export"], include_total="true")
    assert body["total"] == 1
    assert len(body["items"]) == 1


def test_owner_id_filter(api: Api) -> None:
    first = create_user(api, name="First")
    second = create_user(api, name="Second")
    create_partner(api, owner_id=first["id"])
    create_partner(api, owner_id=second["id"])
    create_partner(api)
    create_partner(api, owner_id=first["id"])
    assert _numbers(api, owner_id=first["id"]) == [1, 4]
    assert _numbers(api, owner_id=second["id"]) == [2]


def test_owner_id_filter_must_be_a_uuid(api: Api) -> None:
    body = assert_problem(api.get(PARTNERS, params={"owner_id": "nobody"}), 422)
    assert_loc(body, "query", "owner_id")


def test_country_filter(api: Api) -> None:
    for country in ("DK", "SE", "DK", "NO"):
        create_partner(api, country=country)
    assert _numbers(api, country="DK") == [1, 3]
    assert _numbers(api, country="NO") == [4]
    assert _numbers(api, country="DE") == []


@pytest.mark.parametrize("country", ["dk", "XX", "DNK"])
def test_invalid_country_filter_is_422(api: Api, country: str) -> None:
    body = assert_problem(api.get(PARTNERS, params={"country": country}), 422)
    assert_loc(body, "query", "country")


def test_credit_limit_exceeded_filter(api: Api, session: Session) -> None:
    company_id = api.tenant.company.id
    for _ in range(3):
        create_partner(api, credit_limit="100.00")
    set_partner_columns(
        session, company_id, 2, debtor_balance=Decimal("150.00"), credit_limit_exceeded=True
    )
    assert _numbers(api, credit_limit_exceeded="true") == [2]
    assert _numbers(api, credit_limit_exceeded="false") == [1, 3]
    assert get_partner(api, 2)["credit_limit_exceeded"] is True


def test_credit_limit_exceeded_filter_must_be_boolean(api: Api) -> None:
    body = assert_problem(api.get(PARTNERS, params={"credit_limit_exceeded": "maybe"}), 422)
    assert_loc(body, "query", "credit_limit_exceeded")


def test_updated_since_filter(api: Api, session: Session) -> None:
    company_id = api.tenant.company.id
    stamps = [utc(2024, 1, 1), utc(2024, 6, 1, 12), utc(2025, 1, 1)]
    for number, stamp in enumerate(stamps, start=1):
        create_partner(api)
        set_partner_columns(session, company_id, number, updated_at=stamp)
    assert _numbers(api, updated_since="2024-03-01T00:00:00Z") == [2, 3]
    assert _numbers(api, updated_since="2024-12-31T23:59:59Z") == [3]
    assert _numbers(api, updated_since="2026-01-01T00:00:00Z") == []


def test_updated_since_includes_the_exact_instant(api: Api, session: Session) -> None:
    create_partner(api)
    set_partner_columns(session, api.tenant.company.id, 1, updated_at=utc(2024, 6, 1, 12))
    assert _numbers(api, updated_since="2024-06-01T12:00:00Z") == [1]


def test_updated_since_honours_the_time_zone_offset(api: Api, session: Session) -> None:
    company_id = api.tenant.company.id
    for number, stamp in enumerate([utc(2024, 6, 1, 11), utc(2024, 6, 1, 13)], start=1):
        create_partner(api)
        set_partner_columns(session, company_id, number, updated_at=stamp)
    # 14:00 at +02:00 is 12:00 UTC: only the second partner changed after it.
    assert _numbers(api, updated_since="2024-06-01T14:00:00+02:00") == [2]
    assert _numbers(api, updated_since="2024-06-01T10:30:00-01:00") == [2]


def test_updated_since_sees_a_patch(api: Api, session: Session) -> None:
    company_id = api.tenant.company.id
    for number in (1, 2):
        create_partner(api)
        set_partner_columns(session, company_id, number, updated_at=utc(2020, 1, 1))
    assert api.patch(f"{PARTNERS}/2", json={"name": "Touched"}).status_code == 200
    assert _numbers(api, updated_since="2021-01-01T00:00:00Z") == [2]


def test_updated_since_sees_a_change_of_tags_only(api: Api, session: Session) -> None:
    create_tag(api, "Organic")
    create_partner(api)
    set_partner_columns(session, api.tenant.company.id, 1, updated_at=utc(2020, 1, 1))
    assert api.patch(f"{PARTNERS}/1", json={"tags": ["Organic"]}).status_code == 200
    assert _numbers(api, updated_since="2021-01-01T00:00:00Z") == [1]


@pytest.mark.parametrize("value", ["2024-06-01T12:00:00", "2024-06-01", "yesterday"])
def test_updated_since_without_time_zone_is_422(api: Api, value: str) -> None:
    body = assert_problem(api.get(PARTNERS, params={"updated_since": value}), 422)
    assert_loc(body, "query", "updated_since")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (PARTNERS, "0001-01-01T00:00:00+00:04"),
        ("/api/v1/sales-orders", "0001-01-01T00:00:00+00:04"),
        ("/api/v1/crm/overview", "9999-12-31T23:59:59-00:04"),
        ("/api/v1/crm/overview.csv", "9999-12-31T23:59:59-00:04"),
    ],
)
def test_updated_since_beyond_the_range_of_utc_is_422(api: Api, path: str, value: str) -> None:
    """Valid text, but no instant once converted to UTC: a 422 naming the field, not a 500."""
    body = assert_problem(api.get(path, params={"updated_since": value}), 422)
    assert_loc(body, "query", "updated_since")
    assert [e["code"] for e in body["errors"]] == ["datetime_out_of_range"]


def test_filters_combine_with_and(api: Api) -> None:
    create_partner(api, country="DK", customer_stage="lead")
    create_partner(api, country="SE", customer_stage="lead")
    create_partner(api, country="DK", customer_stage="active")
    assert _numbers(api, country="DK", customer_stage="lead") == [1]


def test_cursor_walk_keeps_the_filter(api: Api) -> None:
    for i in range(7):
        create_partner(api, country="DK" if i % 2 == 0 else "SE")
    assert numbers(walk(api, PARTNERS, limit=2, country="DK")) == [1, 3, 5, 7]


# --- sorting ------------------------------------------------------------------------------

# Names and countries that sort the same under any collation (same case, plain letters).
SORT_ROWS: list[dict[str, Any]] = [
    {
        "name": "Delta",
        "country": "DK",
        "customer_stage": "active",
        "credit_limit": "500.00",
        "debtor_balance": Decimal("100.00"),
        "uninvoiced_total": Decimal("0.00"),
        "latest_sales_delivery_date": date(2024, 3, 1),
        "created_at": utc(2024, 1, 3),
        "updated_at": utc(2024, 2, 5),
    },
    {
        "name": "Alpha",
        "country": "SE",
        "customer_stage": None,
        "credit_limit": None,
        "debtor_balance": None,
        "uninvoiced_total": Decimal("50.00"),
        "latest_sales_delivery_date": None,
        "created_at": utc(2024, 1, 1),
        "updated_at": utc(2024, 2, 5),
    },
    {
        "name": "Charlie",
        "country": "DE",
        "customer_stage": "lead",
        "credit_limit": "500.00",
        "debtor_balance": Decimal("-20.00"),
        "uninvoiced_total": Decimal("10.00"),
        "latest_sales_delivery_date": date(2024, 1, 15),
        "created_at": utc(2024, 1, 3),
        "updated_at": utc(2024, 2, 1),
    },
    {
        "name": "Bravo",
        "country": "DK",
        "customer_stage": "lost",
        "credit_limit": "1000.00",
        "debtor_balance": None,
        "uninvoiced_total": Decimal("50.00"),
        "latest_sales_delivery_date": date(2024, 3, 1),
        "created_at": utc(2024, 1, 2),
        "updated_at": utc(2024, 2, 2),
    },
    {
        "name": "Alpha",
        "country": "NO",
        "customer_stage": "potential",
        "credit_limit": None,
        "debtor_balance": Decimal("100.00"),
        "uninvoiced_total": Decimal("0.00"),
        "latest_sales_delivery_date": None,
        "created_at": utc(2024, 1, 1),
        "updated_at": utc(2024, 2, 4),
    },
    {
        "name": "Echo",
        "country": "SE",
        "customer_stage": "active",
        "credit_limit": "0.00",
        "debtor_balance": Decimal("5.50"),
        "uninvoiced_total": Decimal("7.25"),
        "latest_sales_delivery_date": date(2023, 12, 31),
        "created_at": utc(2024, 1, 4),
        "updated_at": utc(2024, 2, 3),
    },
    {
        "name": "Bravo",
        "country": "DE",
        "customer_stage": None,
        "credit_limit": "20.50",
        "debtor_balance": None,
        "uninvoiced_total": Decimal("10.00"),
        "latest_sales_delivery_date": date(2024, 1, 15),
        "created_at": utc(2024, 1, 2),
        "updated_at": utc(2024, 2, 2),
    },
    {
        "name": "Inactive",
        "country": "FI",
        "customer_stage": "inactive",
        "credit_limit": "20.50",
        "debtor_balance": Decimal("0.00"),
        "uninvoiced_total": Decimal("0.00"),
        "latest_sales_delivery_date": date(2025, 1, 1),
        "created_at": utc(2024, 1, 5),
        "updated_at": utc(2024, 2, 6),
    },
]
API_FIELDS = ("name", "country", "customer_stage", "credit_limit")
SET_FIELDS = (
    "debtor_balance",
    "uninvoiced_total",
    "latest_sales_delivery_date",
    "created_at",
    "updated_at",
)
SORT_FIELDS = (
    "number",
    "name",
    "country",
    "customer_stage",
    "credit_limit",
    "debtor_balance",
    "uninvoiced_total",
    "latest_sales_delivery_date",
    "created_at",
    "updated_at",
)
SORT_VALUES = [v for f in SORT_FIELDS for v in (f, f"-{f}")]


def _sort_key(field: str, value: Any) -> Any:
    if field == "customer_stage":
        return STAGES.index(value)
    if field == "credit_limit":
        return Decimal(value)
    return value


def expected_order(sort: str) -> list[int]:
    """Nulls last in either direction; ties broken by number, in the sort's direction."""
    descending = sort.startswith("-")
    field = sort.lstrip("-")
    rows = [{"number": n, **row} for n, row in enumerate(SORT_ROWS, start=1)]
    if field == "number":
        return sorted((r["number"] for r in rows), reverse=descending)
    present = [r for r in rows if r[field] is not None]
    absent = [r for r in rows if r[field] is None]
    present.sort(key=lambda r: (_sort_key(field, r[field]), r["number"]), reverse=descending)
    absent.sort(key=lambda r: r["number"], reverse=descending)
    return [r["number"] for r in present + absent]


@pytest.fixture
def sort_rows(api: Api, session: Session) -> None:
    company_id = api.tenant.company.id
    for number, row in enumerate(SORT_ROWS, start=1):
        created = create_partner(api, **{f: row[f] for f in API_FIELDS})
        assert created["number"] == number
        set_partner_columns(session, company_id, number, **{f: row[f] for f in SET_FIELDS})


def test_sort_data_reads_back_as_set(api: Api, sort_rows: None) -> None:
    p = get_partner(api, 3)
    assert p["debtor_balance"] == "-20.00"
    assert p["uninvoiced_total"] == "10.00"
    assert p["latest_sales_delivery_date"] == "2024-01-15"
    assert p["created_at"].startswith("2024-01-03T00:00:00")


@pytest.mark.parametrize("sort", SORT_VALUES)
def test_sort_orders_with_nulls_last_and_ties_by_number(
    api: Api, sort_rows: None, sort: str
) -> None:
    assert _numbers(api, sort=sort) == expected_order(sort)


@pytest.mark.parametrize("sort", SORT_VALUES)
def test_walking_every_page_returns_each_partner_once_in_order(
    api: Api, sort_rows: None, sort: str
) -> None:
    for limit in (1, 2, 3):
        got = numbers(walk(api, PARTNERS, limit=limit, sort=sort))
        assert got == expected_order(sort), f"limit={limit}"


def test_unknown_sort_is_422(api: Api) -> None:
    body = assert_problem(api.get(PARTNERS, params={"sort": "shoe_size"}), 422)
    assert_loc(body, "query", "sort")


@pytest.mark.parametrize("sort", ["-shoe_size", "--name", "+name", "name,number", "", "NAME"])
def test_malformed_sort_is_422(api: Api, sort: str) -> None:
    body = assert_problem(api.get(PARTNERS, params={"sort": sort}), 422)
    assert_loc(body, "query", "sort")


# --- cursors ------------------------------------------------------------------------------


def _first_cursor(api: Api, **params: Any) -> str:
    body = _list(api, limit=1, **params)
    assert body["next_cursor"]
    return body["next_cursor"]


def test_cursor_from_another_sort_is_invalid_cursor(api: Api) -> None:
    for name in ("A", "B", "C"):
        create_partner(api, name=name)
    cursor = _first_cursor(api, sort="name")
    for other in ("-name", "number", "country"):
        r = api.get(PARTNERS, params={"sort": other, "cursor": cursor})
        body = assert_problem(r, 422, "invalid_cursor")
        assert_loc(body, "query", "cursor")


def test_cursor_used_without_sort_continues_its_own_sort(api: Api) -> None:
    # A cursor carries its sort: alone, it goes on in that sort (not in the default one).
    for name in ("A", "B", "C"):
        create_partner(api, name=name)
    cursor = _first_cursor(api, sort="-name")
    assert [p["name"] for p in _list(api, cursor=cursor)["items"]] == ["B", "A"]


def test_cursor_from_the_tag_list_is_invalid_cursor(api: Api) -> None:
    create_partner(api)
    create_tag(api, "Aa")
    create_tag(api, "Bb")
    r = api.get(TAGS, params={"limit": 1})
    cursor = r.json()["next_cursor"]
    assert cursor
    assert_problem(api.get(PARTNERS, params={"cursor": cursor}), 422, "invalid_cursor")


def _b64(payload: Any) -> str:
    raw = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "AAAA",
        "x",
        "-_-_",
        _b64(b"\xff\xfe\x00binary"),
        _b64({"s": "number"}),
        _b64({"s": "number", "k": ["one", "two"]}),
        _b64({"s": "number", "k": [1]}),
        _b64([1, 2, 3]),
        _b64({"s": "name", "k": [None, 1]}),
        _b64({"s": "number", "k": [True, True]}),
        _b64("just a string"),
        "!!!not-base64!!!",
    ],
)
def test_garbage_cursor_is_invalid_cursor(api: Api, cursor: str) -> None:
    create_partner(api)
    r = api.get(PARTNERS, params={"cursor": cursor})
    body = assert_problem(r, 422, "invalid_cursor")
    assert_loc(body, "query", "cursor")


def test_very_long_cursor_is_422(api: Api) -> None:
    r = api.get(PARTNERS, params={"cursor": "A" * 5000})
    body = assert_problem(r, 422)
    assert_loc(body, "query", "cursor")


def test_paging_is_stable_while_partners_are_added(api: Api) -> None:
    for _ in range(4):
        create_partner(api)
    first = _list(api, limit=2)
    assert numbers(first["items"]) == [1, 2]
    create_partner(api)  # number 5, after the cursor
    rest = walk_from(api, first["next_cursor"], limit=2)
    assert rest == [3, 4, 5]


def test_paging_is_stable_while_partners_are_deleted(api: Api) -> None:
    for _ in range(5):
        create_partner(api)
    first = _list(api, limit=2)
    assert numbers(first["items"]) == [1, 2]
    assert api.delete(f"{PARTNERS}/2").status_code == 204  # the cursor's own row
    assert api.delete(f"{PARTNERS}/4").status_code == 204
    assert walk_from(api, first["next_cursor"], limit=2) == [3, 5]


def test_paging_by_name_is_stable_while_partners_are_added(api: Api) -> None:
    for name in ("Bravo", "Delta", "Foxtrot", "Hotel"):
        create_partner(api, name=name)
    first = _list(api, limit=2, sort="name")
    assert [p["name"] for p in first["items"]] == ["Bravo", "Delta"]
    create_partner(api, name="Alpha")  # sorts before the cursor: not on later pages
    create_partner(api, name="Echo")  # sorts after it: on a later page
    rest = walk_from(api, first["next_cursor"], limit=2, sort="name")
    assert [get_partner(api, n)["name"] for n in rest] == ["Echo", "Foxtrot", "Hotel"]


def walk_from(api: Api, cursor: str, *, limit: int, **params: Any) -> list[int]:
    got: list[int] = []
    while cursor:
        body = _list(api, limit=limit, cursor=cursor, **params)
        got += numbers(body["items"])
        cursor = body["next_cursor"]
    return got


def test_a_page_reads_its_partners_tags_and_locations_in_two_statements_by_company(
    api: Api, db: Any
) -> None:
    for name in ("Organic", "Export", "Wholesale"):
        create_tag(api, name)
    place = {"address": "Gade 1", "postal_code": "8000", "city": "Aarhus", "country": "DK"}
    create_partner(
        api,
        tags=["Wholesale", "Export"],
        locations=[{**place, "name": "HQ", "is_primary": True}, {**place, "name": "Dock"}],
    )
    create_partner(api)  # neither tags nor locations
    create_partner(api, tags=["Organic"], locations=[{**place, "name": "Shop"}])
    statements: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        items = _list(api)["items"]
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    assert [(p["tags"], [loc["name"] for loc in p["locations"]]) for p in items] == [
        (["Export", "Wholesale"], ["HQ", "Dock"]),
        ([], []),
        (["Organic"], ["Shop"]),
    ]
    related = [s for s in statements if "partner_tags" in s or "partner_locations" in s]
    assert len(related) == 2, related
    # The form the (company_id, partner_id, ...) indexes answer with one range per partner.
    # SQLAlchemy's own loading of a composite key, "(company_id, partner_id) IN ((..), ..)",
    # was planned by PostgreSQL as a bitmap probe per partner for each of the company's tags.
    for statement in related:
        assert not re.search(r"\(\w+\.company_id, \w+\.partner_id\) IN", statement), statement
        assert re.search(r"\w+\.company_id = \S+ AND \w+\.partner_id IN", statement), statement
