"""Partner numbers under concurrency: unique, gap-free, and in commit order.

Many writers create partners of one company at the same time, each through the service layer
in its own session with real commits (no rolled-back test transaction). The numbers must come
out exactly 1..N, and a partner whose creation started after another one's had finished must
have the higher number. Once with threads sharing one engine, once with separate OS processes
that each build their own engine from the database URL.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import delete, select

from app.auth.dependencies import Principal
from app.core.config import Settings
from app.db.session import Database, build_engine
from app.models import Company, Partner, User
from app.models.enums import Scope
from app.partners import service as partner_service
from app.partners.schemas import PartnerCreate
from tests.factories import Tenant, make_tenant

pytestmark = pytest.mark.postgres_only

THREADS = 16
PER_THREAD = 10
PROCESSES = 4
PER_PROCESS = 15


@dataclass(frozen=True)
class Created:
    number: int
    started_ns: int
    finished_ns: int


@pytest.fixture
def company(committed_db: Database) -> Iterator[Tenant]:
    with committed_db.session() as s:
        tenant = make_tenant(s)
    yield tenant
    with committed_db.session() as s:
        s.execute(delete(Company).where(Company.id == tenant.company.id))
        s.commit()
    with committed_db.session() as s:
        assert s.scalar(select(Company).where(Company.id == tenant.company.id)) is None


def create_partners(
    database: Database, principal: Principal, label: str, count: int
) -> list[Created]:
    out = []
    for i in range(count):
        started = time.monotonic_ns()
        with database.session() as s:
            partner = partner_service.create(
                session=s,
                principal=principal,
                data=PartnerCreate(name=f"{label} partner {i}", country="DK"),
            )
            number = partner.number
        out.append(Created(number, started, time.monotonic_ns()))
    return out


def stored_numbers(database: Database, company_id: uuid.UUID) -> list[int]:
    with database.session(write=False) as s:
        return list(
            s.scalars(
                select(Partner.number)
                .where(Partner.company_id == company_id)
                .order_by(Partner.number)
            )
        )


def assert_numbers_are_sequential_and_ordered(created: list[Created], stored: list[int]) -> None:
    total = len(created)
    answered = sorted(c.number for c in created)
    assert answered == list(range(1, total + 1)), "duplicate or missing numbers answered"
    assert stored == list(range(1, total + 1)), "duplicate or missing numbers stored"
    by_finish = sorted(created, key=lambda c: c.finished_ns)
    for later in created:
        finished_before = [c for c in by_finish if c.finished_ns < later.started_ns]
        if finished_before:
            highest = max(c.number for c in finished_before)
            assert later.number > highest, (
                f"partner {later.number} was started after partner {highest} had been "
                "created, yet got a lower number"
            )


def test_threads_get_unique_gap_free_numbers_in_commit_order(
    committed_db: Database, company: Tenant
) -> None:
    principal = company.principal
    barrier = threading.Barrier(THREADS)
    results: list[list[Created]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = create_partners(committed_db, principal, f"t{index}", PER_THREAD)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert errors == []
    created = [c for chunk in results for c in chunk]
    assert len(created) == THREADS * PER_THREAD
    stored = stored_numbers(committed_db, company.company.id)
    assert_numbers_are_sequential_and_ordered(created, stored)


def _process_worker(
    database_url: str,
    company_id: uuid.UUID,
    user_id: uuid.UUID,
    label: str,
    count: int,
    barrier: Any,
    results: Any,
) -> None:
    """Runs in a spawned process: its own engine, its own sessions."""
    database = Database(build_engine(Settings(database_url=database_url)))
    try:
        with database.session(write=False) as s:
            found = s.scalar(select(Company).where(Company.id == company_id))
            user = s.scalar(select(User).where(User.company_id == company_id, User.id == user_id))
            assert found is not None
            assert user is not None
            s.expunge_all()
        principal = Principal(company=found, user=user, scope=Scope.admin, token_id=uuid.uuid4())
        barrier.wait(timeout=60)
        created = create_partners(database, principal, label, count)
        results.put(("ok", [(c.number, c.started_ns, c.finished_ns) for c in created]))
    except BaseException as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        database.dispose()


def test_processes_get_unique_gap_free_numbers_in_commit_order(
    committed_db: Database, company: Tenant, database_url: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=_process_worker,
            args=(
                database_url,
                company.company.id,
                company.admin.id,
                f"p{i}",
                PER_PROCESS,
                barrier,
                results,
            ),
        )
        for i in range(PROCESSES)
    ]
    for p in processes:
        p.start()
    outcomes = [results.get(timeout=180) for _ in processes]
    for p in processes:
        p.join(timeout=30)
    assert [p.exitcode for p in processes] == [0] * PROCESSES
    errors = [detail for status, detail in outcomes if status != "ok"]
    assert errors == []
    created = [Created(*row) for status, rows in outcomes for row in rows]
    assert len(created) == PROCESSES * PER_PROCESS
    stored = stored_numbers(committed_db, company.company.id)
    assert_numbers_are_sequential_and_ordered(created, stored)
