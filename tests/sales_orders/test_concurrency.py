"""Concurrent order writers on one partner (PostgreSQL, real commits, several connections)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, text

from app.core.config import Settings
from app.db.session import Database, build_engine
from app.main import create_app
from tests.conftest import Api, assert_problem
from tests.factories import make_tenant
from tests.helpers import (
    ORDERS,
    OVERVIEW,
    create_order,
    create_partner,
    get_partner,
    line,
    ok,
    ref_line_total,
    stage_history,
    transition,
    walk,
)

THREADS = 8
ROUNDS = 10


def _remove_company(db: Database, company_id: Any) -> None:
    from app.models import Company, SalesOrder, SalesOrderLine

    with db.session() as s:
        s.execute(delete(SalesOrderLine).where(SalesOrderLine.company_id == company_id))
        s.execute(delete(SalesOrder).where(SalesOrder.company_id == company_id))
        s.execute(delete(Company).where(Company.id == company_id))
        s.commit()


@pytest.mark.postgres_only
def test_concurrent_order_writes_on_one_partner_keep_its_columns_exact(
    settings: Settings, committed_db: Database
) -> None:
    with committed_db.session() as s:
        tenant = make_tenant(s)
        s.commit()
    company_id = tenant.company.id
    app = create_app(settings, database=committed_db)
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            partner = create_partner(Api(c, tenant), name="Busy Buyer", customer_stage="lead")
        number = partner["number"]

        lock = threading.Lock()
        created: list[int] = []
        statuses: Counter[int] = Counter()
        errors: list[str] = []
        start = threading.Barrier(THREADS)

        def record(r: Any) -> None:
            with lock:
                statuses[r.status_code] += 1
                if r.status_code >= 500 or r.status_code not in (200, 201, 409):
                    errors.append(
                        f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}"
                    )

        def worker(k: int) -> None:
            rnd = random.Random(k)
            with TestClient(app, raise_server_exceptions=False) as client:
                api = Api(client, tenant)
                start.wait()
                for _ in range(ROUNDS):
                    delivery = date(2025, 1, 1) + timedelta(days=rnd.randint(0, 700))
                    r = api.post(
                        ORDERS,
                        json={
                            "partner_number": number,
                            "delivery_date": delivery.isoformat(),
                            "lines": [
                                {
                                    "description": "Load",
                                    "quantity": str(rnd.randint(1, 9)),
                                    "unit_price": f"{rnd.randint(1, 99999) / 100:.2f}",
                                    "discount_percent": str(rnd.choice([0, 5, 12.5])),
                                }
                            ],
                        },
                    )
                    record(r)
                    if r.status_code == 201:
                        with lock:
                            created.append(r.json()["number"])
                    for _ in range(2):
                        with lock:
                            target = rnd.choice(created) if created else None
                        if target is None:
                            continue
                        action = rnd.choice(["deliver", "invoice", "cancel", "delivery", "lines"])
                        if action == "delivery":
                            day = date(2025, 1, 1) + timedelta(days=rnd.randint(0, 700))
                            r = api.patch(
                                f"{ORDERS}/{target}", json={"delivery_date": day.isoformat()}
                            )
                        elif action == "lines":
                            r = api.patch(
                                f"{ORDERS}/{target}",
                                json={
                                    "lines": [
                                        {
                                            "description": "Changed",
                                            "quantity": "2",
                                            "unit_price": f"{rnd.randint(1, 9999) / 100:.2f}",
                                        }
                                    ]
                                },
                            )
                        else:
                            r = api.post(f"{ORDERS}/{target}/{action}")
                        record(r)

        with ThreadPoolExecutor(THREADS) as pool:
            for future in [pool.submit(worker, k) for k in range(THREADS)]:
                future.result()

        assert errors == []
        assert statuses[201] == len(created) == THREADS * ROUNDS

        with TestClient(app, raise_server_exceptions=False) as c:
            api = Api(c, tenant)
            orders = walk(api, ORDERS, limit=500, partner_number=number)
            # Unique numbers 1..N, one per successful create.
            assert sorted(o["number"] for o in orders) == list(range(1, len(created) + 1))
            assert sorted(created) == list(range(1, len(created) + 1))
            for o in orders:
                total = sum(
                    (
                        ref_line_total(li["quantity"], li["unit_price"], li["discount_percent"])
                        for li in o["lines"]
                    ),
                    Decimal("0.00"),
                )
                assert o["total"] == o["total_base"] == f"{total:.2f}"
            uninvoiced = sum(
                (Decimal(o["total_base"]) for o in orders if o["status"] in ("open", "delivered")),
                Decimal("0.00"),
            )
            dates = [
                o["delivery_date"]
                for o in orders
                if o["status"] != "cancelled" and o["delivery_date"]
            ]
            fresh = get_partner(api, number)
            assert fresh["uninvoiced_total"] == f"{uninvoiced:.2f}"
            assert fresh["latest_sales_delivery_date"] == (max(dates) if dates else None)
            row = walk(api, OVERVIEW, limit=10)[0]
            assert row["uninvoiced_total"] == fresh["uninvoiced_total"]
            assert row["latest_sales_delivery_date"] == fresh["latest_sales_delivery_date"]
            # The stage went to active once, whoever's order came first.
            history = stage_history(api, number)
            assert fresh["customer_stage"] == "active"
            assert [h["reason"] for h in history].count("sales_order_created") == 1
    finally:
        _remove_company(committed_db, company_id)
    with committed_db.session() as s:
        from app.models import Company

        assert s.get(Company, company_id) is None


@pytest.mark.postgres_only
def test_order_writers_of_a_partner_wait_in_its_queue(
    settings: Settings, committed_db: Database
) -> None:
    """Every order write waits for its partner's turn (an advisory lock granted in arrival
    order) before locking the partner's row: held elsewhere, the writes of that partner
    wait (here until the lock timeout: 503), those of another partner do not."""
    with committed_db.session() as s:
        tenant = make_tenant(s)
        s.commit()
    short = settings.model_copy(update={"db_lock_timeout_ms": 200})
    database = Database(build_engine(short))
    app = create_app(short, database=database)
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            api = Api(c, tenant)
            busy, free = create_partner(api)["number"], create_partner(api)["number"]
            order = create_order(api, busy, [line("1", "10.00")])["number"]
            with committed_db.engine.connect() as holder:
                holder.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(CAST(:c AS text)), :n)"),
                    {"c": str(tenant.company.id), "n": busy},
                )
                blocked = api.post(
                    ORDERS, json={"partner_number": busy, "lines": [line("1", "1.00")]}
                )
                assert_problem(blocked, 503, "lock_timeout")
                assert_problem(transition(api, order, "deliver"), 503, "lock_timeout")
                create_order(api, free, [line("1", "1.00")])
                holder.rollback()
            ok(transition(api, order, "deliver"))
            assert get_partner(api, busy)["uninvoiced_total"] == "10.00"
    finally:
        database.dispose()
        _remove_company(committed_db, tenant.company.id)
