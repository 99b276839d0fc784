"""Real server processes on one PostgreSQL: two at once under concurrent writers, and kill -9
in the middle of a large bulk stage change and of a balance refresh."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select, text

from app.core.config import Settings
from app.db.session import Database
from app.models import Company, Partner, SalesOrder, SalesOrderLine, StageChange, SyncRun, User
from app.models.enums import Scope
from app.sales_orders.service import check_partner_totals
from app.seed import seed
from app.tokens import service as tokens
from tests.accounting.fake_economic import FakeEconomic, customer, serve
from tests.factories import make_tenant

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]

CRM = str(Path(sys.executable).with_name("crm"))
SECRET = "process-test-secret-key-0123456789"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(database_url: str, **more_env: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    env = {
        **os.environ,
        **more_env,
        "CRM_DATABASE_URL": database_url,
        "CRM_SECRET_KEY": SECRET,
        "CRM_RATE_LIMIT": "0",
        "CRM_LOG_LEVEL": "WARNING",
        "CRM_ACCOUNTING_RETRY_ATTEMPTS": "1",
        # The fake accounting system listens on plain http on loopback.
        "CRM_OUTBOUND_ALLOW_HTTP": "true",
        "CRM_OUTBOUND_ALLOW_PRIVATE": "true",
    }
    proc = subprocess.Popen(
        [CRM, "serve", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


def run_threads(target: Callable[[int], None], count: int) -> None:
    """``target(0)`` ... ``target(count - 1)``, each in a thread of its own, all at once."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def remove_company(db: Database, company_id: uuid.UUID) -> None:
    with db.session() as s:
        s.execute(delete(SalesOrderLine).where(SalesOrderLine.company_id == company_id))
        s.execute(delete(SalesOrder).where(SalesOrder.company_id == company_id))
        s.execute(delete(Company).where(Company.id == company_id))
        s.commit()


def active_statement(db: Database, fragment: str) -> bool:
    with db.engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'crm-overview'"
                    " AND state = 'active' AND query ILIKE :q"
                ),
                {"q": f"%{fragment}%"},
            ).scalar()
        )


def dead_sessions_ended(db: Database, timeout: float = 20) -> None:
    """Waits until PostgreSQL has ended the sessions of killed servers: each backend notices
    its closed connection, rolls its transaction back and exits. Only this test's database is
    looked at, and only sessions that are not idle (the test's own pool is)."""
    deadline = time.monotonic() + timeout
    while True:
        with db.engine.connect() as conn:
            busy = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                    " AND state <> 'idle'"
                )
            ).scalar()
        if not busy:
            return
        assert time.monotonic() < deadline, f"{busy} sessions of killed servers still open"
        time.sleep(0.01)  # another process: polled


@pytest.fixture
def tenant_in(committed_db: Database) -> Iterator[Any]:
    with committed_db.session() as s:
        tenant = make_tenant(s, slug=f"proc-{uuid.uuid4().hex[:8]}")
    yield tenant
    remove_company(committed_db, tenant.company.id)


def test_two_server_processes_under_concurrent_writers(
    settings: Settings, committed_db: Database, tenant_in: Any
) -> None:
    url = settings.database_url
    concurrent_writers([start(url), start(url)], committed_db, tenant_in)


def test_more_concurrent_requests_than_connections_and_threads_are_all_answered(
    settings: Settings, tenant_in: Any
) -> None:
    """64 clients at once against one process with a pool of 2 connections (fewer than the
    40 worker threads and the clients): every request is answered 200. Requests wait for
    a session on the event loop; unbounded, the threads all waited in the pool while the
    requests holding its connections waited for a thread, until the pool's 30 s timeout
    answered 500."""
    proc, base = start(
        settings.database_url,
        CRM_DB_POOL_SIZE="2",
        CRM_DB_MAX_OVERFLOW="0",
        CRM_DISPATCH_INLINE="false",
    )
    headers = {"Authorization": f"Bearer {tenant_in.tokens['read']}"}
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def reader(index: int) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=90) as client:
            for path in ("/api/v1/crm/overview", "/api/v1/partners", "/api/v1/sales-orders"):
                status = client.get(path, params={"limit": 5}).status_code
                with lock:
                    statuses[status] += 1

    try:
        run_threads(reader, 64)
    finally:
        stop(proc)
    assert statuses == Counter({200: 64 * 3}), statuses


def concurrent_writers(
    servers: list[tuple[subprocess.Popen[bytes], str]], committed_db: Database, tenant_in: Any
) -> None:
    """12 writers over the two servers (creates, orders and their transitions, bulk stage
    changes, balance pushes on 6 shared partners); then no 5xx, numbers gap-free and in order,
    totals and stage histories in step."""
    headers = {"Authorization": f"Bearer {tenant_in.tokens['write']}"}
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    try:
        with httpx.Client(base_url=servers[0][1], headers=headers, timeout=60) as c:
            for i in range(6):  # the partners every thread fights over
                c.post(
                    "/api/v1/partners",
                    json={
                        "name": f"Shared {i}",
                        "country": "DK",
                        "accounting_ref": f"R{i}",
                        "credit_limit": "1000.00",
                    },
                ).raise_for_status()

        def worker(index: int) -> None:
            try:
                writes(index)
            except Exception as exc:  # a writer that dies is a failure, never a silent one
                with lock:
                    errors.append(f"writer {index} died: {exc!r}")

        def writes(index: int) -> None:
            rng = random.Random(index)
            base = servers[index % 2][1]
            # The client drops an idle connection (2 s) before the server does (uvicorn's
            # keep-alive, 5 s): a request never goes out on a connection the server is closing
            # at that moment (httpx's default is also 5 s, a race that ends in "Server
            # disconnected without sending a response").
            with httpx.Client(
                base_url=base,
                headers=headers,
                timeout=60,
                limits=httpx.Limits(keepalive_expiry=2.0),
            ) as c:
                for _ in range(25):
                    roll = rng.random()
                    if roll < 0.2:
                        r = c.post("/api/v1/partners", json={"name": "New", "country": "SE"})
                    elif roll < 0.55:
                        r = c.post(
                            "/api/v1/sales-orders",
                            json={
                                "partner_number": rng.randint(1, 6),
                                "currency": "DKK",
                                "delivery_date": f"2026-12-{rng.randint(1, 28):02d}",
                                "lines": [
                                    {"description": "Rye", "quantity": "2", "unit_price": "10.00"}
                                ],
                            },
                        )
                    elif roll < 0.75:
                        listed = c.get(
                            "/api/v1/sales-orders", params={"status": "open", "limit": 10}
                        ).json()["items"]
                        if not listed:
                            continue
                        action = rng.choice(["deliver", "invoice", "cancel"])
                        r = c.post(f"/api/v1/sales-orders/{rng.choice(listed)['number']}/{action}")
                    elif roll < 0.88:
                        r = c.post(
                            "/api/v1/partners/bulk/customer-stage",
                            json={
                                "customer_stage": rng.choice(["lead", "lost", "potential"]),
                                "numbers": rng.sample(range(1, 7), 3),
                            },
                        )
                    else:
                        r = c.post(
                            "/api/v1/accounting/balances",
                            json={
                                "balances": [
                                    {
                                        "accounting_ref": f"R{i}",
                                        "balance": str(rng.randint(0, 2000)),
                                    }
                                    for i in rng.sample(range(6), 3)
                                ],
                                "as_of": datetime.now(UTC).isoformat(),
                            },
                        )
                    with lock:
                        statuses[r.status_code] += 1
                        if r.status_code >= 500 or (r.status_code >= 400 and r.status_code != 409):
                            errors.append(
                                f"{r.request.method} {r.request.url.path}: "
                                f"{r.status_code} {r.text[:200]}"
                            )

        run_threads(worker, 12)
    finally:
        for proc, _ in servers:
            stop(proc)

    assert not errors, errors[:5]
    assert sum(n for s, n in statuses.items() if s >= 500) == 0
    cid = tenant_in.company.id
    with committed_db.session() as s:
        numbers = list(
            s.scalars(
                select(Partner.number)
                .where(Partner.company_id == cid)
                .order_by(Partner.created_at, Partner.number)
            )
        )
        assert sorted(numbers) == list(range(1, len(numbers) + 1))
        assert numbers == sorted(numbers), "a later partner always has a higher number"
        orders = list(s.scalars(select(SalesOrder.number).where(SalesOrder.company_id == cid)))
        assert sorted(orders) == list(range(1, len(orders) + 1))
        assert check_partner_totals(db=committed_db, company_id=cid) == []
        for partner in s.scalars(select(Partner).where(Partner.company_id == cid)):
            last = s.scalar(
                select(StageChange.stage)
                .where(StageChange.company_id == cid, StageChange.partner_id == partner.id)
                .order_by(StageChange.seq.desc())
                .limit(1)
            )
            if partner.customer_stage is not None:
                assert last == partner.customer_stage, partner.number


@pytest.fixture
def many_partners(committed_db: Database) -> Iterator[tuple[uuid.UUID, str]]:
    slug = f"crash-{uuid.uuid4().hex[:8]}"
    with committed_db.session() as s:
        seed(s, slug=slug, partners=20_000, orders=0, seed_value=3)
        company_id = s.scalar(select(Company.id).where(Company.slug == slug))
        assert company_id is not None
        user_id = s.scalar(select(User.id).where(User.company_id == company_id).limit(1))
        assert user_id is not None
        token = tokens.create(
            session=s,
            company_id=company_id,
            user_id=user_id,
            name="crash",
            scope=Scope.admin,
            max_active=100,
        ).secret
    yield company_id, token
    remove_company(committed_db, company_id)


def test_kill_9_during_a_large_bulk_stage_change_leaves_all_or_nothing(
    settings: Settings, committed_db: Database, many_partners: tuple[uuid.UUID, str]
) -> None:
    company_id, token = many_partners
    with committed_db.session() as s:
        before = dict(
            s.execute(
                select(Partner.id, Partner.customer_stage).where(Partner.company_id == company_id)
            ).all()
        )
    proc, base = start(settings.database_url)
    try:

        def send() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the server dies under it
                httpx.post(
                    f"{base}/api/v1/partners/bulk/customer-stage",
                    headers={"Authorization": f"Bearer {token}"},
                    json={"customer_stage": "lost", "filter": {}},
                    timeout=60,
                )

        sender = threading.Thread(target=send)
        sender.start()
        deadline = time.monotonic() + 30
        while not (
            active_statement(committed_db, "stage_changes")
            or active_statement(committed_db, "UPDATE partners")
        ):
            assert time.monotonic() < deadline, "the bulk change was never seen running"
            time.sleep(0.005)
        kill9(proc)
        sender.join()
    finally:
        stop(proc)
    dead_sessions_ended(committed_db)
    with committed_db.session() as s:
        after = dict(
            s.execute(
                select(Partner.id, Partner.customer_stage).where(Partner.company_id == company_id)
            ).all()
        )
        history = s.scalar(
            select(func.count())
            .select_from(StageChange)
            .where(StageChange.company_id == company_id, StageChange.reason == "bulk")
        )
    changed = sum(1 for pid, stage in before.items() if stage != "lost")
    if after == before:
        assert history == 0
    else:  # committed just before the kill: all of it
        assert set(after.values()) == {"lost"}
        assert history == changed


def test_kill_9_during_a_refresh_stores_nothing_and_the_run_is_marked_failed(
    settings: Settings, committed_db: Database, tenant_in: Any
) -> None:
    fake = FakeEconomic()
    fake.set_customers([customer(1000 + i, Decimal("123.45")) for i in range(3000)])
    headers = {"Authorization": f"Bearer {tenant_in.tokens['admin']}"}
    with serve(fake) as live:
        fake.add_fault("delay", seconds=1.0, path="/customers", page=2)
        proc, base = start(settings.database_url)
        try:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
                c.post(
                    "/api/v1/partners",
                    json={"name": "P", "country": "DK", "accounting_ref": "1000"},
                ).raise_for_status()
                c.put(
                    "/api/v1/accounting/connection",
                    json={
                        "provider": "e-conomic",
                        "base_url": live.url,
                        "app_secret_token": fake.app_secret_token,
                        "agreement_grant_token": fake.agreement_grant_token,
                    },
                ).raise_for_status()
                c.post("/api/v1/accounting/sync").raise_for_status()
            # Page 2 (the third request) is being held back.
            assert fake.wait_for_requests(3, timeout=20), "the refresh never reached page 2"
            kill9(proc)
        finally:
            stop(proc)
        with committed_db.session() as s:
            run = s.scalar(select(SyncRun).where(SyncRun.company_id == tenant_in.company.id))
            assert run is not None
            assert run.status == "running"
            stored = s.scalar(
                select(func.count())
                .select_from(Partner)
                .where(
                    Partner.company_id == tenant_in.company.id, Partner.debtor_balance.is_not(None)
                )
            )
            assert stored == 0, "a killed refresh stores no balance"
        proc, base = start(settings.database_url)
        try:
            fake.clear_faults()
            r = httpx.post(f"{base}/api/v1/accounting/sync", headers=headers, timeout=30)
            assert r.status_code == 202, r.text
            runs = httpx.get(f"{base}/api/v1/accounting/sync-runs", headers=headers).json()
        finally:
            stop(proc)
    by_id = {item["id"]: item for item in runs["items"]}
    dead = by_id[str(run.id)]
    assert dead["status"] == "failed"
    assert dead["error"]["code"] == "run_abandoned"
    assert dead["updated"] == 0
