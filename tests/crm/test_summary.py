"""GET /api/v1/crm/summary: per stage counts and sums, plus a total row."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.conftest import Api, assert_problem
from tests.crm import dataset
from tests.helpers import (
    OVERVIEW,
    STAGES,
    SUMMARY,
    create_order,
    create_partner,
    line,
    ok,
    transition,
    walk,
)


def summary_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary computed from overview rows."""

    def total(values: list[str | None]) -> str:
        return f"{sum((Decimal(v or 0) for v in values), Decimal('0.00')):.2f}"

    def block(stage: str | None, members: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "customer_stage": stage,
            "partners": len(members),
            "uninvoiced_total": total([r["uninvoiced_total"] for r in members]),
            "debtor_balance": total([r["debtor_balance"] for r in members]),
            "credit_limit_exceeded": sum(1 for r in members if r["credit_limit_exceeded"]),
        }

    return {
        "stages": [block(s, [r for r in rows if r["customer_stage"] == s]) for s in STAGES],
        "total": block(None, rows),
    }


@pytest.fixture
def data(api: Api, session: Session) -> dataset.Dataset:
    return dataset.build(api, session)


def test_empty_company_has_five_zero_stages_and_a_zero_total(api: Api) -> None:
    create_partner(api)  # no stage: not counted
    body = ok(api.get(SUMMARY))
    zero = {
        "partners": 0,
        "uninvoiced_total": "0.00",
        "debtor_balance": "0.00",
        "credit_limit_exceeded": 0,
    }
    assert body == {
        "stages": [{"customer_stage": s, **zero} for s in STAGES],
        "total": {"customer_stage": None, **zero},
    }


def test_every_stage_is_present_in_stage_order(api: Api, data: dataset.Dataset) -> None:
    body = ok(api.get(SUMMARY))
    assert [s["customer_stage"] for s in body["stages"]] == list(STAGES)
    assert body["total"]["customer_stage"] is None


def test_per_stage_counts_and_sums(api: Api, data: dataset.Dataset) -> None:
    body = ok(api.get(SUMMARY))
    by_stage = {s["customer_stage"]: s for s in body["stages"]}
    assert by_stage["lead"] == {
        "customer_stage": "lead",
        "partners": 2,
        "uninvoiced_total": "0.00",
        "debtor_balance": "3000.00",
        "credit_limit_exceeded": 2,
    }
    assert by_stage["active"] == {
        "customer_stage": "active",
        "partners": 3,
        "uninvoiced_total": "210.00",
        "debtor_balance": "501.00",
        "credit_limit_exceeded": 1,
    }
    assert by_stage["potential"] == {
        "customer_stage": "potential",
        "partners": 2,
        "uninvoiced_total": "745.62",
        "debtor_balance": "250.00",
        "credit_limit_exceeded": 0,
    }
    assert by_stage["inactive"] == {
        "customer_stage": "inactive",
        "partners": 1,
        "uninvoiced_total": "200.00",
        "debtor_balance": "100.00",
        "credit_limit_exceeded": 0,
    }
    assert by_stage["lost"] == {
        "customer_stage": "lost",
        "partners": 1,
        "uninvoiced_total": "0.00",
        "debtor_balance": "0.00",
        "credit_limit_exceeded": 0,
    }


def test_total_row_adds_up_the_stages(api: Api, data: dataset.Dataset) -> None:
    body = ok(api.get(SUMMARY))
    assert body["total"] == {
        "customer_stage": None,
        "partners": 9,
        "uninvoiced_total": "1155.62",
        "debtor_balance": "3851.00",
        "credit_limit_exceeded": 3,
    }


def test_summary_agrees_with_the_overview(api: Api, data: dataset.Dataset) -> None:
    assert ok(api.get(SUMMARY)) == summary_of(walk(api, OVERVIEW, limit=500))


@pytest.mark.parametrize(
    "params",
    [
        {"country": "DK"},
        {"tag": ["Organic", "export"]},
        {"credit_limit_exceeded": "true"},
        {"customer_stage": ["lead", "active"]},
        {"q": "alpha"},
        {"updated_since": "2025-01-06T00:00:00Z"},
    ],
)
def test_summary_honours_the_overview_filters(
    api: Api, data: dataset.Dataset, params: dict[str, Any]
) -> None:
    assert ok(api.get(SUMMARY, params=params)) == summary_of(
        walk(api, OVERVIEW, limit=500, **params)
    )


def test_summary_follows_order_changes(api: Api) -> None:
    p = create_partner(api, customer_stage="lead")
    order = create_order(api, p["number"], [line("2", "10.00")])
    body = ok(api.get(SUMMARY))
    assert body["stages"][0]["partners"] == 0  # the order made it active
    assert body["stages"][2]["partners"] == 1
    assert body["stages"][2]["uninvoiced_total"] == "20.00"
    ok(transition(api, order["number"], "invoice"))
    body = ok(api.get(SUMMARY))
    assert body["stages"][2]["uninvoiced_total"] == "0.00"
    assert body["total"]["uninvoiced_total"] == "0.00"


def test_summary_bad_filter_is_422(api: Api) -> None:
    assert_problem(api.get(SUMMARY, params={"customer_stage": "vip"}), 422)
