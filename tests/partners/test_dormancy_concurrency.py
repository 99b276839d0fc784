"""The dormancy rule against an order that commits while the rule waits for its partner's lock
(PostgreSQL: READ COMMITTED statements see what committed before they started)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.orm import Session

from app.db.session import Database
from app.models import Company, Partner
from app.models.enums import CustomerStage
from app.partners import dormancy
from app.partners import service as partner_service
from app.partners.repository import PartnerRepository
from app.partners.schemas import BulkStageResult, PartnerCreate
from app.sales_orders import service as order_service
from app.sales_orders.schemas import LineIn, SalesOrderCreate
from tests.factories import Tenant, make_tenant

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def company(committed_db: Database) -> Iterator[Tenant]:
    with committed_db.session() as s:
        tenant = make_tenant(s)
        s.execute(update(Company).where(Company.id == tenant.company.id).values(dormancy_days=30))
        s.commit()
    yield tenant
    with committed_db.session() as s:
        s.execute(delete(Company).where(Company.id == tenant.company.id))
        s.commit()


def order(session: Session, tenant: Tenant, number: int, days_ago: int) -> None:
    """Create an order (it locks its partner, and commits)."""
    order_service.create(
        session=session,
        principal=tenant.principal,
        data=SalesOrderCreate(
            partner_number=number,
            order_date=datetime.now(UTC).date() - timedelta(days=days_ago),
            lines=[LineIn(description="Rye", quantity=Decimal(1), unit_price=Decimal(10))],
        ),
    )


def test_an_order_committed_while_dormancy_waits_for_the_lock_keeps_the_customer_active(
    committed_db: Database, company: Tenant
) -> None:
    with committed_db.session() as s:
        number = partner_service.create(
            session=s,
            principal=company.principal,
            data=PartnerCreate(
                name="Quiet Deli", country="DK", customer_stage=CustomerStage.active
            ),
        ).number
    with committed_db.session() as s:
        order(s, company, number, days_ago=31)

    results: list[BulkStageResult] = []
    errors: list[BaseException] = []

    def apply() -> None:
        try:
            with committed_db.session() as s:
                results.append(
                    dormancy.apply(session=s, company_id=company.company.id, dry_run=False)
                )
        except BaseException as exc:
            errors.append(exc)

    with committed_db.session() as holder:
        # An order being written holds its partner's row lock: the rule must wait for it.
        PartnerRepository(holder, company.company.id).get(number, for_update=True)
        worker = threading.Thread(target=apply)
        worker.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            holder.execute(text("SELECT pg_stat_clear_snapshot()"))  # else one per transaction
            waiting = holder.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE '%FOR UPDATE%' AND pid <> pg_backend_pid()"
                )
            )
            if waiting:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the dormancy rule never waited for the partner's lock")
        # Today's order commits while the rule waits: the rule must see it once it has the lock.
        order(holder, company, number, days_ago=0)
    worker.join(timeout=30)
    assert not errors, errors
    assert results
    assert results[0].changed == 0
    with committed_db.session(write=False) as s:
        assert (
            s.scalar(select(Partner.customer_stage).where(Partner.company_id == company.company.id))
            == "active"
        )
