"""Per-company numbers: counters (partners; orders on SQLite) and sequences (orders on
PostgreSQL) behave alike to their callers."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from app.numbers.repository import last_number, next_number, next_numbers, set_last_number
from tests.factories import Tenant


@pytest.mark.parametrize("kind", ["partner", "sales_order"])
def test_numbers_start_at_1_per_company_and_continue_from_the_last_set(
    session: Session, tenant: Tenant, other_tenant: Tenant, kind: str
) -> None:
    one, two = tenant.company.id, other_tenant.company.id
    assert last_number(session, one, kind) == 0
    assert [next_number(session, one, kind) for _ in range(3)] == [1, 2, 3]
    assert last_number(session, one, kind) == 3
    assert next_number(session, two, kind) == 1  # each company counts its own
    set_last_number(session, one, kind, 1000)  # as crm seed does after writing rows itself
    assert last_number(session, one, kind) == 1000
    assert next_number(session, one, kind) == 1001
    set_last_number(session, two, kind, 0)
    assert last_number(session, two, kind) == 0
    assert next_number(session, two, kind) == 1


def test_blocks_are_consecutive_on_a_counter(session: Session, tenant: Tenant) -> None:
    company = tenant.company.id
    next_number(session, company, "partner")
    assert list(next_numbers(session, company, "partner", 3)) == [2, 3, 4]
    assert list(next_numbers(session, company, "partner", 0)) == []
    assert next_number(session, company, "partner") == 5
