"""Through a real PgBouncer in transaction pooling (CRM_DB_PGBOUNCER=true): nothing the
service does may outlive a transaction. psycopg's prepared statements would land on another
server connection; startup options are refused; session-level settings would leak. The
timeouts are set per write transaction instead. Two `crm serve` processes then run the
concurrent-writers scenario through it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import make_url, text, update
from sqlalchemy.exc import OperationalError

from app.core.config import Settings
from app.db.session import Database, build_engine
from app.models import Partner
from tests.conftest import IN_CI
from tests.factories import make_partner
from tests.ops import engines
from tests.test_processes_and_crashes import concurrent_writers, start, stop, tenant_in  # noqa: F401

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]


@pytest.fixture(scope="module")
def pgbouncer(settings: Settings) -> Iterator[int]:
    """A PgBouncer in transaction pooling on a free port, in front of the test PostgreSQL."""
    target = make_url(settings.database_url)
    try:
        with engines.pgbouncer(
            target.host or "127.0.0.1", target.port or 5432, target.username or "postgres"
        ) as port:
            yield port
    except engines.Unavailable as exc:
        if IN_CI:
            raise RuntimeError(f"{exc} (.ci/run installs it)") from exc
        pytest.skip(str(exc))


def _through(settings: Settings, port: int, **more: Any) -> Settings:
    url = make_url(settings.database_url).set(port=port).render_as_string(hide_password=False)
    return settings.model_copy(update={"database_url": url, "db_pgbouncer": True, **more})


def test_repeated_statements_and_write_timeouts_work_through_transaction_pooling(
    settings: Settings,
    pgbouncer: int,
    committed_db: Database,
    tenant_in: Any,  # noqa: F811
) -> None:
    db = Database(build_engine(_through(settings, pgbouncer, db_lock_timeout_ms=300)))
    try:
        for _ in range(12):  # psycopg would prepare it from the 5th run on
            with db.session() as s:
                assert s.execute(text("SELECT 1 WHERE 1 = :one"), {"one": 1}).scalar() == 1
                assert s.execute(text("SHOW lock_timeout")).scalar() == "300ms"
                s.commit()
        with db.session(write=False) as s:  # a read has no transaction: nothing was left set
            assert s.execute(text("SHOW lock_timeout")).scalar() != "300ms"
        with committed_db.session() as s:
            partner = make_partner(s, tenant_in)
            number = partner.number
        holder_ready, release = threading.Event(), threading.Event()

        def hold() -> None:
            with committed_db.session() as s:
                s.execute(
                    update(Partner)
                    .where(Partner.company_id == tenant_in.company.id, Partner.number == number)
                    .values(name="Held")
                )
                holder_ready.set()
                release.wait(30)
                s.rollback()

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert holder_ready.wait(30)
            with db.session() as s, pytest.raises(OperationalError, match="lock timeout"):
                s.execute(
                    update(Partner)
                    .where(Partner.company_id == tenant_in.company.id, Partner.number == number)
                    .values(name="Waiting")
                )
        finally:
            release.set()
            holder.join()
    finally:
        db.dispose()


def test_two_server_processes_through_pgbouncer_under_concurrent_writers(
    settings: Settings,
    pgbouncer: int,
    committed_db: Database,
    tenant_in: Any,  # noqa: F811
) -> None:
    url = _through(settings, pgbouncer).database_url
    servers = [start(url, CRM_DB_PGBOUNCER="true"), start(url, CRM_DB_PGBOUNCER="true")]
    try:
        concurrent_writers(servers, committed_db, tenant_in)
    finally:
        for proc, _ in servers:
            stop(proc)
