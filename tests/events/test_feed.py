"""The event feed: what each change writes, the cursor, retention, isolation, long polling."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.events import service as event_service
from app.models import Event, Partner
from app.partners import events as partner_events
from app.partners import repository as partner_repository
from app.sales_orders.service import check_partner_totals
from tests.conftest import Api, assert_problem
from tests.helpers import (
    create_order,
    create_partner,
    create_tag,
    create_user,
    get_order,
    get_partner,
    line,
    transition,
)

EVENTS = "/api/v1/events"


def drain(api: Api, cursor: str | None = None, **params: Any) -> tuple[list[dict[str, Any]], str]:
    """Every event after ``cursor``, page by page; and the cursor to resume from."""
    items: list[dict[str, Any]] = []
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = api.get(EVENTS, params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["next_cursor"]
        items.extend(body["items"])
        if body["next_cursor"] == cursor or not body["items"]:
            return items, body["next_cursor"]
        cursor = body["next_cursor"]


def types(items: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in items]


def test_an_empty_feed_answers_a_cursor_that_is_never_null(api: Api) -> None:
    body = api.get(EVENTS).json()
    assert body["items"] == []
    assert isinstance(body["next_cursor"], str)
    assert body["next_cursor"]
    again = api.get(EVENTS, params={"cursor": body["next_cursor"]}).json()
    assert again == {"items": [], "next_cursor": again["next_cursor"]}


def test_creating_a_partner_writes_created_and_stage_changed(api: Api) -> None:
    partner = create_partner(api, customer_stage="lead")
    items, _ = drain(api)
    assert sorted(types(items)) == ["partner.created", "partner.stage_changed"]
    created = next(e for e in items if e["type"] == "partner.created")
    assert created["data"] == get_partner(api, partner["number"])
    assert created["company"] == api.tenant.company.slug
    assert created["id"].startswith("evt_")
    assert created["occurred_at"].endswith("Z")
    changed = next(e for e in items if e["type"] == "partner.stage_changed")
    assert changed["data"]["number"] == partner["number"]
    assert changed["data"]["previous_stage"] is None
    assert changed["data"]["stage"] == "lead"
    assert changed["data"]["reason"] == "manual"
    assert changed["data"]["changed_by"]["id"] == str(api.tenant.admin.id)


def test_patch_writes_one_updated_with_the_partner_as_read_and_resume_sees_only_new(
    api: Api,
) -> None:
    create_tag(api, "Organic")
    partner = create_partner(api)
    _, cursor = drain(api)
    r = api.patch(
        f"/api/v1/partners/{partner['number']}", json={"name": "Renamed", "tags": ["Organic"]}
    )
    assert r.status_code == 200, r.text
    items, cursor2 = drain(api, cursor)
    assert types(items) == ["partner.updated"]
    assert items[0]["data"] == get_partner(api, partner["number"])
    assert items[0]["data"]["name"] == "Renamed"
    assert drain(api, cursor2)[0] == []


def test_a_patch_that_changes_nothing_writes_no_event(api: Api) -> None:
    partner = create_partner(api, name="Same")
    _, cursor = drain(api)
    assert api.patch(f"/api/v1/partners/{partner['number']}", json={}).status_code == 200
    assert drain(api, cursor)[0] == []


def test_delete_writes_deleted(api: Api) -> None:
    partner = create_partner(api)
    _, cursor = drain(api)
    assert api.delete(f"/api/v1/partners/{partner['number']}").status_code == 204
    items, _ = drain(api, cursor)
    assert items == [{**items[0], "type": "partner.deleted", "data": {"number": partner["number"]}}]


def test_bulk_writes_a_stage_change_and_an_update_per_partner_changed(api: Api) -> None:
    for _ in range(3):
        create_partner(api, customer_stage="lead")
    create_partner(api, customer_stage="active")
    _, cursor = drain(api)
    r = api.post(
        "/api/v1/partners/bulk/customer-stage",
        json={"filter": {}, "customer_stage": "active"},
    )
    assert r.status_code == 200, r.text
    items, _ = drain(api, cursor)
    changed = [e["data"] for e in items if e["type"] == "partner.stage_changed"]
    assert sorted(c["number"] for c in changed) == [1, 2, 3]
    assert {(c["previous_stage"], c["stage"], c["reason"]) for c in changed} == {
        ("lead", "active", "bulk")
    }
    updated = [e["data"] for e in items if e["type"] == "partner.updated"]
    assert sorted(p["number"] for p in updated) == [1, 2, 3]
    assert all(p["customer_stage"] == "active" for p in updated)
    assert len(items) == 6


@pytest.mark.postgres_only
def test_many_partners_events_are_rendered_in_chunks_without_a_gap(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL renders a bulk change's events a chunk of partners per statement: numbered
    on from chunk to chunk, in partner number order, each partner once."""
    monkeypatch.setattr(partner_events, "IN_DATABASE_FROM", 1)
    monkeypatch.setattr(partner_events, "STAGE_IN_DATABASE_FROM", 1)
    monkeypatch.setattr(partner_repository, "EVENT_CHUNK", 2)
    numbers = [create_partner(api, customer_stage="lead")["number"] for _ in range(5)]
    _, cursor = drain(api)
    r = api.post(
        "/api/v1/partners/bulk/customer-stage",
        json={"filter": {}, "customer_stage": "potential"},
    )
    assert r.status_code == 200, r.text
    items, _ = drain(api, cursor)
    for kind in ("partner.stage_changed", "partner.updated"):
        assert [e["data"]["number"] for e in items if e["type"] == kind] == numbers
    for number in numbers:
        (read,) = (
            e["data"]
            for e in items
            if e["type"] == "partner.updated" and e["data"]["number"] == number
        )
        assert read == get_partner(api, number)
    assert len(items) == 10


def test_a_dry_run_writes_nothing(api: Api) -> None:
    create_partner(api, customer_stage="lead")
    _, cursor = drain(api)
    r = api.post(
        "/api/v1/partners/bulk/customer-stage",
        json={"filter": {}, "customer_stage": "active", "dry_run": True},
    )
    assert r.status_code == 200, r.text
    assert drain(api, cursor)[0] == []


def test_orders_write_their_events_and_the_partner_update(api: Api) -> None:
    partner = create_partner(api, customer_stage="lead")
    _, cursor = drain(api)
    order = create_order(api, partner["number"], lines=[line(quantity="2", unit_price="10.00")])
    items, cursor = drain(api, cursor)
    assert sorted(types(items)) == [
        "partner.stage_changed",
        "partner.updated",
        "sales_order.created",
    ]
    created = next(e for e in items if e["type"] == "sales_order.created")
    assert created["data"] == get_order(api, order["number"])
    updated = next(e for e in items if e["type"] == "partner.updated")
    assert updated["data"] == get_partner(api, partner["number"])
    assert updated["data"]["uninvoiced_total"] == "20.00"

    for action, kind in (("deliver", "delivered"), ("invoice", "invoiced")):
        assert transition(api, order["number"], action).status_code == 200
        items, cursor = drain(api, cursor)
        assert f"sales_order.{kind}" in types(items)
    assert get_partner(api, partner["number"])["uninvoiced_total"] == "0.00"


def test_credit_flips_carry_the_overview_row(api: Api, session: Session) -> None:
    partner = create_partner(api, customer_stage="active", credit_limit="100.00")
    push = {
        "balances": [{"accounting_ref": "C1", "balance": "500.00"}],
        "as_of": (utcnow() - timedelta(minutes=1)).isoformat(),
    }
    assert (
        api.patch(
            f"/api/v1/partners/{partner['number']}", json={"accounting_ref": "C1"}
        ).status_code
        == 200
    )
    _, cursor = drain(api)
    r = api.post("/api/v1/accounting/balances", json=push)
    assert r.status_code == 200, r.text
    items, cursor = drain(api, cursor)
    assert sorted(types(items)) == ["partner.credit_limit_exceeded", "partner.updated"]
    row = next(e for e in items if e["type"] == "partner.credit_limit_exceeded")["data"]
    overview = api.get("/api/v1/crm/overview").json()["items"]
    assert row == overview[0]
    assert row["credit_limit_exceeded"] is True

    r = api.patch(f"/api/v1/partners/{partner['number']}", json={"credit_limit": "1000.00"})
    assert r.status_code == 200, r.text
    items, _ = drain(api, cursor)
    assert sorted(types(items)) == ["partner.credit_limit_cleared", "partner.updated"]


def test_type_filter_and_limit_page_through_in_order(api: Api) -> None:
    for _ in range(5):
        create_partner(api, customer_stage="lead")
    page1 = api.get(EVENTS, params={"type": "partner.created", "limit": 2}).json()
    assert [e["data"]["number"] for e in page1["items"]] == [1, 2]
    rest, _ = drain(api, page1["next_cursor"], type="partner.created", limit=2)
    assert [e["data"]["number"] for e in rest] == [3, 4, 5]
    everything, _ = drain(api, limit=3)
    assert len(everything) == 10  # created and stage_changed each
    assert len({e["id"] for e in everything}) == 10


def test_unknown_type_and_webhook_test_are_422(api: Api) -> None:
    for value in ("partner.nope", "webhook.test"):
        body = assert_problem(api.get(EVENTS, params={"type": value}), 422)
        assert body["errors"][0]["loc"][:2] == ["query", "type"]


@pytest.mark.parametrize("limit", ["0", "1001"])
def test_limit_out_of_range_is_422(api: Api, limit: str) -> None:
    assert_problem(api.get(EVENTS, params={"limit": limit}), 422)


def test_a_changed_character_or_another_companys_cursor_is_422(api: Api, other_api: Api) -> None:
    create_partner(api)
    cursor = api.get(EVENTS).json()["next_cursor"]
    flipped = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")
    for bad in (flipped, "x" + cursor, "garbage", cursor.split(".")[0]):
        assert_problem(api.get(EVENTS, params={"cursor": bad}), 422, "invalid_cursor")
    body = assert_problem(other_api.get(EVENTS, params={"cursor": cursor}), 422, "invalid_cursor")
    assert body["errors"][0]["loc"] == ["query", "cursor"]


def test_companies_never_see_each_others_events(api: Api, other_api: Api) -> None:
    create_partner(api, name="Mine")
    create_partner(other_api, name="Theirs")
    mine, _ = drain(api)
    theirs, _ = drain(other_api)
    assert {e["company"] for e in mine} == {api.tenant.company.slug}
    assert {e["company"] for e in theirs} == {other_api.tenant.company.slug}
    assert "Theirs" not in str(mine)
    assert "Mine" not in str(theirs)


def test_a_cursor_older_than_the_retention_is_410(api: Api, session: Session) -> None:
    create_partner(api, customer_stage="lead")
    old_cursor = api.get(EVENTS, params={"limit": 1}).json()["next_cursor"]  # after event 1
    start_cursor_items, _ = drain(api)
    assert len(start_cursor_items) == 2
    for _ in range(2):
        create_partner(api, customer_stage="lead")
    session.execute(
        update(Event)
        .where(Event.company_id == api.tenant.company.id, Event.seq <= 4)
        .values(occurred_at=utcnow() - timedelta(days=31))
    )
    assert event_service.prune(session, retention_days=30) == 4
    assert_problem(api.get(EVENTS, params={"cursor": old_cursor}), 410, "cursor_expired")
    # Without a cursor: from the oldest event kept.
    items, _ = drain(api)
    assert sorted(types(items)) == ["partner.created", "partner.stage_changed"]
    assert {e["data"]["number"] for e in items} == {3}


def test_read_scope_reads_the_feed_and_no_token_is_401(api: Api) -> None:
    assert api.as_("read").get(EVENTS).status_code == 200
    r = api.client.get(EVENTS)
    assert_problem(r, 401)


def test_long_polling_answers_on_time_without_an_event(api: Api) -> None:
    cursor = api.get(EVENTS).json()["next_cursor"]
    began = time.monotonic()
    body = api.get(EVENTS, params={"cursor": cursor, "wait": 1}).json()
    waited = time.monotonic() - began
    assert body == {"items": [], "next_cursor": cursor}
    assert waited >= 0.9  # it waited (an upper bound would only measure this machine's load)


@pytest.mark.parametrize("wait", ["-1", "31", "1.5"])
def test_wait_out_of_range_is_422(api: Api, wait: str) -> None:
    assert_problem(api.get(EVENTS, params={"wait": wait}), 422)


@pytest.mark.postgres_only
def test_the_database_renders_a_partner_exactly_as_the_api_reads_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many partners at once (a bulk change), PostgreSQL builds their events' data itself:
    here for one partner with every field set, each event equals what GET shows."""
    monkeypatch.setattr(partner_events, "IN_DATABASE_FROM", 1)
    monkeypatch.setattr(partner_events, "STAGE_IN_DATABASE_FROM", 1)
    create_tag(api, "Organic")
    create_tag(api, "deli")
    owner = create_user(api, name="Mette Sørensen")
    body = {
        "name": 'Ærø Foods ApS "quoted"',
        "country": "DK",
        "vat_id": "DK12345678",
        "currency": "EUR",
        "email": "buyer@aero.example",
        "phone": "+45 12 34 56 78",
        "website": "https://aero.example",
        "owner_id": owner["id"],
        "tags": ["deli", "Organic"],
        "customer_stage": "lead",
        "credit_limit": "1234.50",
        "accounting_ref": "C-77",
        "locations": [
            {
                "name": "Warehouse",
                "address": "Havnen 1",
                "postal_code": "5970",
                "city": "Ærøskøbing",
                "country": "DK",
            },
            {
                "name": "Shop",
                "address": "Torvet 2",
                "postal_code": "5970",
                "city": "Ærøskøbing",
                "country": "DK",
                "is_primary": True,
            },
        ],
    }
    partner = create_partner(api, **body)
    items, cursor = drain(api)
    created = next(e for e in items if e["type"] == "partner.created")
    assert created["data"] == get_partner(api, partner["number"])
    stage = next(e for e in items if e["type"] == "partner.stage_changed")
    assert stage["data"] == {
        "number": partner["number"],
        "previous_stage": None,
        "stage": "lead",
        "reason": "manual",
        "changed_by": {"id": str(api.tenant.admin.id), "name": api.tenant.admin.name},
    }
    push = {
        "balances": [{"accounting_ref": "C-77", "balance": "-17.05"}],
        "as_of": (utcnow() - timedelta(minutes=1)).isoformat(),
    }
    assert api.post("/api/v1/accounting/balances", json=push).status_code == 200
    create_order(
        api,
        partner["number"],
        lines=[line(quantity="3", unit_price="9.99")],
        exchange_rate="7.45",
        delivery_date="2026-12-24",
    )
    items, _ = drain(api, cursor)
    updated = [e for e in items if e["type"] == "partner.updated"]
    assert updated
    final = get_partner(api, partner["number"])
    assert final["debtor_balance"] == "-17.05"
    assert final["latest_sales_delivery_date"] == "2026-12-24"
    assert updated[-1]["data"] == final
    _, cursor = drain(api, cursor)
    r = api.post(
        "/api/v1/partners/bulk/customer-stage",
        json={"numbers": [partner["number"]], "customer_stage": "lost"},
    )
    assert r.status_code == 200, r.text
    items, _ = drain(api, cursor)
    assert sorted(types(items)) == ["partner.stage_changed", "partner.updated"]
    by_type = {e["type"]: e["data"] for e in items}
    assert by_type["partner.updated"] == get_partner(api, partner["number"])
    assert by_type["partner.stage_changed"]["previous_stage"] == "active"
    assert by_type["partner.stage_changed"]["reason"] == "bulk"


def test_a_new_credit_check_writes_the_flips_it_causes(api: Api) -> None:
    partner = create_partner(api, customer_stage="active", credit_limit="100.00")
    api.patch(f"/api/v1/partners/{partner['number']}", json={"accounting_ref": "C9"})
    push = {
        "balances": [{"accounting_ref": "C9", "balance": "50.00"}],
        "as_of": (utcnow() - timedelta(minutes=1)).isoformat(),
    }
    assert api.post("/api/v1/accounting/balances", json=push).status_code == 200
    create_order(api, partner["number"], lines=[line(quantity="6", unit_price="10.00")])
    _, cursor = drain(api)
    r = api.patch("/api/v1/company", json={"credit_check": "balance_plus_uninvoiced"})
    assert r.status_code == 200, r.text
    items, _ = drain(api, cursor)
    assert sorted(types(items)) == ["partner.credit_limit_exceeded", "partner.updated"]
    updated = next(e for e in items if e["type"] == "partner.updated")
    assert updated["data"] == get_partner(api, partner["number"])
    assert updated["data"]["credit_limit_exceeded"] is True


def test_repairing_maintained_columns_writes_partner_updated(
    api: Api, db: Any, session: Session
) -> None:
    partner = create_partner(api, customer_stage="active")
    create_order(api, partner["number"], lines=[line(quantity="1", unit_price="10.00")])
    session.execute(
        update(Partner)
        .where(Partner.company_id == api.tenant.company.id, Partner.number == partner["number"])
        .values(uninvoiced_total=Decimal("999.00"))
    )
    _, cursor = drain(api)
    drift = check_partner_totals(db=db, company_id=api.tenant.company.id, repair=True)
    assert [d.number for d in drift] == [partner["number"]]
    items, _ = drain(api, cursor)
    assert types(items) == ["partner.updated"]
    assert items[0]["data"]["uninvoiced_total"] == "10.00"
    assert items[0]["data"] == get_partner(api, partner["number"])


def _loaded(api: Api, session: Session, number: int) -> Partner:
    return session.scalars(
        select(Partner).where(Partner.company_id == api.tenant.company.id, Partner.number == number)
    ).one()


@pytest.mark.postgres_only
@pytest.mark.parametrize(
    "behind", [{"version": Partner.version + 1}, {"credit_limit_exceeded": True}]
)
def test_a_partner_changed_behind_its_written_object_fails_the_commit_not_its_event(
    api: Api, session: Session, behind: dict[str, Any]
) -> None:
    """A write's one partner renders its event without reading its version first, from the
    loaded object; were the row changed behind the object (a version or a credit state the
    object does not know), the event would be wrong or missing, so the commit fails."""
    number = create_partner(api)["number"]
    _, cursor = drain(api)
    partner = _loaded(api, session, number)
    partner_events.touched(session, api.tenant.company.id, [partner])
    partner.name = "Renamed"
    session.flush()  # the object's version moves with its UPDATE
    session.execute(
        update(Partner)
        .where(Partner.company_id == api.tenant.company.id, Partner.number == number)
        .values(**behind)
        .execution_options(synchronize_session=False)
    )
    with pytest.raises(RuntimeError, match="events written for"):
        session.commit()
    session.rollback()
    assert drain(api, cursor)[0] == []
    assert get_partner(api, number)["name"] != "Renamed"


def test_a_partner_its_object_calls_unchanged_is_read_before_its_event_is_left_out(
    api: Api, session: Session
) -> None:
    """The object's word is taken only that its partner changed: one whose version did not
    move in the object is asked of the database, which here knows a change behind it."""
    number = create_partner(api)["number"]
    _, cursor = drain(api)
    partner = _loaded(api, session, number)
    partner_events.touched(session, api.tenant.company.id, [partner])
    session.execute(
        update(Partner)
        .where(Partner.company_id == api.tenant.company.id, Partner.number == number)
        .values(name="Renamed", version=Partner.version + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    session.commit()
    items, _ = drain(api, cursor)
    assert types(items) == ["partner.updated"]
    assert items[0]["data"] == get_partner(api, number)
    assert items[0]["data"]["name"] == "Renamed"
