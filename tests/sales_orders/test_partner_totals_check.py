"""`crm check` (check_partner_totals): it reads in a read transaction, so writers go on while it
runs, and a repair changes (and on PostgreSQL locks) only the partners that still drift.

Real commits on several connections (``committed_db``), on SQLite and PostgreSQL. Threads are
coordinated through a hook into the check (the read step calls ``partner_total_drift``), never
through sleeps.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient
from sqlalchemy import delete, event, func, select, text, update
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings, get_settings
from app.db.session import Database
from app.main import create_app
from app.models import Company, Partner, SalesOrder, SalesOrderLine
from app.models.enums import CreditCheck
from app.sales_orders import service
from app.sales_orders.repository import (
    SalesOrderRepository,
    partner_total_drift,
    repair_partner_totals,
)
from app.sales_orders.service import Drift, check_partner_totals
from app.seed import seed
from tests.conftest import BACKEND, Api
from tests.factories import Tenant, make_tenant
from tests.helpers import ORDERS, PARTNERS

# Many partners, as in the report of a check that blocked writers; seeded in a second or two.
MANY_PARTNERS = 2_000
MANY_ORDERS = 4_000
# Writes that must complete while the check's read transaction is open.
WRITES_DURING_CHECK = 6
WAIT = 60  # seconds; only reached when something is broken


def _remove_company(db: Database, company_id: uuid.UUID) -> None:
    with db.session() as s:
        s.execute(delete(SalesOrderLine).where(SalesOrderLine.company_id == company_id))
        s.execute(delete(SalesOrder).where(SalesOrder.company_id == company_id))
        s.execute(delete(Company).where(Company.id == company_id))
        s.commit()


def _seeded(db: Database, partners: int, orders: int) -> Tenant:
    with db.session() as s:
        tenant = make_tenant(s, slug=f"chk-{uuid.uuid4().hex[:8]}")
        seed(s, slug=tenant.company.slug, partners=partners, orders=orders, seed_value=7)
    return tenant


@pytest.fixture
def many(committed_db: Database) -> Iterator[Tenant]:
    tenant = _seeded(committed_db, MANY_PARTNERS, MANY_ORDERS)
    yield tenant
    _remove_company(committed_db, tenant.company.id)


@pytest.fixture
def few(committed_db: Database) -> Iterator[Tenant]:
    tenant = _seeded(committed_db, 40, 80)
    yield tenant
    _remove_company(committed_db, tenant.company.id)


def _on_read(monkeypatch: pytest.MonkeyPatch, hook: Callable[[], None]) -> None:
    """Call ``hook`` inside the check's read step, right after its drift query (the read
    transaction still open), once."""
    real = service.partner_total_drift
    fired = threading.Event()

    def spy(session: Any, company_id: uuid.UUID, *, partner_ids: Any = None) -> list[Any]:
        rows = real(session, company_id, partner_ids=partner_ids)
        if partner_ids is None and not fired.is_set():
            fired.set()
            hook()
        return rows

    monkeypatch.setattr(service, "partner_total_drift", spy)


def _under_lock(monkeypatch: pytest.MonkeyPatch, hook: Callable[[list[Any]], None]) -> None:
    """Call ``hook(partner_ids)`` inside each repair transaction, after its locks."""
    real = service.partner_total_drift

    def spy(session: Any, company_id: uuid.UUID, *, partner_ids: Any = None) -> list[Any]:
        if partner_ids is not None:
            hook(partner_ids)
        return real(session, company_id, partner_ids=partner_ids)

    monkeypatch.setattr(service, "partner_total_drift", spy)


def _stored(db: Database, company_id: uuid.UUID) -> dict[int, tuple[Any, ...]]:
    with db.session(write=False) as s:
        rows = s.execute(
            select(
                Partner.number,
                Partner.version,
                Partner.uninvoiced_total,
                Partner.latest_sales_delivery_date,
                Partner.credit_limit_exceeded,
            ).where(Partner.company_id == company_id)
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def _break(db: Database, company_id: uuid.UUID, numbers: list[int], **values: Any) -> None:
    """Make these partners drift the way a bug or a hand-edit would: no version bump."""
    with db.session() as s:
        s.execute(
            update(Partner)
            .where(Partner.company_id == company_id, Partner.number.in_(numbers))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        s.commit()


def _order(partner_number: int, k: int) -> dict[str, Any]:
    return {
        "partner_number": partner_number,
        "currency": "DKK",
        "delivery_date": date(2027, 1, 1 + k % 28).isoformat(),
        "lines": [{"description": "Check load", "quantity": "2", "unit_price": f"{k + 1}.25"}],
    }


def test_check_on_many_partners_does_not_block_writers(
    settings: Settings,
    committed_db: Database,
    many: Tenant,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    company_id = many.company.id
    app = create_app(settings, database=committed_db)
    done = threading.Event()  # the check has returned
    progress = threading.Condition()
    succeeded: list[str] = []
    failures: list[str] = []

    def writer() -> None:
        # Orders and partner edits on partners all over the company, until the check ends.
        with TestClient(app, raise_server_exceptions=False) as client:
            api = Api(client, many, "write")
            k = 0
            while not done.is_set():
                number = 1 + (k * 397) % MANY_PARTNERS
                if k % 2:
                    r = api.patch(f"{PARTNERS}/{number}", json={"phone": f"+45 {k:08d}"})
                else:
                    r = api.post(ORDERS, json=_order(number, k))
                with progress:
                    if r.status_code in (200, 201):
                        succeeded.append(f"{r.request.method} {number}")
                    else:
                        failures.append(f"{r.request.method} {number}: {r.status_code} {r.text}")
                        done.set()
                    progress.notify_all()
                k += 1

    def while_the_check_reads() -> None:
        with progress:
            target = len(succeeded) + WRITES_DURING_CHECK
            waited = progress.wait_for(lambda: len(succeeded) >= target or failures, WAIT)
            if not waited:
                failures.append("no write got through while the check was reading")

    _on_read(monkeypatch, while_the_check_reads)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        # The first write before the check starts: writes "go on" when it begins.
        with progress:
            progress.wait_for(lambda: succeeded or failures, WAIT)
        drift = check_partner_totals(db=committed_db, company_id=company_id)
    finally:
        done.set()
        thread.join()

    assert failures == []
    assert len(succeeded) > WRITES_DURING_CHECK
    # One snapshot: the orders written meanwhile changed partners' totals, never into drift.
    assert drift == []
    assert check_partner_totals(db=committed_db, company_id=company_id) == []


def test_repair_changes_only_the_drifted_partners(committed_db: Database, few: Tenant) -> None:
    company_id = few.company.id
    before = _stored(committed_db, company_id)
    _break(committed_db, company_id, [3, 17], uninvoiced_total=Decimal("12345.67"))
    _break(committed_db, company_id, [29], latest_sales_delivery_date=date(1999, 1, 1))
    broken = _stored(committed_db, company_id)

    found = check_partner_totals(db=committed_db, company_id=company_id)

    assert [d.number for d in found] == [3, 17, 29]
    assert found[0] == Drift(
        number=3,
        uninvoiced_total=Decimal("12345.67"),
        expected_uninvoiced_total=before[3][1],
        latest_sales_delivery_date=before[3][2],
        expected_latest_sales_delivery_date=before[3][2],
    )
    assert found[2].expected_latest_sales_delivery_date == before[29][2]
    assert _stored(committed_db, company_id) == broken  # a check alone changes nothing

    repaired = check_partner_totals(db=committed_db, company_id=company_id, repair=True)

    assert repaired == found
    after = _stored(committed_db, company_id)
    for number, (version, *columns) in after.items():
        if number in (3, 17, 29):
            assert version == before[number][0] + 1, number
        else:
            assert version == before[number][0], number
        assert columns == list(before[number][1:]), number
    assert check_partner_totals(db=committed_db, company_id=company_id, repair=True) == []
    assert _stored(committed_db, company_id) == after


def test_repair_leaves_a_partner_that_a_writer_fixed_meanwhile(
    committed_db: Database, few: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    company_id = few.company.id
    before = _stored(committed_db, company_id)
    _break(committed_db, company_id, [5, 6], uninvoiced_total=Decimal("1.00"))

    def a_writer_fixes_partner_5() -> None:
        # Between the read and the repair, as an order write would (it recomputes the columns).
        with committed_db.session() as s:
            pid = s.scalar(
                select(Partner.id).where(Partner.company_id == company_id, Partner.number == 5)
            )
            repair_partner_totals(s, company_id, [pid])
            s.commit()

    _on_read(monkeypatch, a_writer_fixes_partner_5)
    repaired = check_partner_totals(db=committed_db, company_id=company_id, repair=True)

    assert [d.number for d in repaired] == [6]
    after = _stored(committed_db, company_id)
    assert after[5][0] == before[5][0] + 1  # the writer's change, not the repair's too
    assert after[6][0] == before[6][0] + 1
    assert after[5][1:] == before[5][1:]
    assert after[6][1:] == before[6][1:]


def test_repair_refreshes_the_credit_state_of_what_it_repairs(
    committed_db: Database, few: Tenant
) -> None:
    company_id = few.company.id
    with committed_db.session() as s:
        s.execute(
            update(Company)
            .where(Company.id == company_id)
            .values(credit_check=CreditCheck.balance_plus_uninvoiced.value)
        )
        number, total = s.execute(
            select(Partner.number, Partner.uninvoiced_total)
            .where(Partner.company_id == company_id, Partner.uninvoiced_total > 0)
            .order_by(Partner.number)
            .limit(1)
        ).one()
        # Balance 0, limit just under the uninvoiced orders: exceeded, once the total is right.
        s.execute(
            update(Partner)
            .where(Partner.company_id == company_id, Partner.number == number)
            .values(
                debtor_balance=Decimal("0.00"),
                credit_limit=total - Decimal("0.01"),
                uninvoiced_total=Decimal("0.00"),
                credit_limit_exceeded=False,
            )
        )
        s.commit()

    repaired = check_partner_totals(db=committed_db, company_id=company_id, repair=True)

    assert [d.number for d in repaired] == [number]
    _version, uninvoiced, _latest, exceeded = _stored(committed_db, company_id)[number]
    assert uninvoiced == total
    assert exceeded is True


@pytest.mark.skipif(BACKEND != "postgresql", reason="SQLite locks the whole database for any write")
def test_repair_locks_only_the_partners_it_repairs(
    committed_db: Database, few: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    company_id = few.company.id
    _break(committed_db, company_id, [8, 9], uninvoiced_total=Decimal("2.00"))
    seen: dict[int, bool | str] = {}

    def try_locks(_partner_ids: list[Any]) -> None:
        # From another connection, without waiting: which partner rows does the repair hold?
        for number in (7, 8, 9, 10):
            with committed_db.engine.connect() as conn:
                try:
                    conn.execute(
                        text(
                            "SELECT id FROM partners WHERE company_id = :c AND number = :n"
                            " FOR UPDATE NOWAIT"
                        ),
                        {"c": company_id, "n": number},
                    ).all()
                    seen[number] = False
                except OperationalError as exc:  # 55P03 lock_not_available: held
                    seen[number] = getattr(exc.orig, "sqlstate", None) == "55P03" or repr(exc)
                conn.rollback()

    _under_lock(monkeypatch, try_locks)
    repaired = check_partner_totals(db=committed_db, company_id=company_id, repair=True)

    assert [d.number for d in repaired] == [8, 9]
    assert seen == {7: False, 8: True, 9: True, 10: False}


def test_crm_check_reports_drift_and_repair_keeps_its_output_and_exit_codes(
    settings: Settings, committed_db: Database, few: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    company_id = few.company.id
    slug = few.company.slug
    before = _stored(committed_db, company_id)
    _break(committed_db, company_id, [4], uninvoiced_total=Decimal("9.99"))
    monkeypatch.setenv("CRM_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    saved_logging = structlog.get_config()
    runner = CliRunner()
    try:
        found = runner.invoke(cli, ["check", "--company", slug])
        repaired = runner.invoke(cli, ["check", "--company", slug, "--repair"])
        clean = runner.invoke(cli, ["check", "--company", slug])
    finally:
        structlog.configure(**saved_logging)
        get_settings.cache_clear()

    line = (
        f"partner 4: uninvoiced_total 9.99 (orders say {before[4][1]}), "
        f"latest_sales_delivery_date {before[4][2]} (orders say {before[4][2]})\n"
    )
    assert found.exit_code == 1, found.output
    assert found.stdout == line
    assert found.stderr == "1 partner(s) with drift found\n"
    assert repaired.exit_code == 0, repaired.output
    assert repaired.stdout == line
    assert repaired.stderr == "1 partner(s) with drift repaired\n"
    assert clean.exit_code == 0, clean.output
    assert clean.stdout == ""
    assert clean.stderr == "0 partner(s) with drift found\n"


@pytest.mark.skipif(BACKEND != "sqlite", reason="the plan SQLite picks without statistics")
def test_each_partners_orders_are_found_by_index(committed_db: Database, few: Tenant) -> None:
    # A bare max(delivery_date) once made SQLite walk the company's orders by delivery date for
    # every partner (minutes for 20k partners), in the check and on every order write.
    company_id = few.company.id
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "sales_orders" in statement:
            statements.append((statement, parameters))

    with committed_db.session(write=False) as s:
        partner_id = s.scalar(select(Partner.id).where(Partner.company_id == company_id))
        assert partner_id is not None
        event.listen(committed_db.engine, "before_cursor_execute", capture)
        try:
            partner_total_drift(s, company_id)
            partner_total_drift(s, company_id, partner_ids=[partner_id])
            SalesOrderRepository(s, company_id).partner_totals(partner_id)
        finally:
            event.remove(committed_db.engine, "before_cursor_execute", capture)
        assert len(statements) == 3
        for statement, parameters in statements:
            plan = [
                row[3]
                for row in s.connection().exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + statement, parameters
                )
            ]
            steps = [step for step in plan if "sales_orders" in step]
            assert steps, plan
            assert all("partner_id=?" in step for step in steps), plan


def test_the_seed_leaves_its_tables_analyzed(committed_db: Database) -> None:
    """The planner's row counts are the tables' own right after a seed (without statistics
    it guessed a few dozen rows per company and scanned every partner for a page)."""
    tenant = _seeded(committed_db, 300, 600)
    try:
        with committed_db.session(write=False) as s:
            for table in ("partners", "sales_orders"):
                rows = s.scalar(text(f"SELECT count(*) FROM {table}"))
                if BACKEND == "postgresql":
                    estimate = s.scalar(
                        text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": table}
                    )
                else:
                    stat = s.scalar(
                        text("SELECT stat FROM sqlite_stat1 WHERE tbl = :t LIMIT 1"), {"t": table}
                    )
                    estimate = int(stat.split()[0]) if stat else None
                assert rows, table
                assert estimate == rows, (table, estimate, rows)
    finally:
        _remove_company(committed_db, tenant.company.id)


def test_the_seed_computes_every_partners_totals_and_a_repair_finds_nothing_to_write(
    committed_db: Database,
) -> None:
    tenant = _seeded(committed_db, 300, 600)
    company_id = tenant.company.id
    try:
        with committed_db.session() as s:
            assert partner_total_drift(s, company_id) == []
            with_orders = s.scalar(
                select(func.count())
                .select_from(Partner)
                .where(Partner.company_id == company_id, Partner.uninvoiced_total > 0)
            )
            assert with_orders, "the seed's orders must reach some partners' totals"
            versions = dict(
                s.execute(
                    select(Partner.id, Partner.version).where(Partner.company_id == company_id)
                ).all()
            )
            repair_partner_totals(s, company_id, None)
            repair_partner_totals(s, company_id, list(versions)[:50])
            after = dict(
                s.execute(
                    select(Partner.id, Partner.version).where(Partner.company_id == company_id)
                ).all()
            )
            assert after == versions  # nothing was wrong, so nothing was written
            s.rollback()
    finally:
        _remove_company(committed_db, company_id)
