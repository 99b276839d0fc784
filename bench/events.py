"""The cost of writing events: order creation and the bulk stage change, each with the event
writers on (as shipped) and stubbed out, interleaved in one run, on an existing database.

    CRM_DATABASE_URL=postgresql+psycopg://... crm seed --company bench --partners 50000 --orders 100000
    CRM_DATABASE_URL=postgresql+psycopg://... python bench/events.py --company bench

Orders are committed (as in production; each block adds orders to random partners); the bulk
change (every partner with a stage to `lost`) runs its commit hook, then rolls back.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from sqlalchemy import func, select

from app.auth.dependencies import Principal
from app.core.config import Settings
from app.db.session import Database, build_engine
from app.events import outbox
from app.models import Company, Partner, User
from app.partners import bulk
from app.partners import events as partner_events
from app.partners.schemas import BulkStageRequest
from app.sales_orders import service as orders
from app.sales_orders.schemas import SalesOrderCreate


@contextmanager
def events(on: bool) -> Iterator[None]:
    if on:
        yield
        return
    with (
        mock.patch.object(partner_events, "touched"),
        mock.patch.object(outbox, "emit"),
        mock.patch.object(outbox, "emit_in_database"),  # a bulk change's stage events
    ):
        yield


def order_block(db: Database, principal: Principal, partners: int, count: int) -> float:
    times = []
    for _ in range(count):
        body = SalesOrderCreate.model_validate(
            {
                "partner_number": random.randint(1, partners),
                "currency": principal.company.base_currency,
                "lines": [{"description": "Rye bread", "quantity": "2", "unit_price": "10.00"}],
            }
        )
        began = time.perf_counter()
        with db.session() as session:
            orders.create(session=session, principal=principal, data=body)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def bulk_once(db: Database, principal: Principal) -> tuple[float, int]:
    with db.session() as session:
        commit = session.commit
        # Render and write the events as the commit would, then roll everything back.
        session.commit = session.flush  # type: ignore[method-assign]
        try:
            began = time.perf_counter()
            result = bulk.set_stage(
                session=session,
                principal=principal,
                data=BulkStageRequest.model_validate({"customer_stage": "lost", "filter": {}}),
                max_partners=10_000_000,
            )
            outbox._before_commit(session)  # the hook the commit runs
            elapsed = time.perf_counter() - began
        finally:
            session.commit = commit  # type: ignore[method-assign]
            session.rollback()
    return elapsed, result.changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--company", default="bench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--orders", type=int, default=50, help="orders per block")
    parser.add_argument("--no-bulk", action="store_true", help="order creation only")
    args = parser.parse_args()
    db = Database(build_engine(Settings()))
    with db.session() as session:
        company = session.scalar(select(Company).where(Company.slug == args.company))
        if company is None:
            raise SystemExit(f"no company {args.company!r}: run crm seed first")
        user = session.scalar(select(User).where(User.company_id == company.id).limit(1))
        assert user is not None
        partners = session.scalar(
            select(func.count()).select_from(Partner).where(Partner.company_id == company.id)
        )
        principal = Principal.acting_as(company, user)
    figures: dict[str, dict[bool, list[float]]] = {"order": {}, "bulk": {}}
    changed = 0
    for _ in range(args.rounds):
        for on in (False, True):
            with events(on):
                figures["order"].setdefault(on, []).append(
                    order_block(db, principal, int(partners or 1), args.orders)
                )
                if not args.no_bulk:
                    elapsed, changed = bulk_once(db, principal)
                    figures["bulk"].setdefault(on, []).append(elapsed)
    for name, unit, scale in (("order creation", "ms", 1000), ("bulk stage change", "s", 1)):
        key = "order" if name.startswith("order") else "bulk"
        if not figures[key]:
            continue
        off = statistics.median(figures[key][False])
        on = statistics.median(figures[key][True])
        print(
            f"{name}: without events {off * scale:.1f} {unit}, with events {on * scale:.1f} "
            f"{unit}, ratio {on / off:.2f}"
        )
    if changed:
        print(f"(bulk: {changed} partners changed per run, {2 * changed} events)")


if __name__ == "__main__":
    main()
