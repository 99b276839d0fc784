"""Ready to be distributed by company (e.g. Citus): on the migrated PostgreSQL schema, every
primary key, unique key, foreign key and index of a table of company data leads with
``company_id``, so each is enforceable (and each lookup routable) within one company's shard.
Tables without ``company_id`` are reference tables (``companies``, ``scheduled_jobs``)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, inspect

from app.db.migrations import upgrade
from tests.migrations.test_migrations import fresh_engine  # noqa: F401  (fixture)

pytestmark = pytest.mark.postgres_only

REFERENCE_TABLES = {"alembic_version", "companies", "scheduled_jobs"}


def _offenders(engine: Engine) -> list[str]:
    found = []
    schema = inspect(engine)
    for table in sorted(schema.get_table_names()):
        columns = {c["name"] for c in schema.get_columns(table)}
        if "company_id" not in columns:
            if table not in REFERENCE_TABLES:
                found.append(f"{table}: no company_id and not a reference table")
            continue
        keys = [("primary key", "pk", schema.get_pk_constraint(table)["constrained_columns"])]
        keys += [
            ("unique", u["name"], u["column_names"]) for u in schema.get_unique_constraints(table)
        ]
        keys += [("index", i["name"], i["column_names"]) for i in schema.get_indexes(table)]
        for fk in schema.get_foreign_keys(table):
            keys.append(("foreign key", fk["name"], fk["constrained_columns"]))
            if fk["referred_table"] != "companies":
                keys.append(("referenced key", fk["name"], fk["referred_columns"]))
        for kind, name, cols in keys:
            if list(cols)[:1] != ["company_id"]:
                found.append(f"{table}: {kind} {name} on {cols}")
    return found


def test_every_key_and_index_of_company_data_leads_with_company_id(
    fresh_engine: Engine,  # noqa: F811
) -> None:
    with fresh_engine.begin() as conn:
        upgrade(conn)
    assert _offenders(fresh_engine) == []
