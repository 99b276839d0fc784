"""GET /api/v1/crm/overview: rows, columns, filters, sorts, keyset paging, totals."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session

from tests.conftest import Api, assert_problem
from tests.crm import dataset
from tests.helpers import (
    OVERVIEW,
    OVERVIEW_FIELDS,
    OVERVIEW_SORTS,
    create_order,
    create_partner,
    line,
    numbers,
    ok,
    patch_partner,
    ref_sort,
    sync_balance,
    walk,
)

OPENAPI = Path(__file__).resolve().parents[2] / "openapi" / "openapi.yaml"


@pytest.fixture
def data(api: Api, session: Session) -> dataset.Dataset:
    return dataset.build(api, session)


def _numbers(api: Api, **params: Any) -> list[int]:
    return numbers(walk(api, OVERVIEW, limit=500, **params))


def test_only_partners_with_a_customer_stage_are_rows(api: Api, data: dataset.Dataset) -> None:
    assert _numbers(api) == [1, 2, 3, 4, 6, 7, 8, 9, 10]
    # Partner 5 exists, it just has no stage.
    assert ok(api.get("/api/v1/partners/5"))["customer_stage"] is None
    patch_partner(api, 5, customer_stage="potential")
    assert 5 in _numbers(api)
    patch_partner(api, 5, customer_stage=None)
    assert 5 not in _numbers(api)


def test_rows_have_every_column_with_its_value(api: Api, data: dataset.Dataset) -> None:
    items = walk(api, OVERVIEW, limit=500)
    for item in items:
        assert list(item) == OVERVIEW_FIELDS
    assert items == data.rows


def test_row_values_match_the_partner_resource(api: Api, data: dataset.Dataset) -> None:
    for row in walk(api, OVERVIEW, limit=500):
        partner = ok(api.get(f"/api/v1/partners/{row['number']}"))
        for key in OVERVIEW_FIELDS:
            assert row[key] == partner[key], key


def test_credit_limit_exceeded_follows_a_changed_credit_limit(api: Api, session: Session) -> None:
    """The exceeded state is re-evaluated when the limit changes (domain.md)."""
    p = create_partner(api, customer_stage="lead", credit_limit="1000.00")
    sync_balance(session, api.tenant.company.id, p["number"], "500.00", "1000.00")
    assert walk(api, OVERVIEW, limit=10)[0]["credit_limit_exceeded"] is False
    patch_partner(api, p["number"], credit_limit="400.00")
    assert walk(api, OVERVIEW, limit=10)[0]["credit_limit_exceeded"] is True
    patch_partner(api, p["number"], credit_limit=None)
    assert walk(api, OVERVIEW, limit=10)[0]["credit_limit_exceeded"] is False


# --- filters ---------------------------------------------------------------------------------


FILTERS: list[tuple[dict[str, Any], list[int]]] = [
    ({"q": "alpha"}, [1, 4]),
    ({"q": "ALPHA FOODS"}, [1, 4]),
    ({"q": "ish"}, [7]),
    ({"q": "3"}, [3]),  # the exact number
    ({"q": "10"}, [10]),
    ({"q": "5"}, []),  # partner 5 has no stage
    ({"customer_stage": "lead"}, [1, 8]),
    ({"customer_stage": ["lead", "lost"]}, [1, 6, 8]),
    ({"customer_stage": ["potential", "inactive", "active"]}, [2, 3, 4, 7, 9, 10]),
    ({"tag": "Wholesale"}, [1, 2, 7]),
    ({"tag": "wholesale"}, [1, 2, 7]),
    ({"tag": ["Organic", "EXPORT"]}, [2, 4, 6, 7, 9]),
    ({"country": "DK"}, [1, 3, 6, 8, 10]),
    ({"country": "SE"}, [2, 9]),
    ({"country": "US"}, []),
    ({"credit_limit_exceeded": "true"}, [1, 8, 10]),
    ({"credit_limit_exceeded": "false"}, [2, 3, 4, 6, 7, 9]),
    ({"updated_since": "2025-01-06T00:00:00Z"}, [6, 7, 8, 9, 10]),
    ({"updated_since": "2025-01-06T12:00:00Z"}, [6, 7, 8, 9, 10]),  # at or after
    ({"updated_since": "2025-01-06T12:00:00.000001Z"}, [7, 8, 9, 10]),
    ({"updated_since": "2025-01-03T14:00:00+02:00"}, [3, 4, 6, 7, 8, 9, 10]),
    ({"country": "DK", "customer_stage": "lead", "tag": "Wholesale"}, [1]),
    ({"q": "a", "credit_limit_exceeded": "false", "country": "SE"}, [2]),
]


@pytest.mark.parametrize(("params", "expected"), FILTERS, ids=[str(p) for p, _ in FILTERS])
def test_filter(
    api: Api, data: dataset.Dataset, params: dict[str, Any], expected: list[int]
) -> None:
    assert _numbers(api, **params) == expected


@pytest.mark.parametrize("owner", ["admin", "bea", "carl"])
def test_filter_by_owner(api: Api, data: dataset.Dataset, owner: str) -> None:
    expected = {"admin": [3, 7], "bea": [1, 6, 10], "carl": [4, 9]}[owner]
    assert _numbers(api, owner_id=data.users[owner]["id"]) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"customer_stage": "customer"},
        {"country": "dk"},
        {"credit_limit_exceeded": "maybe"},
        {"updated_since": "2025-01-01T00:00:00"},  # no time zone
        {"owner_id": "not-a-uuid"},
        {"limit": 0},
        {"limit": 501},
        {"sort": "balance"},
        {"cursor": "not a cursor"},
    ],
)
def test_bad_parameters_are_422(api: Api, params: dict[str, Any]) -> None:
    assert_problem(api.get(OVERVIEW, params=params), 422)


# --- sorting and paging ----------------------------------------------------------------------


def test_the_sort_values_are_the_ones_in_the_contract() -> None:
    contract = yaml.safe_load(OPENAPI.read_text())
    assert sorted(contract["components"]["schemas"]["OverviewSort"]["enum"]) == sorted(
        OVERVIEW_SORTS
    )


def test_default_order_is_by_number(api: Api, data: dataset.Dataset) -> None:
    assert _numbers(api) == sorted(data.numbers())
    assert _numbers(api, sort="-number") == sorted(data.numbers(), reverse=True)


@pytest.mark.parametrize("sort", OVERVIEW_SORTS)
def test_sort_nulls_last_ties_by_number(api: Api, data: dataset.Dataset, sort: str) -> None:
    expected = numbers(ref_sort(data.rows, sort))
    assert _numbers(api, sort=sort) == expected


@pytest.mark.parametrize("sort", OVERVIEW_SORTS)
def test_walking_every_page_returns_each_row_exactly_once(
    api: Api, data: dataset.Dataset, sort: str
) -> None:
    expected = numbers(ref_sort(data.rows, sort))
    for limit in (1, 2, 4):
        got = numbers(walk(api, OVERVIEW, limit=limit, sort=sort))
        assert got == expected, limit


def test_stage_sort_is_in_stage_order(api: Api, data: dataset.Dataset) -> None:
    rank = ["lead", "potential", "active", "inactive", "lost"].index
    forward = walk(api, OVERVIEW, limit=3, sort="customer_stage")
    assert [(r["customer_stage"], r["number"]) for r in forward] == sorted(
        ((r["customer_stage"], r["number"]) for r in data.rows), key=lambda t: (rank(t[0]), t[1])
    )
    assert forward[0]["customer_stage"] == "lead"
    assert forward[-1]["customer_stage"] == "lost"
    backward = walk(api, OVERVIEW, limit=3, sort="-customer_stage")
    assert numbers(backward) == numbers(forward)[::-1]


def test_cursor_of_one_sort_is_422_with_another_sort(api: Api, data: dataset.Dataset) -> None:
    cursor = ok(api.get(OVERVIEW, params={"limit": 2, "sort": "name"}))["next_cursor"]
    assert cursor
    r = api.get(OVERVIEW, params={"limit": 2, "sort": "-name", "cursor": cursor})
    assert_problem(r, 422, "invalid_cursor")


def _mutate_between_pages(api: Api) -> set[int]:
    """Add and change rows; answer the numbers whose sort keys may have moved."""
    patch_partner(api, 2, name="Zulu Dairy")  # the last row of page 1 under sort=name
    patch_partner(api, 9, name="Able Honey")
    create_order(api, 3, [line("1", "999.00")], delivery_date="2027-01-01")  # also: active
    patch_partner(api, 6, customer_stage="lead")
    patch_partner(api, 1, owner_id=None, credit_limit="5.00")
    new = [
        create_partner(api, name="Aaron Apples", customer_stage="lead")["number"],
        create_partner(api, name="Juliet Jams", customer_stage="lost", credit_limit="1.00")[
            "number"
        ],
        create_partner(api, name="Kilo Kale", country="DK")["number"],
    ]
    create_order(api, new[2], [line("1", "5.00")], delivery_date="2025-01-01")
    return {1, 2, 3, 6, 9, *new}


@pytest.mark.parametrize(
    "sort",
    [
        "name",
        "-name",
        "-uninvoiced_total",
        "latest_sales_delivery_date",
        "customer_stage",
        "-owner",
        "credit_limit",
        "number",
    ],
)
def test_cursor_stays_correct_when_rows_change_between_pages(
    api: Api, data: dataset.Dataset, sort: str
) -> None:
    first = ok(api.get(OVERVIEW, params={"limit": 3, "sort": sort}))
    assert first["next_cursor"]
    touched = _mutate_between_pages(api)
    rest = walk(api, OVERVIEW, limit=3, sort=sort, cursor=first["next_cursor"])
    seen = Counter(numbers(first["items"]) + numbers(rest))
    for number in data.numbers():
        if number not in touched:
            assert seen[number] == 1, (number, seen)
    # The rest is exactly the current rows that sort after the cursor's row, in order.
    marker = first["items"][-1]
    now = walk(api, OVERVIEW, limit=500)
    ordered = ref_sort([*now, marker], sort)
    after = ordered[next(i for i, r in enumerate(ordered) if r is marker) + 1 :]
    assert numbers(rest) == numbers(after)


def test_include_total_counts_every_matching_row(api: Api, data: dataset.Dataset) -> None:
    body = ok(api.get(OVERVIEW, params={"limit": 2, "include_total": "true"}))
    assert body["total"] == 9
    assert len(body["items"]) == 2
    body = ok(
        api.get(
            OVERVIEW,
            params={"limit": 1, "include_total": "true", "tag": "Wholesale", "sort": "-name"},
        )
    )
    assert body["total"] == 3
    second = ok(
        api.get(
            OVERVIEW,
            params={
                "limit": 1,
                "include_total": "true",
                "tag": "Wholesale",
                "sort": "-name",
                "cursor": body["next_cursor"],
            },
        )
    )
    assert second["total"] == 3
    assert ok(api.get(OVERVIEW, params={"limit": 2})).get("total") is None
    body = ok(api.get(OVERVIEW, params={"include_total": "true", "country": "US"}))
    assert body == {"items": [], "next_cursor": None, "total": 0}


def test_empty_company_has_an_empty_overview(api: Api) -> None:
    create_partner(api)  # no stage
    body = ok(api.get(OVERVIEW))
    assert body["items"] == []
    assert body["next_cursor"] is None
