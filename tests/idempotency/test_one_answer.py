"""Every keyed route answers once: a replay is the first answer, byte for byte, with the same
status and headers (plus Idempotent-Replayed), whatever the route; a dry run honours the key."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, assert_problem

PARTNER = {"name": "Nordic Deli A/S", "country": "DK", "customer_stage": "lead"}

# (path, body) of every route that takes Idempotency-Key; bodies that need data made first
# are filled in by the test.
KEYED = [
    ("/api/v1/partners", PARTNER),
    ("/api/v1/tags", {"name": "Organic"}),
    ("/api/v1/users", {"name": "Ida", "email": "ida@example.com"}),
    ("/api/v1/sales-orders", None),
    ("/api/v1/partners/bulk/customer-stage", {"customer_stage": "potential", "numbers": [1]}),
    (
        "/api/v1/partners/bulk/customer-stage",
        {"customer_stage": "lost", "numbers": [1], "dry_run": True},
    ),
    (
        "/api/v1/accounting/balances",
        {
            "balances": [{"accounting_ref": "A1", "balance": "10.00"}],
            "as_of": "2026-01-01T00:00:00Z",
        },
    ),
]


def _order_body(api: Api) -> dict[str, Any]:
    return {
        "partner_number": 1,
        "lines": [{"description": "Goods", "quantity": "1", "unit_price": "100.00"}],
    }


@pytest.mark.parametrize(
    ("path", "body"), KEYED, ids=[f"{p} {i}" for i, (p, _) in enumerate(KEYED)]
)
def test_a_replay_is_the_first_answer_byte_for_byte(
    api: Api, path: str, body: dict[str, Any] | None
) -> None:
    assert api.post("/api/v1/partners", json={**PARTNER, "accounting_ref": "A1"}).status_code == 201
    body = body or _order_body(api)
    headers = {"Idempotency-Key": "the-one-key"}
    first = api.post(path, json=body, headers=headers)
    assert first.status_code in (200, 201), first.text
    again = api.post(path, json=body, headers=headers)
    assert again.status_code == first.status_code
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    for name in ("Location", "ETag", "Content-Type"):
        assert again.headers.get(name) == first.headers.get(name), name
    other = api.post(path, json={**body, "unexpected_but_different": 1}, headers=headers)
    assert other.status_code == 422  # never executed: the key belongs to another body


def test_a_dry_run_honours_the_key(api: Api) -> None:
    for _ in range(2):
        assert api.post("/api/v1/partners", json=PARTNER).status_code == 201
    body = {"customer_stage": "lost", "numbers": [1, 2], "dry_run": True}
    headers = {"Idempotency-Key": "dry-1"}
    first = api.post("/api/v1/partners/bulk/customer-stage", json=body, headers=headers)
    assert first.status_code == 200
    assert first.json()["changed"] == 2
    # A real change in between: a fresh dry run would now count differently ...
    real = {"customer_stage": "lost", "numbers": [1]}
    assert api.post("/api/v1/partners/bulk/customer-stage", json=real).status_code == 200
    again = api.post("/api/v1/partners/bulk/customer-stage", json=body, headers=headers)
    # ... but the key replays the first answer.
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    reused = api.post(
        "/api/v1/partners/bulk/customer-stage",
        json={**body, "customer_stage": "lead"},
        headers=headers,
    )
    assert_problem(reused, 422, "idempotency_key_reused")
    history = api.get("/api/v1/partners/2/stage-history").json()["items"]
    assert [h["stage"] for h in history] == ["lead"]  # the dry run changed nothing


def test_create_etags_are_the_etags_of_a_later_get(api: Api) -> None:
    created = api.post("/api/v1/partners", json=PARTNER)
    assert api.get("/api/v1/partners/1").headers["ETag"] == created.headers["ETag"]
    tag = api.post("/api/v1/tags", json={"name": "Organic"})
    assert api.get("/api/v1/tags/Organic").headers["ETag"] == tag.headers["ETag"]
    order = api.post("/api/v1/sales-orders", json=_order_body(api))
    assert api.get(order.headers["Location"]).headers["ETag"] == order.headers["ETag"]


def test_an_order_etag_changes_when_its_partners_credit_state_does(api: Api) -> None:
    assert (
        api.post("/api/v1/partners", json={**PARTNER, "credit_limit": "50.00"}).status_code == 201
    )
    order = api.post("/api/v1/sales-orders", json=_order_body(api))
    before = api.get(order.headers["Location"])
    assert before.json()["credit_warning"] is False
    api.patch("/api/v1/partners/1", json={"credit_limit": "10.00", "accounting_ref": "A1"})
    pushed = api.post(
        "/api/v1/accounting/balances",
        json={
            "balances": [{"accounting_ref": "A1", "balance": "20.00"}],
            "as_of": "2026-01-01T00:00:00Z",
        },
    )
    assert pushed.status_code == 200, pushed.text
    after = api.get(order.headers["Location"], headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200  # not a stale 304
    assert after.json()["credit_warning"] is True


def test_a_tag_name_that_lowercases_longer_is_stored(api: Api) -> None:
    """ "İ".lower() is two characters: a 50-character name has a 100-character key."""
    r = api.post("/api/v1/tags", json={"name": "İ" * 50})
    assert r.status_code == 201, r.text
    assert_problem(api.post("/api/v1/tags", json={"name": "İ" * 50}), 409, "tag_exists")
