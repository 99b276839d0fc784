"""POST /api/v1/partners/bulk/customer-stage, and Idempotency-Key on the create/bulk routes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, assert_problem
from tests.helpers import (
    BULK,
    ORDERS,
    PARTNERS,
    create_order,
    create_partner,
    create_tag,
    get_partner,
    line,
    ok,
    patch_partner,
    stage_history,
    walk,
)


def _stages(api: Api) -> dict[int, str | None]:
    return {p["number"]: p["customer_stage"] for p in walk(api, PARTNERS, limit=500)}


def _histories(api: Api) -> dict[int, list[dict[str, Any]]]:
    return {n: stage_history(api, n) for n in _stages(api)}


@pytest.fixture
def four(api: Api) -> list[dict[str, Any]]:
    """1: lead (DK, Organic), 2: no stage (SE), 3: active (DK), 4: lost (DE, Organic)."""
    create_tag(api, "Organic")
    return [
        create_partner(api, name="One", customer_stage="lead", tags=["Organic"]),
        create_partner(api, name="Two", country="SE"),
        create_partner(api, name="Three", customer_stage="active"),
        create_partner(api, name="Four", country="DE", customer_stage="lost", tags=["Organic"]),
    ]


# --- by numbers ------------------------------------------------------------------------------


def test_by_numbers_sets_the_stage_and_reports_each_change(api: Api, four: Any) -> None:
    body = ok(api.post(BULK, json={"customer_stage": "active", "numbers": [3, 1, 2]}))
    assert body == {
        "customer_stage": "active",
        "dry_run": False,
        "matched": 3,
        "changed": 2,
        "unchanged": 1,
        "changes": [
            {"number": 1, "previous_stage": "lead"},
            {"number": 2, "previous_stage": None},
        ],
        "changes_truncated": False,
    }
    assert _stages(api) == {1: "active", 2: "active", 3: "active", 4: "lost"}


def test_history_rows_with_reason_bulk_are_written_once_per_real_change(
    api: Api, four: Any
) -> None:
    before = _histories(api)
    ok(api.post(BULK, json={"customer_stage": "active", "numbers": [1, 2, 3]}))
    after = _histories(api)
    me = ok(api.get("/api/v1/me"))["user"]
    for number, previous in ((1, "lead"), (2, None)):
        assert len(after[number]) == len(before[number]) + 1
        newest = after[number][0]
        assert newest["reason"] == "bulk"
        assert newest["previous_stage"] == previous
        assert newest["stage"] == "active"
        assert newest["changed_by"] == {"id": me["id"], "name": me["name"]}
        assert after[number][1:] == before[number]
    assert after[3] == before[3]  # already active: nothing recorded
    assert after[4] == before[4]  # not selected
    # Running it again changes nothing and records nothing.
    again = ok(api.post(BULK, json={"customer_stage": "active", "numbers": [1, 2, 3]}))
    assert (again["matched"], again["changed"], again["unchanged"], again["changes"]) == (
        3,
        0,
        3,
        [],
    )
    assert _histories(api) == after


def test_unknown_numbers_are_422_partners_not_found_and_nothing_changes(
    api: Api, four: Any
) -> None:
    stages, histories = _stages(api), _histories(api)
    r = api.post(BULK, json={"customer_stage": "inactive", "numbers": [1, 99, 2, 77]})
    body = assert_problem(r, 422, "partners_not_found")
    assert body["missing_numbers"] == [77, 99]
    assert _stages(api) == stages
    assert _histories(api) == histories


def test_a_deleted_partners_number_is_not_found(api: Api, four: Any) -> None:
    assert api.delete(f"{PARTNERS}/2").status_code == 204
    r = api.post(BULK, json={"customer_stage": "lead", "numbers": [1, 2]})
    assert assert_problem(r, 422, "partners_not_found")["missing_numbers"] == [2]
    assert get_partner(api, 1)["customer_stage"] == "lead"


def test_1000_numbers_are_accepted_and_1001_are_422(api: Api, four: Any) -> None:
    r = api.post(BULK, json={"customer_stage": "lead", "numbers": list(range(1, 1001))})
    body = assert_problem(r, 422, "partners_not_found")
    assert body["missing_numbers"] == list(range(5, 1001))
    r = api.post(BULK, json={"customer_stage": "lead", "numbers": list(range(1, 1002))})
    assert assert_problem(r, 422)["code"] != "partners_not_found"
    assert _stages(api) == {1: "lead", 2: None, 3: "active", 4: "lost"}


@pytest.mark.parametrize(
    "body",
    [
        {"customer_stage": "lead"},
        {"customer_stage": "lead", "numbers": [1], "filter": {}},
        {"customer_stage": "lead", "numbers": []},
        {"customer_stage": "lead", "numbers": None, "filter": None},
        {"customer_stage": "vip", "numbers": [1]},
        {"customer_stage": None, "numbers": [1]},
        {"customer_stage": "lead", "numbers": [0]},
        {"customer_stage": "lead", "filter": {"colour": "red"}},
        {"customer_stage": "lead", "filter": {"updated_since": "2025-01-01T00:00:00"}},
        {"customer_stage": "lead", "numbers": [1], "changed": 3},
    ],
)
def test_bad_bodies_are_422_and_change_nothing(api: Api, four: Any, body: dict[str, Any]) -> None:
    stages = _stages(api)
    assert_problem(api.post(BULK, json=body), 422)
    assert _stages(api) == stages


# --- by filter -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flt", "matched", "changes"),
    [
        ({"customer_stage": ["lead", "lost"]}, [1, 4], [(1, "lead"), (4, "lost")]),
        ({"country": "DK"}, [1, 3], [(1, "lead"), (3, "active")]),
        ({"tag": ["organic"]}, [1, 4], [(1, "lead"), (4, "lost")]),
        ({"q": "t"}, [2, 3], [(2, None), (3, "active")]),
        ({}, [1, 2, 3, 4], [(1, "lead"), (2, None), (3, "active"), (4, "lost")]),
        ({"country": "DE", "tag": ["Organic"]}, [4], [(4, "lost")]),
    ],
)
def test_by_filter_selects_like_the_partner_list(
    api: Api, four: Any, flt: dict[str, Any], matched: list[int], changes: list[Any]
) -> None:
    listed = [p["number"] for p in walk(api, PARTNERS, limit=500, **flt)]
    assert listed == matched
    body = ok(api.post(BULK, json={"customer_stage": "inactive", "filter": flt}))
    assert body["matched"] == len(matched)
    assert body["changed"] == len(changes)
    assert body["unchanged"] == len(matched) - len(changes)
    assert [(c["number"], c["previous_stage"]) for c in body["changes"]] == changes
    stages = _stages(api)
    for n in (1, 2, 3, 4):
        if n in matched:
            assert stages[n] == "inactive"
        else:
            assert stages[n] != "inactive"


def test_a_filter_that_matches_nothing_is_a_clean_200(api: Api, four: Any) -> None:
    histories = _histories(api)
    r = api.post(BULK, json={"customer_stage": "lead", "filter": {"country": "US"}})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "customer_stage": "lead",
        "dry_run": False,
        "matched": 0,
        "changed": 0,
        "unchanged": 0,
        "changes": [],
        "changes_truncated": False,
    }
    assert _histories(api) == histories


def test_a_filter_on_an_empty_company_is_a_clean_200(api: Api) -> None:
    r = api.post(BULK, json={"customer_stage": "lead", "filter": {}})
    assert r.status_code == 200, r.text
    assert r.json()["matched"] == 0


# --- dry run ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "selector", [{"numbers": [1, 2, 3]}, {"filter": {}}, {"filter": {"tag": ["Organic"]}}]
)
def test_dry_run_changes_nothing_but_reports_the_same_counts(
    api: Api, four: Any, selector: dict[str, Any]
) -> None:
    stages, histories = _stages(api), _histories(api)
    partners = walk(api, PARTNERS, limit=500)
    dry = ok(api.post(BULK, json={"customer_stage": "lead", "dry_run": True, **selector}))
    assert dry["dry_run"] is True
    assert _stages(api) == stages
    assert _histories(api) == histories
    assert walk(api, PARTNERS, limit=500) == partners  # not even updated_at moved
    real = ok(api.post(BULK, json={"customer_stage": "lead", **selector}))
    assert real["dry_run"] is False
    assert {**dry, "dry_run": False} == real


def test_dry_run_with_unknown_numbers_is_422_too(api: Api, four: Any) -> None:
    r = api.post(BULK, json={"customer_stage": "lead", "numbers": [1, 50], "dry_run": True})
    assert assert_problem(r, 422, "partners_not_found")["missing_numbers"] == [50]


# --- Idempotency-Key on the bulk route -------------------------------------------------------


def test_same_key_and_body_replays_the_first_answer_without_running_again(
    api: Api, four: Any
) -> None:
    body = {"customer_stage": "potential", "numbers": [1, 2]}
    headers = {"Idempotency-Key": "bulk-123"}
    first = api.post(BULK, json=body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.headers.get("idempotent-replayed") != "true"
    assert first.json()["changed"] == 2
    # Someone changes partner 1 back; a replay must not set it again.
    patch_partner(api, 1, customer_stage="lead")
    histories = _histories(api)
    again = api.post(BULK, json=body, headers=headers)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert get_partner(api, 1)["customer_stage"] == "lead"
    assert _histories(api) == histories


def test_same_key_with_another_body_is_422_idempotency_key_reused(api: Api, four: Any) -> None:
    headers = {"Idempotency-Key": "bulk-456"}
    ok(api.post(BULK, json={"customer_stage": "potential", "numbers": [1]}, headers=headers))
    stages, histories = _stages(api), _histories(api)
    for other in (
        {"customer_stage": "lost", "numbers": [1]},
        {"customer_stage": "potential", "numbers": [1, 2]},
        {"customer_stage": "potential", "numbers": [1], "dry_run": True},
    ):
        r = api.post(BULK, json=other, headers=headers)
        assert_problem(r, 422, "idempotency_key_reused")
    assert _stages(api) == stages
    assert _histories(api) == histories


def test_idempotency_keys_are_per_company(api: Api, other_api: Api, four: Any) -> None:
    create_partner(other_api, name="Theirs", customer_stage="lead")
    headers = {"Idempotency-Key": "shared-key"}
    body = {"customer_stage": "lost", "numbers": [1]}
    ours = api.post(BULK, json=body, headers=headers)
    assert ours.status_code == 200, ours.text
    theirs = other_api.post(BULK, json=body, headers=headers)
    assert theirs.status_code == 200, theirs.text
    assert theirs.headers.get("idempotent-replayed") != "true"
    assert theirs.json()["changes"] == [{"number": 1, "previous_stage": "lead"}]
    assert get_partner(other_api, 1)["customer_stage"] == "lost"
    # The other company's use of the key did not touch ours, nor is ours replayed to them.
    assert get_partner(api, 1)["customer_stage"] == "lost"
    different = other_api.post(
        BULK, json={"customer_stage": "lead", "numbers": [1]}, headers={"Idempotency-Key": "k2"}
    )
    assert different.status_code == 200
    again = api.post(BULK, json=body, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == ours.json()


# --- Idempotency-Key on the create routes ----------------------------------------------------


def test_repeated_partner_create_with_a_key_creates_nothing_new(api: Api) -> None:
    headers = {"Idempotency-Key": "partner-1"}
    body = {"name": "Once Only", "country": "DK", "customer_stage": "lead"}
    first = api.post(PARTNERS, json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = api.post(PARTNERS, json=body, headers=headers)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert [p["number"] for p in walk(api, PARTNERS, limit=500)] == [first.json()["number"]]
    assert len(stage_history(api, first.json()["number"])) == 1
    r = api.post(PARTNERS, json={**body, "name": "Twice"}, headers=headers)
    assert_problem(r, 422, "idempotency_key_reused")
    assert len(walk(api, PARTNERS, limit=500)) == 1


def test_repeated_sales_order_create_with_a_key_creates_nothing_new(api: Api) -> None:
    p = create_partner(api, customer_stage="lead")
    headers = {"Idempotency-Key": "order-1"}
    body = {"partner_number": p["number"], "lines": [line("2", "10.00")]}
    first = api.post(ORDERS, json=body, headers=headers)
    assert first.status_code == 201, first.text
    partner_after_first = get_partner(api, p["number"])
    history_after_first = stage_history(api, p["number"])
    again = api.post(ORDERS, json=body, headers=headers)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert [o["number"] for o in walk(api, ORDERS, limit=500)] == [first.json()["number"]]
    assert get_partner(api, p["number"]) == partner_after_first
    assert partner_after_first["uninvoiced_total"] == "20.00"
    assert stage_history(api, p["number"]) == history_after_first
    r = api.post(ORDERS, json={**body, "reference": "x"}, headers=headers)
    assert_problem(r, 422, "idempotency_key_reused")
    assert len(walk(api, ORDERS, limit=500)) == 1
    # A new key is a new order.
    create_order(api, p["number"])
    assert len(walk(api, ORDERS, limit=500)) == 2


def test_a_failed_keyed_request_is_not_stored(api: Api) -> None:
    headers = {"Idempotency-Key": "order-2"}
    body = {"partner_number": 1, "lines": [line()]}
    assert_problem(api.post(ORDERS, json=body, headers=headers), 422, "unknown_partner")
    create_partner(api)
    r = api.post(ORDERS, json=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.headers.get("idempotent-replayed") != "true"
