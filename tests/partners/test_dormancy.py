"""The dormancy rule: company option, the bulk endpoint, the scheduled job and its history."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, update

from app.core.config import Settings
from app.models import Company, ScheduledJob
from app.partners import dormancy
from app.worker import Jobs
from tests.conftest import Api, RollbackDatabase, assert_problem
from tests.events.test_feed import drain
from tests.helpers import (
    PARTNERS,
    create_order,
    create_partner,
    get_partner,
    ok,
    patch_partner,
    stage_history,
    transition,
)

DORMANCY = "/api/v1/partners/bulk/apply-dormancy"
COMPANY = "/api/v1/company"


def today() -> date:
    return datetime.now(UTC).date()


def days_ago(days: int) -> str:
    return (today() - timedelta(days=days)).isoformat()


def set_dormancy(api: Api, days: int | None) -> dict[str, Any]:
    return ok(api.patch(COMPANY, json={"dormancy_days": days}))


def partner_with_orders(api: Api, *ages: int, stage: str = "active", **fields: Any) -> int:
    """A partner at ``stage`` with one order dated each of ``ages`` days ago."""
    number = create_partner(api, customer_stage=stage, **fields)["number"]
    for age in ages:
        create_order(api, number, order_date=days_ago(age))
    return int(number)


def stage(api: Api, number: int) -> str | None:
    return get_partner(api, number)["customer_stage"]


# --- the company option ----------------------------------------------------------------------


def test_dormancy_is_off_until_set_and_can_be_turned_off_again(api: Api) -> None:
    assert ok(api.get(COMPANY))["dormancy_days"] is None
    assert set_dormancy(api, 180)["dormancy_days"] == 180
    assert ok(api.get(COMPANY))["dormancy_days"] == 180
    assert set_dormancy(api, None)["dormancy_days"] is None


@pytest.mark.parametrize("bad", [0, 3651, -1, "many", "180", 1.5, True, [30], {"days": 30}])
def test_dormancy_days_out_of_range_is_a_422_naming_the_field(api: Api, bad: Any) -> None:
    problem = assert_problem(api.patch(COMPANY, json={"dormancy_days": bad}), 422)
    assert ["body", "dormancy_days"] in [e["loc"][:2] for e in problem["errors"]]
    assert ok(api.get(COMPANY))["dormancy_days"] is None


def test_dormancy_days_takes_a_whole_number_written_with_a_decimal_point(api: Api) -> None:
    assert set_dormancy(api, 90.0)["dormancy_days"] == 90  # type: ignore[arg-type]


def test_only_an_admin_sets_dormancy_days(api: Api) -> None:
    assert_problem(api.as_("write").patch(COMPANY, json={"dormancy_days": 30}), 403)


# --- the rule ----------------------------------------------------------------------------------


def test_the_boundary_day_keeps_a_customer_active_and_the_day_after_does_not(api: Api) -> None:
    set_dormancy(api, 180)
    kept = partner_with_orders(api, 180)
    moved = partner_with_orders(api, 181)
    body = ok(api.post(DORMANCY, json={}))
    assert body == {
        "customer_stage": "inactive",
        "dry_run": False,
        "matched": 1,
        "changed": 1,
        "unchanged": 0,
        "changes": [{"number": moved, "previous_stage": "active"}],
        "changes_truncated": False,
    }
    assert stage(api, kept) == "active"
    assert stage(api, moved) == "inactive"


def test_the_most_recent_order_counts_not_the_oldest(api: Api) -> None:
    set_dormancy(api, 30)
    recent = partner_with_orders(api, 400, 10)
    assert ok(api.post(DORMANCY, json={}))["changed"] == 0
    assert stage(api, recent) == "active"


def test_cancelled_orders_are_ignored(api: Api) -> None:
    set_dormancy(api, 30)
    number = partner_with_orders(api, 100)
    late = create_order(api, number, order_date=days_ago(1))
    ok(transition(api, late["number"], "cancel"))
    assert ok(api.post(DORMANCY, json={}))["changes"] == [
        {"number": number, "previous_stage": "active"}
    ]


def test_a_customer_whose_only_orders_are_cancelled_is_not_dormant(api: Api) -> None:
    set_dormancy(api, 30)
    number = create_partner(api, customer_stage="active")["number"]
    order = create_order(api, number, order_date=days_ago(100))
    ok(transition(api, order["number"], "cancel"))
    assert ok(api.post(DORMANCY, json={}))["changed"] == 0
    assert stage(api, number) == "active"


def test_a_customer_with_no_orders_is_not_dormant(api: Api) -> None:
    set_dormancy(api, 1)
    number = create_partner(api, customer_stage="active")["number"]
    assert ok(api.post(DORMANCY, json={}))["matched"] == 0
    assert stage(api, number) == "active"


@pytest.mark.parametrize("other", ["lead", "potential", "inactive", "lost"])
def test_only_active_customers_become_inactive(api: Api, other: str) -> None:
    set_dormancy(api, 30)
    number = partner_with_orders(api, 100)
    patch_partner(api, number, customer_stage=other)  # after its orders, which make it active
    before = stage_history(api, number)
    assert ok(api.post(DORMANCY, json={}))["changed"] == 0
    assert stage(api, number) == other
    assert stage_history(api, number) == before


def test_a_dormant_change_is_in_the_history_as_dormant_by_nobody(api: Api) -> None:
    set_dormancy(api, 30)
    number = partner_with_orders(api, 31)
    before = stage_history(api, number)
    etag = api.get(f"{PARTNERS}/{number}").headers["ETag"]
    ok(api.post(DORMANCY, json={}))
    newest, *older = stage_history(api, number)  # newest first
    assert older == before
    assert newest["stage"] == "inactive"
    assert newest["previous_stage"] == "active"
    assert newest["reason"] == "dormant"
    assert newest["changed_by"] is None
    assert api.get(f"{PARTNERS}/{number}").headers["ETag"] != etag


def test_a_dormant_change_writes_its_events(api: Api) -> None:
    set_dormancy(api, 30)
    number = partner_with_orders(api, 31)
    _, cursor = drain(api)
    ok(api.post(DORMANCY, json={}))
    items, _ = drain(api, cursor)
    changed = [e["data"] for e in items if e["type"] == "partner.stage_changed"]
    assert changed == [
        {
            **changed[0],
            "number": number,
            "previous_stage": "active",
            "stage": "inactive",
            "reason": "dormant",
            "changed_by": None,
        }
    ]
    updated = [e["data"] for e in items if e["type"] == "partner.updated"]
    assert [u["number"] for u in updated] == [number]
    assert updated[0]["customer_stage"] == "inactive"


def test_a_dry_run_answers_the_same_and_changes_nothing(api: Api) -> None:
    set_dormancy(api, 30)
    number = partner_with_orders(api, 31)
    dry = ok(api.post(DORMANCY, json={"dry_run": True}))
    assert dry["dry_run"] is True
    assert dry["changes"] == [{"number": number, "previous_stage": "active"}]
    assert stage(api, number) == "active"
    real = ok(api.post(DORMANCY, json={}))
    assert {**real, "dry_run": True} == dry
    assert ok(api.post(DORMANCY, json={}))["matched"] == 0  # applied once: nothing left


def test_applying_with_the_rule_off_is_a_409_and_changes_nothing(api: Api) -> None:
    number = partner_with_orders(api, 3000)
    assert_problem(api.post(DORMANCY, json={}), 409, "dormancy_off")
    assert stage(api, number) == "active"


def test_applying_dormancy_needs_an_admin_token(api: Api) -> None:
    set_dormancy(api, 30)
    number = partner_with_orders(api, 31)
    assert_problem(api.as_("write").post(DORMANCY, json={}), 403)
    assert stage(api, number) == "active"


def test_the_rule_of_one_company_leaves_another_alone(api: Api, other_api: Api) -> None:
    set_dormancy(api, 30)
    theirs = partner_with_orders(other_api, 300)
    assert ok(api.post(DORMANCY, json={}))["matched"] == 0
    assert stage(other_api, theirs) == "active"


def test_an_idempotency_key_replays_the_first_answer(api: Api) -> None:
    set_dormancy(api, 30)
    partner_with_orders(api, 31)
    key = {"Idempotency-Key": "dormancy-1"}
    first = api.post(DORMANCY, json={}, headers=key)
    again = api.post(DORMANCY, json={}, headers=key)
    assert again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == ok(first)
    assert again.json()["changed"] == 1
    assert_problem(api.post(DORMANCY, json={"dry_run": True}, headers=key), 422)


def test_unknown_fields_are_a_422(api: Api) -> None:
    set_dormancy(api, 30)
    problem = assert_problem(api.post(DORMANCY, json={"days": 3}), 422)
    assert problem["errors"][0]["loc"] == ["body", "days"]


def test_many_dormant_customers_change_at_once_in_the_listed_order(api: Api) -> None:
    set_dormancy(api, 30)
    numbers = [partner_with_orders(api, 40 + i) for i in range(5)]
    kept = partner_with_orders(api, 5)
    body = ok(api.post(DORMANCY, json={}))
    assert [c["number"] for c in body["changes"]] == numbers
    listed = ok(api.get(PARTNERS, params={"customer_stage": "inactive", "limit": 50}))
    assert sorted(p["number"] for p in listed["items"]) == numbers
    assert stage(api, kept) == "active"


# --- the schedule ------------------------------------------------------------------------------


def test_the_daily_job_applies_the_rule_for_every_company_that_has_it(
    api: Api, other_api: Api, db: RollbackDatabase, settings: Settings
) -> None:
    set_dormancy(api, 30)
    mine = partner_with_orders(api, 31)
    theirs = partner_with_orders(other_api, 400)  # their rule is off
    assert dormancy.run_daily(db) == 1
    assert stage(api, mine) == "inactive"
    assert stage(other_api, theirs) == "active"


def test_the_worker_runs_dormancy_once_a_day(
    api: Api, db: RollbackDatabase, settings: Settings
) -> None:
    set_dormancy(api, 30)
    number = partner_with_orders(api, 31)
    with db.session() as s:  # rolled back after the test: a schedule as on a fresh database
        # (server processes of other tests may have committed this job's next run already)
        s.execute(delete(ScheduledJob).where(ScheduledJob.name == "dormancy"))
        s.commit()
    jobs = Jobs(db, settings)
    jobs.jobs = [job for job in jobs.jobs if job.name == "dormancy"]
    assert jobs.run_due() == ["dormancy"]
    assert stage(api, number) == "inactive"
    again = partner_with_orders(api, 31)
    assert jobs.run_due() == []  # not before tomorrow
    assert stage(api, again) == "active"


def test_a_company_whose_rule_is_turned_off_mid_round_is_skipped(
    api: Api, db: RollbackDatabase
) -> None:
    set_dormancy(api, 30)
    number = partner_with_orders(api, 31)
    with db.session() as session:
        session.execute(update(Company).values(dormancy_days=None))
        session.commit()
    assert dormancy.run_daily(db) == 0
    assert stage(api, number) == "active"
