"""A full balance refresh of every customer against the fetch alone, for each provider, on an
existing database whose partners carry accounting refs (``crm seed`` gives partner n the ref
100000 + n).

    CRM_DATABASE_URL=postgresql+psycopg://... crm seed --company acc --partners 100000 --orders 0
    CRM_DATABASE_URL=postgresql+psycopg://... python bench/accounting.py --company acc

Each provider's fake (the test suite's, speaking the provider's HTTP contract over real HTTP on
loopback) lists one remote customer per partner. Per round, interleaved: the fetch alone (the
provider opened as a run opens it, every balance read and dropped), then a whole run (fetch,
then every balance stored in one transaction, credit states and events with it). The balances
alternate between two sets, so every run changes every partner. Prints the medians and their
ratio per provider (goal: a run at most 1.5x the fetch).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.accounting import service
from app.accounting.providers import REGISTRY
from app.accounting.providers.base import ProviderContext
from app.accounting.schemas import PUT_MODELS
from app.core.config import Settings
from app.db.session import Database, build_engine
from app.models import Company, Partner
from app.models.enums import SyncTrigger
from tests.accounting import fake_economic, fake_oauth

PROVIDERS = ("e-conomic", "fortnox", "xero", "visma-eaccounting")


def amounts(refs: list[str], variant: int) -> dict[str, Decimal]:
    return {ref: Decimal(i % 997 + variant) + Decimal("0.25") for i, ref in enumerate(refs)}


class Fakes:
    """One live fake per provider, with one remote customer per ref."""

    def __init__(self, refs: list[str]) -> None:
        self.refs = refs
        self.economic = fake_economic.FakeEconomic()
        self.oauth = {name: fake_oauth.make_fake(name) for name in PROVIDERS[1:]}

    def load(self, name: str, variant: int) -> None:
        balances = amounts(self.refs, variant)
        if name == "e-conomic":
            self.economic.set_customers(
                [fake_economic.customer(int(ref), amount) for ref, amount in balances.items()]
            )
            return
        fake = self.oauth[name]
        if isinstance(fake, fake_oauth.FakeFortnox):
            # One unpaid invoice per customer (set_balances adds paid ones, for the tests).
            fake.set_customers([fake_oauth.fortnox_customer(ref) for ref in balances])
            fake.set_invoices(
                [
                    fake_oauth.fortnox_invoice(10_000_000 + i, ref, amount)
                    for i, (ref, amount) in enumerate(balances.items())
                ]
            )
            return
        fake.set_balances(balances)

    def connection(self, name: str) -> dict[str, Any]:
        if name == "e-conomic":
            return {
                "provider": name,
                "base_url": self.economic.base_url,
                "app_secret_token": fake_economic.APP_SECRET_TOKEN,
                "agreement_grant_token": fake_economic.AGREEMENT_GRANT_TOKEN,
            }
        return self.oauth[name].connection_body()


def connect(db: Database, settings: Settings, company_id: Any, body: dict[str, Any]) -> None:
    with db.session() as session:
        service.put_connection(
            session=session,
            company_id=company_id,
            data=PUT_MODELS[body["provider"]].model_validate(body),
            secret_key=settings.secret_key,
            outbound=settings.outbound_policy,
        )


def fetch_alone(db: Database, settings: Settings, company_id: Any) -> tuple[float, int]:
    """What a run does before it writes: read the connection, open the provider, read every
    balance (and store a rotated token, as a run does)."""
    began = time.perf_counter()
    connection = service.read_connection(db, company_id, settings)
    context = ProviderContext(
        store_credentials=service._RotatedStore(db, company_id, connection, settings.secret_key),
        policy=service.retry_policy(settings),
        outbound=settings.outbound_policy,
    )
    count = 0
    with REGISTRY[connection.provider].open(connection, context) as provider:
        for _ in provider.balances(deadline=time.monotonic() + 3600):
            count += 1
    return time.perf_counter() - began, count


def full_run(db: Database, settings: Settings, company_id: Any) -> tuple[float, int]:
    began = time.perf_counter()
    with db.session() as session:
        run = service.start_run(
            session=session, company_id=company_id, trigger=SyncTrigger.cli, settings=settings
        )
        run_id = run.id
    service.execute_run(db=db, company_id=company_id, run_id=run_id, settings=settings)
    elapsed = time.perf_counter() - began
    with db.session(write=False) as session:
        done = service.get_run(session=session, company_id=company_id, run_id=run_id)
        if done.status != "succeeded":
            raise SystemExit(f"the run failed: {done.error_code} {done.error_message}")
        return elapsed, done.updated


def plain_update(db: Database, company_id: Any) -> float:
    """The floor of any run's write: one plain UPDATE of every partner's balance, sync time and
    version (rolled back), without reading, credit states or events."""
    with db.session() as session:
        began = time.perf_counter()
        session.execute(
            text(
                "UPDATE partners SET debtor_balance = coalesce(debtor_balance, 0) + 1, "
                "debtor_balance_synced_at = now(), version = version + 1 "
                "WHERE company_id = :company_id"
            ),
            {"company_id": company_id},
        )
        elapsed = time.perf_counter() - began
        session.rollback()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--company", default="acc")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--providers", nargs="*", default=list(PROVIDERS), choices=PROVIDERS)
    args = parser.parse_args()
    settings = Settings().model_copy(
        update={
            "secret_key": Settings().secret_key or "bench-secret-key-0123456789",
            "outbound_allow_http": True,
            "outbound_allow_private": True,
            "accounting_run_timeout": 3600.0,
            "db_statement_timeout_ms": 600_000,  # a plain UPDATE of 100k rows takes a while
        }
    )
    db = Database(build_engine(settings))
    with db.session(write=False) as session:
        company = session.scalar(select(Company).where(Company.slug == args.company))
        if company is None:
            raise SystemExit(f"no company {args.company!r}: run crm seed first")
        company_id = company.id
        refs = list(
            session.scalars(
                select(Partner.accounting_ref)
                .where(Partner.company_id == company_id, Partner.accounting_ref.is_not(None))
                .order_by(Partner.number)
            )
        )
        partners = session.scalar(
            select(func.count()).select_from(Partner).where(Partner.company_id == company_id)
        )
    print(f"{len(refs)} of {partners} partners carry an accounting ref; {args.rounds} rounds")
    fakes = Fakes([str(r) for r in refs])
    servers = [fake_economic.serve(fakes.economic)] + [
        fake_oauth.serve_oauth(fake) for fake in fakes.oauth.values()
    ]
    for server in servers:
        server.__enter__()
    try:
        for name in args.providers:
            fetch: list[float] = []
            run: list[float] = []
            floor: list[float] = []
            connect(db, settings, company_id, fakes.connection(name))
            fetched = updated = 0
            for round_ in range(args.rounds):
                fakes.load(name, round_ % 2)
                seconds, fetched = fetch_alone(db, settings, company_id)
                fetch.append(seconds)
                seconds, updated = full_run(db, settings, company_id)
                run.append(seconds)
                floor.append(plain_update(db, company_id))
            f, r, u = (statistics.median(x) for x in (fetch, run, floor))
            print(
                f"{name}: fetch alone {f:.2f} s, whole run {r:.2f} s, ratio {r / f:.2f}; "
                f"plain UPDATE of the same rows {u:.2f} s, run / (fetch + UPDATE) "
                f"{r / (f + u):.2f} ({fetched} customers fetched, {updated} balances changed "
                "per run)"
            )
    finally:
        for server in reversed(servers):
            server.__exit__(None, None, None)


if __name__ == "__main__":
    main()
