"""Migrations: reversible, repeatable, and in step with the models.

Every test here runs on a fresh database of its own (a temporary SQLite file, or a new
PostgreSQL database created and dropped by the ``fresh_engine`` fixture), never on the shared
test database, because the migrations are taken all the way down.
"""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, make_url, text
from sqlalchemy.orm import Session

import app.models  # noqa: F401  (registers every table on Base.metadata)
from app.companies.service import create as create_company
from app.core.config import Settings
from app.db.base import Base
from app.db.migrations import downgrade, head_revision, upgrade
from app.db.session import build_engine
from app.numbers.repository import next_number
from tests.conftest import IN_CI, POSTGRES_URL

BACKEND = os.environ.get("CRM_TEST_DATABASE", "sqlite").lower()


@pytest.fixture
def fresh_engine() -> Iterator[Engine]:
    """An engine on an empty database that exists for this test only."""
    if BACKEND == "postgresql":
        admin_url = make_url(POSTGRES_URL)
        name = f"crm_migrations_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as exc:
            admin.dispose()
            if IN_CI:
                raise RuntimeError(f"PostgreSQL unreachable at {admin_url!r} under CI") from exc
            pytest.skip(f"PostgreSQL unreachable at {admin_url.render_as_string()}: {exc}")
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        engine = build_engine(Settings(database_url=url))
        try:
            yield engine
        finally:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    else:
        with tempfile.TemporaryDirectory(prefix="crm-migrations-") as folder:
            engine = build_engine(Settings(database_url=f"sqlite:///{Path(folder) / 'm.db'}"))
            try:
                yield engine
            finally:
                engine.dispose()


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate_up(engine: Engine) -> None:
    with engine.begin() as conn:
        upgrade(conn)


def migrate_down(engine: Engine) -> None:
    with engine.begin() as conn:
        downgrade(conn)


def drift(engine: Engine) -> list[object]:
    with engine.connect() as conn, warnings.catch_warnings():
        # Alembic cannot compare a generated column's expression and says so; the column itself
        # (name, type, nullability) is still compared.
        warnings.filterwarnings("ignore", message="Computed default on .* cannot be modified")
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


def test_upgrade_creates_every_model_table_and_stamps_head(fresh_engine: Engine) -> None:
    assert table_names(fresh_engine) == set()
    migrate_up(fresh_engine)
    assert table_names(fresh_engine) == {*Base.metadata.tables, "alembic_version"}
    assert current_revision(fresh_engine) == head_revision()


def test_downgrade_to_base_leaves_only_alembic_version(fresh_engine: Engine) -> None:
    migrate_up(fresh_engine)
    migrate_down(fresh_engine)
    assert table_names(fresh_engine) == {"alembic_version"}
    assert current_revision(fresh_engine) is None


def test_upgrade_downgrade_upgrade_round_trips(fresh_engine: Engine) -> None:
    migrate_up(fresh_engine)
    after_first = {
        name: sorted(col["name"] for col in inspect(fresh_engine).get_columns(name))
        for name in table_names(fresh_engine)
    }
    migrate_down(fresh_engine)
    migrate_up(fresh_engine)
    after_second = {
        name: sorted(col["name"] for col in inspect(fresh_engine).get_columns(name))
        for name in table_names(fresh_engine)
    }
    assert after_second == after_first
    assert current_revision(fresh_engine) == head_revision()
    assert drift(fresh_engine) == []


def test_each_revision_steps_down_and_up_one_at_a_time(fresh_engine: Engine) -> None:
    migrate_up(fresh_engine)
    seen = []
    while (revision := current_revision(fresh_engine)) is not None:
        seen.append(revision)
        with fresh_engine.begin() as conn:
            downgrade(conn, "-1")
    assert table_names(fresh_engine) == {"alembic_version"}
    for revision in reversed(seen):
        with fresh_engine.begin() as conn:
            upgrade(conn, revision)
        assert current_revision(fresh_engine) == revision
    assert seen[0] == head_revision()
    assert drift(fresh_engine) == []


def test_models_and_migrations_do_not_drift(fresh_engine: Engine) -> None:
    migrate_up(fresh_engine)
    assert drift(fresh_engine) == []


def test_readiness_revision_is_the_single_head() -> None:
    from alembic.script import ScriptDirectory

    from app.db.migrations import alembic_config

    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads == [head_revision()], f"several migration heads: {heads}"


def test_order_numbers_continue_across_0013_both_ways(fresh_engine: Engine) -> None:
    """0013 moves a company's sales order numbers from its counter row to a sequence of its
    own (PostgreSQL) and back: either way the next number follows the last one taken."""
    migrate_up(fresh_engine)
    with Session(fresh_engine) as s:
        company_id = create_company(
            session=s, slug="numbers", name="Numbers", base_currency="DKK"
        ).id
        assert [next_number(s, company_id, "sales_order") for _ in range(3)] == [1, 2, 3]
        s.commit()
    with fresh_engine.begin() as conn:
        downgrade(conn, "0012")
    counter = text(
        "UPDATE number_sequences SET last_value = last_value + 1 "
        "WHERE company_id = :c AND kind = 'sales_order' RETURNING last_value"
    )
    with fresh_engine.begin() as conn:  # a number taken as revision 0012's code takes it
        company = company_id if BACKEND == "postgresql" else company_id.hex
        assert conn.execute(counter, {"c": company}).scalar() == 4
    migrate_up(fresh_engine)
    with Session(fresh_engine) as s:
        assert next_number(s, company_id, "sales_order") == 5
        assert next_number(s, company_id, "partner") == 1
        s.commit()
