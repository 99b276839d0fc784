"""POST /api/v1/accounting/balances: all or nothing, unique refs, unmatched refs reported, and
an older ``as_of`` never overwrites a newer balance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.accounting.fake_economic import FakeEconomic, customer
from tests.accounting.helpers import (
    BALANCES,
    balances,
    connect,
    create_partner,
    get_partner,
    ok,
    sync_ok,
)
from tests.conftest import Api, assert_problem

T0 = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)


def at(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def parsed(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def state(api: Api, number: int) -> tuple[Any, ...]:
    """(debtor_balance, debtor_balance_synced_at as a datetime, credit_limit_exceeded)"""
    p = get_partner(api, number)
    synced = p["debtor_balance_synced_at"]
    assert synced is None or synced.endswith("Z")
    return (p["debtor_balance"], parsed(synced), p["credit_limit_exceeded"])


def push(api: Api, items: list[tuple[str, Any]], as_of: datetime = T0) -> Any:
    body = {"balances": [{"accounting_ref": r, "balance": b} for r, b in items], "as_of": at(as_of)}
    return api.post(BALANCES, json=body)


@pytest.fixture
def three(api: Api) -> list[int]:
    return [
        create_partner(api, name=f"P{ref}", accounting_ref=ref, credit_limit="500.00")["number"]
        for ref in ("A-1", "A-2", "A-3")
    ]


def test_a_push_stores_balances_and_reports_unmatched_refs(api: Api, three: list[int]) -> None:
    r = push(api, [("A-1", "100.50"), ("A-2", 600), ("A-3", -20.1), ("NOPE", "1"), ("ZZ", "2")])
    body = ok(r)
    assert body == {"updated": 3, "unchanged": 0, "unmatched": 2, "unmatched_refs": ["NOPE", "ZZ"]}
    assert state(api, three[0]) == ("100.50", T0, False)
    assert state(api, three[1]) == ("600.00", T0, True)
    assert state(api, three[2]) == ("-20.10", T0, False)


def test_the_same_push_twice_changes_nothing(api: Api, three: list[int]) -> None:
    ok(push(api, [("A-1", "100.50"), ("A-2", "7")]))
    before = balances(api, three)
    body = ok(push(api, [("A-1", "100.50"), ("A-2", "7")]))
    assert (body["updated"], body["unchanged"], body["unmatched"]) == (0, 2, 0)
    assert balances(api, three) == before


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"accounting_ref": "A-2", "balance": "1.005"}, "balance"),
        ({"accounting_ref": "A-2", "balance": "abc"}, "balance"),
        ({"accounting_ref": "A-2", "balance": None}, "balance"),
        ({"accounting_ref": "A-2", "balance": "NaN"}, "balance"),
        ({"accounting_ref": "A-2", "balance": "100000000000000.00"}, "balance"),
        ({"accounting_ref": "A-2"}, "balance"),
        ({"accounting_ref": "", "balance": "1"}, "accounting_ref"),
        ({"accounting_ref": "x" * 51, "balance": "1"}, "accounting_ref"),
        ({"balance": "1"}, "accounting_ref"),
        ({"accounting_ref": "A-2", "balance": "1", "debtor_balance": "1"}, "debtor_balance"),
    ],
)
def test_one_bad_item_rejects_the_whole_push(
    api: Api, three: list[int], bad: dict[str, Any], field: str
) -> None:
    before = balances(api, three)
    body = {
        "balances": [{"accounting_ref": "A-1", "balance": "10.00"}, bad],
        "as_of": at(T0),
    }
    problem = assert_problem(api.post(BALANCES, json=body), 422)
    assert any(field in e["loc"] for e in problem["errors"]), problem
    assert any(1 in e["loc"] for e in problem["errors"]), problem  # names the bad item
    assert balances(api, three) == before


def test_duplicate_refs_are_422_and_store_nothing(api: Api, three: list[int]) -> None:
    before = balances(api, three)
    problem = assert_problem(push(api, [("A-1", "1"), ("A-2", "2"), ("A-1", "3")]), 422)
    assert "A-1" in str(problem)
    assert balances(api, three) == before


@pytest.mark.parametrize(
    "body",
    [
        {"balances": [], "as_of": at(T0)},
        {"balances": [{"accounting_ref": "A-1", "balance": "1"}]},
        {"balances": [{"accounting_ref": "A-1", "balance": "1"}], "as_of": "2025-01-10T12:00:00"},
        {"balances": [{"accounting_ref": "A-1", "balance": "1"}], "as_of": "yesterday"},
        {"balances": "A-1", "as_of": at(T0)},
        {"balances": [{"accounting_ref": "A-1", "balance": "1"}], "as_of": at(T0), "x": 1},
    ],
    ids=["empty", "no-as-of", "naive-as-of", "bad-as-of", "not-a-list", "unknown-field"],
)
def test_bad_push_bodies_are_422(api: Api, three: list[int], body: dict[str, Any]) -> None:
    before = balances(api, three)
    assert_problem(api.post(BALANCES, json=body), 422)
    assert balances(api, three) == before


def test_at_most_10000_items(api: Api, three: list[int]) -> None:
    many = [(f"R{n}", "1") for n in range(10_001)]
    assert_problem(push(api, many), 422)
    body = ok(push(api, many[:10_000]))
    assert body["unmatched"] == 10_000
    assert body["unmatched_refs"][:2] == ["R0", "R1"]


def test_an_older_as_of_never_overwrites_a_newer_balance(api: Api, three: list[int]) -> None:
    ok(push(api, [("A-1", "300.00")], as_of=T0))
    body = ok(push(api, [("A-1", "900.00"), ("A-2", "5.00")], as_of=T0 - timedelta(hours=1)))
    assert (body["updated"], body["unchanged"]) == (1, 1)
    assert state(api, three[0]) == ("300.00", T0, False)
    assert get_partner(api, three[1])["debtor_balance"] == "5.00"

    ok(push(api, [("A-1", "900.00")], as_of=T0 + timedelta(minutes=1)))
    assert state(api, three[0]) == ("900.00", T0 + timedelta(minutes=1), True)


def test_an_as_of_in_another_zone_is_compared_in_utc(api: Api, three: list[int]) -> None:
    ok(push(api, [("A-1", "300.00")], as_of=T0))
    # 13:30+02:00 is 11:30Z: older than the stored 12:00Z.
    r = api.post(
        BALANCES,
        json={
            "balances": [{"accounting_ref": "A-1", "balance": "1.00"}],
            "as_of": "2025-01-10T13:30:00+02:00",
        },
    )
    assert ok(r)["unchanged"] == 1
    assert get_partner(api, three[0])["debtor_balance"] == "300.00"


def test_a_sync_after_a_push_overwrites_it_and_an_old_push_after_a_sync_does_not(
    api: Api, three: list[int], economic: FakeEconomic
) -> None:
    connect(api, economic)
    ok(push(api, [("A-1", "300.00")], as_of=T0))
    economic.set_customers([{**customer(1, "2.00"), "customerNumber": 1}])
    # e-conomic numbers customers; these partners use other refs, so nothing matches...
    run = sync_ok(api)
    assert run["unmatched"] == 1
    # ...until a partner carries the customer number.
    number = create_partner(api, name="Numbered", accounting_ref="1")["number"]
    sync_ok(api)
    synced = get_partner(api, number)
    assert synced["debtor_balance"] == "2.00"
    body = ok(push(api, [("1", "999.00")], as_of=T0))
    assert body["unchanged"] == 1
    assert get_partner(api, number)["debtor_balance"] == "2.00"


def test_a_push_with_an_idempotency_key_replays_the_first_answer(
    api: Api, three: list[int]
) -> None:
    """api.md: POST routes that bulk-change accept Idempotency-Key; a repeat with the same key
    and body replays the first response (status and body)."""
    body = {"balances": [{"accounting_ref": "A-1", "balance": "10.00"}], "as_of": at(T0)}
    key = {"Idempotency-Key": "push-2025-01-10"}
    first = api.post(BALANCES, json=body, headers=key)
    assert ok(first)["updated"] == 1
    again = api.post(BALANCES, json=body, headers=key)
    assert again.status_code == first.status_code
    assert again.json() == first.json()


def test_an_idempotency_key_reused_with_another_body_is_422(api: Api, three: list[int]) -> None:
    key = {"Idempotency-Key": "push-reused"}
    body = {"balances": [{"accounting_ref": "A-1", "balance": "10.00"}], "as_of": at(T0)}
    ok(api.post(BALANCES, json=body, headers=key))
    other = {"balances": [{"accounting_ref": "A-1", "balance": "20.00"}], "as_of": at(T0)}
    assert_problem(api.post(BALANCES, json=other, headers=key), 422, "idempotency_key_reused")
    assert get_partner(api, three[0])["debtor_balance"] == "10.00"


def test_an_as_of_in_the_future_is_422_and_stores_nothing(api: Api, three: list[int]) -> None:
    before = state(api, three[0])
    future = datetime.now(UTC) + timedelta(hours=1)
    r = api.post(
        "/api/v1/accounting/balances",
        json={"balances": [{"accounting_ref": "A-1", "balance": "5.00"}], "as_of": at(future)},
    )
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"][0]["loc"] == ["body", "as_of"]
    assert state(api, three[0]) == before
