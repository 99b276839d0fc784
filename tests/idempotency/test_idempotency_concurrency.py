"""Two requests with the same Idempotency-Key at the same time: never both execute."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select

from app.core.config import Settings
from app.db.session import Database
from app.main import create_app
from app.models import Company, Partner, SalesOrder, SalesOrderLine
from tests.factories import Tenant, make_tenant


@pytest.fixture
def committed(settings: Settings, committed_db: Database) -> Iterator[tuple[Any, Tenant]]:
    with committed_db.session() as s:
        tenant = make_tenant(s, slug=f"idem-{uuid.uuid4().hex[:8]}")
    app = create_app(settings, database=committed_db)
    yield app, tenant
    with committed_db.session() as s:
        cid = tenant.company.id
        s.execute(delete(SalesOrderLine).where(SalesOrderLine.company_id == cid))
        s.execute(delete(SalesOrder).where(SalesOrder.company_id == cid))
        s.execute(delete(Company).where(Company.id == cid))
        s.commit()


@pytest.mark.parametrize("rounds", [5])
def test_concurrent_requests_with_one_key_execute_once(
    committed: tuple[Any, Tenant], committed_db: Database, rounds: int
) -> None:
    app, tenant = committed
    headers = {"Authorization": f"Bearer {tenant.tokens['write']}"}
    for round_ in range(rounds):
        key = f"same-key-{round_}"
        barrier = threading.Barrier(4)
        answers: list[Any] = []
        lock = threading.Lock()

        def send(
            key: str = key,
            barrier: threading.Barrier = barrier,
            answers: list[Any] = answers,
            lock: Any = lock,
        ) -> None:
            with TestClient(app) as client:
                barrier.wait()
                r = client.post(
                    "/api/v1/partners",
                    json={"name": "Once Only", "country": "DK"},
                    headers={**headers, "Idempotency-Key": key},
                )
                with lock:
                    answers.append(r)

        threads = [threading.Thread(target=send) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r.status_code in (201, 409) for r in answers), [r.text for r in answers]
        created = [r for r in answers if r.status_code == 201]
        assert created, "at least the first request succeeds"
        assert len({r.json()["number"] for r in created}) == 1, "every answer is the first one"
        for r in answers:
            if r.status_code == 409:
                assert r.json()["code"] == "idempotency_race"
    with committed_db.session(write=False) as s:
        count = s.scalar(
            select(func.count()).select_from(Partner).where(Partner.company_id == tenant.company.id)
        )
    assert count == rounds
