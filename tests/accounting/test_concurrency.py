"""At most one running refresh per company: two simultaneous requests (threads, any database)
and two OS processes (PostgreSQL) racing for the same company."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.accounting import service
from app.core.config import Settings
from app.core.errors import AppError
from app.db.session import Database
from app.main import create_app
from app.models import Company, SyncRun
from tests.accounting.fake_economic import HANG, FakeEconomic, customer
from tests.accounting.helpers import RUNS, SYNC, connect, create_partner, get_partner, ok
from tests.conftest import Api
from tests.factories import Tenant, make_tenant


@pytest.fixture
def committed_tenant(committed_db: Database) -> Iterator[Tenant]:
    with committed_db.session() as s:
        tenant = make_tenant(s)
    yield tenant
    with committed_db.session() as s:
        company = s.get(Company, tenant.company.id)
        if company is not None:
            s.delete(company)
            s.commit()


def test_two_simultaneous_sync_requests_start_one_run(
    accounting_settings: Settings,
    committed_db: Database,
    committed_tenant: Tenant,
    economic: FakeEconomic,
) -> None:
    app = create_app(accounting_settings, database=committed_db)
    with (
        TestClient(app, raise_server_exceptions=False) as first,
        TestClient(app, raise_server_exceptions=False) as second,
    ):
        setup = Api(first, committed_tenant)
        connect(setup, economic)
        number = create_partner(setup, accounting_ref="10000")["number"]
        economic.set_customers([customer(n, Decimal(n) / 100) for n in range(10_000, 12_500)])
        # The run that starts holds on its first page until the test lets it go (within the
        # generous read timeout): it is still running, whatever the machine's speed, when the
        # other request is answered.
        hold = economic.add_fault("delay", seconds=HANG, page=0)

        barrier = threading.Barrier(2)
        answers: list[Any] = []
        lock = threading.Lock()
        answered = threading.Event()

        def post(client: TestClient) -> None:
            barrier.wait()
            r = Api(client, committed_tenant).post(SYNC)
            with lock:
                answers.append(r)
            answered.set()

        threads = [threading.Thread(target=post, args=(c,)) for c in (first, second)]
        for t in threads:
            t.start()
        # The first answer is the refused one: the accepted request (TestClient runs its
        # background task before answering) is held with its run. 60 s: only a guard against
        # waiting forever if the refusal never comes.
        got_one = answered.wait(timeout=60)
        with lock:
            early = list(answers)
        economic.release(hold)
        for t in threads:
            t.join(timeout=60)
        assert got_one
        assert [r.status_code for r in early] == [409], [r.text for r in early]
        assert hold.completed == 0  # the run was held until released, never by a timeout
        assert len(answers) == 2
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [202, 409], [r.text for r in answers]
        conflict = next(r for r in answers if r.status_code == 409)
        assert conflict.json()["code"] == "sync_already_running"
        accepted = next(r for r in answers if r.status_code == 202)

        runs = ok(setup.get(RUNS))["items"]
        assert [(r["id"], r["status"]) for r in runs] == [(accepted.json()["id"], "succeeded")]
        assert runs[0]["fetched"] == 2500
        assert get_partner(setup, number)["debtor_balance"] == "100.00"
        # One run's worth of requests: three pages, once each (the read timeout is generous:
        # however busy the machine, no page is retried).
        assert [r.query["skippages"] for r in economic.customer_requests()] == ["0", "1", "2"]
        assert hold.used == 1


def _race(
    database_url: str,
    company_id: str,
    barrier: Any,
    results: Any,
) -> None:
    """In its own process: its own engine, then start_run at the same moment as the other."""
    from app.db.session import build_engine

    settings = Settings(database_url=database_url, secret_key="test-secret-key-123456")
    db = Database(build_engine(settings))
    try:
        with db.session() as session:
            session.execute(select(1))  # connected before the race
            barrier.wait(timeout=60)
            try:
                run = service.start_run(
                    session=session,
                    company_id=uuid.UUID(company_id),
                    trigger="cli",
                    settings=settings,
                )
                results.put(("started", str(run.id)))
            except AppError as exc:
                results.put(("refused", exc.code))
        barrier.wait(timeout=60)  # stay alive until both tried: a dead runner is abandoned
    finally:
        db.dispose()


@pytest.mark.postgres_only
def test_two_processes_racing_start_exactly_one_run(
    settings: Settings,
    accounting_settings: Settings,
    committed_db: Database,
    committed_tenant: Tenant,
    economic: FakeEconomic,
) -> None:
    app = create_app(accounting_settings, database=committed_db)
    with TestClient(app, raise_server_exceptions=False) as client:
        connect(Api(client, committed_tenant), economic)

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_race,
            args=(settings.database_url, str(committed_tenant.company.id), barrier, results),
        )
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=90)
    assert [p.exitcode for p in procs] == [0, 0]
    got = sorted(results.get(timeout=5) for _ in range(2))
    assert [g[0] for g in got] == ["refused", "started"], got
    assert got[0][1] == "sync_already_running"

    with committed_db.session() as s:
        runs = list(
            s.scalars(select(SyncRun).where(SyncRun.company_id == committed_tenant.company.id))
        )
    assert [(str(r.id), r.status) for r in runs] == [(got[1][1], "running")]
