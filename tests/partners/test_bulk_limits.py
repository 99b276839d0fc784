"""Bounds on POST /api/v1/partners/bulk/customer-stage: how many partners one bulk may select
(CRM_BULK_MAX_PARTNERS), how many changes the answer lists (``changes_truncated``), and how long
a write waits on rows a bulk (or anything else) holds (CRM_DB_LOCK_TIMEOUT_MS on PostgreSQL,
CRM_SQLITE_BUSY_TIMEOUT_MS on SQLite: 503 ``lock_timeout``, never a wait without end).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, delete, func, insert, select, text
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.db.session import SQLITE_BEGIN, Database, build_engine
from app.main import create_app
from app.models import Company, Partner, StageChange
from app.partners.schemas import BULK_CHANGES_LISTED
from tests.conftest import BACKEND, Api, RollbackDatabase, assert_problem
from tests.factories import Tenant, make_partner, make_tenant
from tests.helpers import BULK, PARTNERS, create_partner, ok, stage_history, walk


def _api(settings: Settings, db: Database, tenant: Tenant, **overrides: Any) -> Api:
    app = create_app(settings.model_copy(update=overrides), database=db)
    return Api(TestClient(app, raise_server_exceptions=False), tenant)


def _stages(api: Api) -> dict[int, str | None]:
    return {p["number"]: p["customer_stage"] for p in walk(api, PARTNERS, limit=500)}


def _history_count(session: Session, tenant: Tenant) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(StageChange)
            .where(StageChange.company_id == tenant.company.id)
        )
        or 0
    )


# --- CRM_BULK_MAX_PARTNERS -------------------------------------------------------------------


@pytest.fixture
def capped(settings: Settings, db: RollbackDatabase, tenant: Tenant) -> Api:
    """Four partners (1 lead DK, 2 none SE, 3 active DK, 4 lost DE), at most 3 per bulk."""
    api = _api(settings, db, tenant, bulk_max_partners=3)
    create_partner(api, name="One", customer_stage="lead")
    create_partner(api, name="Two", country="SE")
    create_partner(api, name="Three", customer_stage="active")
    create_partner(api, name="Four", country="DE", customer_stage="lost")
    return api


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_filter_over_the_limit_is_422_too_many_partners_and_changes_nothing(
    capped: Api, session: Session, tenant: Tenant, dry_run: bool
) -> None:
    stages, history = _stages(capped), _history_count(session, tenant)
    r = capped.post(BULK, json={"customer_stage": "inactive", "filter": {}, "dry_run": dry_run})
    body = assert_problem(r, 422, "too_many_partners")
    assert "4 partners" in body["detail"]
    assert "at most 3" in body["detail"]
    assert (body["matched"], body["max_partners"]) == (4, 3)
    assert body["errors"] == [
        {
            "loc": ["body", "filter"],
            "message": "selects 4 partners, more than the limit of 3",
            "code": "too_many_partners",
        }
    ]
    assert _stages(capped) == stages
    assert _history_count(session, tenant) == history


def test_over_the_limit_with_an_idempotency_key_stores_no_answer(capped: Api) -> None:
    headers = {"Idempotency-Key": "too-many"}
    body = {"customer_stage": "inactive", "filter": {}}
    assert_problem(capped.post(BULK, json=body, headers=headers), 422, "too_many_partners")
    # Once the selection fits, the same key runs it (the refusal was not recorded).
    assert capped.delete(f"{PARTNERS}/2").status_code == 204
    r = capped.post(BULK, json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers.get("idempotent-replayed") != "true"
    assert r.json()["matched"] == 3


def test_a_filter_within_or_at_the_limit_runs(capped: Api) -> None:
    dk = ok(capped.post(BULK, json={"customer_stage": "inactive", "filter": {"country": "DK"}}))
    assert (dk["matched"], dk["changed"], dk["changes_truncated"]) == (2, 2, False)
    assert capped.delete(f"{PARTNERS}/2").status_code == 204
    every = ok(capped.post(BULK, json={"customer_stage": "potential", "filter": {}}))
    assert (every["matched"], every["changed"]) == (3, 3)
    assert _stages(capped) == {1: "potential", 3: "potential", 4: "potential"}


def test_numbers_over_the_limit_are_422_too(capped: Api) -> None:
    stages = _stages(capped)
    r = capped.post(BULK, json={"customer_stage": "inactive", "numbers": [4, 3, 2, 1]})
    body = assert_problem(r, 422, "too_many_partners")
    assert body["errors"][0]["loc"] == ["body", "numbers"]
    assert _stages(capped) == stages
    # Repeated numbers count once.
    same = ok(capped.post(BULK, json={"customer_stage": "lost", "numbers": [1, 1, 2, 3, 2]}))
    assert (same["matched"], same["changed"]) == (3, 3)


# --- the answer lists at most BULK_CHANGES_LISTED changes ------------------------------------


def test_more_than_1000_changes_are_counted_in_full_but_listed_truncated(
    api: Api, session: Session, tenant: Tenant
) -> None:
    assert BULK_CHANGES_LISTED == 1000
    total = 1005
    session.execute(
        insert(Partner),
        [
            {
                "company_id": tenant.company.id,
                "number": n,
                "name": f"P{n}",
                "country": "DK",
                "currency": "DKK",
            }
            for n in range(1, total + 1)
        ],
    )
    session.commit()
    before = _history_count(session, tenant)

    # Exactly 1000 changes: all listed.
    first = ok(api.post(BULK, json={"customer_stage": "active", "numbers": list(range(1, 1001))}))
    assert (first["changed"], len(first["changes"]), first["changes_truncated"]) == (
        1000,
        1000,
        False,
    )

    request = {"customer_stage": "lost", "filter": {}}
    dry = ok(api.post(BULK, json={**request, "dry_run": True}))
    headers = {"Idempotency-Key": "big-bulk"}
    real = api.post(BULK, json=request, headers=headers)
    assert real.status_code == 200, real.text
    body = real.json()
    assert {**dry, "dry_run": False} == body
    assert (body["matched"], body["changed"], body["unchanged"]) == (total, total, 0)
    assert body["changes_truncated"] is True
    assert body["changes"] == [
        {"number": n, "previous_stage": "active"} for n in range(1, BULK_CHANGES_LISTED + 1)
    ]

    # Every change is in the stage history, listed or not.
    assert _history_count(session, tenant) == before + 1000 + total
    for number, previous in ((1, "active"), (total, None)):
        newest = stage_history(api, number)[0]
        assert (newest["reason"], newest["previous_stage"], newest["stage"]) == (
            "bulk",
            previous,
            "lost",
        )
    assert set(_stages(api).values()) == {"lost"}

    # The recorded answer replays as it was, truncation flag included.
    again = api.post(BULK, json=request, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == body
    assert _history_count(session, tenant) == before + 1000 + total


# --- lock timeouts ---------------------------------------------------------------------------


@pytest.fixture
def committed_tenant(committed_db: Database) -> Iterator[Tenant]:
    """A company with partners 1 (lead) and 2 (active), committed; removed afterwards."""
    with committed_db.session() as s:
        tenant = make_tenant(s)
        make_partner(s, tenant, name="Locked", customer_stage="lead")
        make_partner(s, tenant, name="Free", customer_stage="active")
    yield tenant
    with committed_db.session() as s:
        s.execute(delete(Company).where(Company.id == tenant.company.id))
        s.commit()


def _stages_in(database: Database, tenant: Tenant) -> dict[int, str | None]:
    with database.session(write=False) as s:
        rows = s.execute(
            select(Partner.number, Partner.customer_stage).where(
                Partner.company_id == tenant.company.id
            )
        )
        return dict(rows.all())


def _assert_lock_timeout(response: Any) -> None:
    body = assert_problem(response, 503, "lock_timeout")
    assert "lock" in body["detail"]
    assert int(response.headers["Retry-After"]) >= 1


@pytest.mark.postgres_only
def test_postgresql_connections_carry_the_lock_timeout(settings: Settings) -> None:
    for lock_ms, shown in ((200, "200ms"), (0, "0")):
        engine = build_engine(
            settings.model_copy(
                update={"db_lock_timeout_ms": lock_ms, "db_statement_timeout_ms": 1234}
            )
        )
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SHOW lock_timeout")).scalar() == shown
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "1234ms"
        finally:
            engine.dispose()


def _hold_row_lock(conn: Connection, tenant: Tenant, number: int) -> None:
    conn.execute(
        text("SELECT id FROM partners WHERE company_id = :company AND number = :number FOR UPDATE"),
        {"company": tenant.company.id, "number": number},
    )


@pytest.mark.postgres_only
def test_a_patch_blocked_by_a_row_lock_answers_503_lock_timeout(
    settings: Settings, committed_db: Database, committed_tenant: Tenant
) -> None:
    short = settings.model_copy(update={"db_lock_timeout_ms": 200})
    database = Database(build_engine(short))
    try:
        api = _api(short, database, committed_tenant)
        with committed_db.engine.connect() as holder:
            _hold_row_lock(holder, committed_tenant, 1)  # as a long bulk change would
            blocked = api.patch(f"{PARTNERS}/1", json={"customer_stage": "potential"})
            _assert_lock_timeout(blocked)
            # A bulk that needs the locked row gives up the same way and changes nothing,
            # not even the partner that was free.
            bulk = api.post(BULK, json={"customer_stage": "lost", "filter": {}})
            _assert_lock_timeout(bulk)
            holder.rollback()
        assert _stages_in(committed_db, committed_tenant) == {1: "lead", 2: "active"}
        # Once the lock is gone the same PATCH goes through.
        ok(api.patch(f"{PARTNERS}/1", json={"customer_stage": "potential"}))
        assert _stages_in(committed_db, committed_tenant)[1] == "potential"
    finally:
        database.dispose()


@pytest.mark.skipif(BACKEND != "sqlite", reason="SQLite's busy timeout")
def test_a_sqlite_write_blocked_past_the_busy_timeout_answers_503_lock_timeout(
    settings: Settings, committed_db: Database, committed_tenant: Tenant
) -> None:
    short = settings.model_copy(update={"sqlite_busy_timeout_ms": 100})
    database = Database(build_engine(short))
    try:
        api = _api(short, database, committed_tenant)
        with committed_db.engine.connect() as holder:
            holder.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"}).begin()  # the write lock
            _assert_lock_timeout(api.patch(f"{PARTNERS}/1", json={"customer_stage": "potential"}))
            holder.rollback()
        ok(api.patch(f"{PARTNERS}/1", json={"customer_stage": "potential"}))
        assert _stages_in(committed_db, committed_tenant)[1] == "potential"
    finally:
        database.dispose()
