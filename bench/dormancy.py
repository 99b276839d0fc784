"""The dormancy rule on a seeded company against a plain UPDATE of the same partners.

    CRM_DATABASE_URL=postgresql+psycopg://... crm seed --company dorm --partners 100000 --orders 300000
    CRM_DATABASE_URL=postgresql+psycopg://... python bench/dormancy.py --company dorm --days 365

Every partner of the company is made ``active`` first (a plain UPDATE, not timed). Then per
round, interleaved: the rule as a dry run (the selection alone), the rule itself (select and
lock, re-read, stage, history and events, one transaction), and the floor: one plain
``UPDATE partners SET customer_stage = 'inactive'`` of the very same partners by id. Each
is followed by an untimed reset to ``active``. Prints medians and the ratio rule / floor.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select, text, update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.config import Settings
from app.db.base import utcnow
from app.db.session import Database, build_engine
from app.models import Company, Partner
from app.partners import dormancy
from app.partners.repository import PartnerRepository


def reset(db: Database, company_id: Any) -> None:
    with db.session() as s:
        s.execute(text("SET LOCAL statement_timeout = 0"))
        s.execute(
            update(Partner).where(Partner.company_id == company_id).values(customer_stage="active")
        )
        s.commit()


def rule(db: Database, company_id: Any, *, dry_run: bool) -> tuple[float, int, list[int]]:
    started = time.perf_counter()
    with db.session() as s:
        s.execute(text("SET LOCAL statement_timeout = 0"))
        result = dormancy.apply(session=s, company_id=company_id, dry_run=dry_run)
    took = time.perf_counter() - started
    return took, result.changed, [c.number for c in result.changes]


def plain_update(db: Database, company_id: Any, ids: list[Any]) -> float:
    started = time.perf_counter()
    with db.session() as s:
        s.execute(text("SET LOCAL statement_timeout = 0"))
        s.execute(
            update(Partner)
            .where(Partner.company_id == company_id, Partner.id.in_(ids))
            .values(customer_stage="inactive")
        )
        s.commit()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--company", required=True)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    db = Database(build_engine(settings))
    with db.session() as s:
        company = s.scalar(select(Company).where(Company.slug == args.company))
        assert company is not None, f"no company {args.company!r}"
        company.dormancy_days = args.days
        company_id = company.id
        partners = s.query(Partner).filter(Partner.company_id == company_id).count()
        s.commit()
    reset(db, company_id)
    with db.session(write=False) as s:
        conditions = PartnerRepository(s, company_id).dormant(
            dormancy.cutoff(args.days, utcnow().date())
        )
        ids = list(
            s.scalars(select(Partner.id).where(Partner.company_id == company_id, *conditions))
        )
    print(f"{partners} partners, {len(ids)} dormant at {args.days} days", flush=True)
    dry, real, floor = [], [], []
    for round_ in range(1, args.rounds + 1):
        took, changed, _ = rule(db, company_id, dry_run=True)
        dry.append(took)
        took, changed, _ = rule(db, company_id, dry_run=False)
        assert changed == len(ids), (changed, len(ids))
        real.append(took)
        reset(db, company_id)
        floor.append(plain_update(db, company_id, ids))
        reset(db, company_id)
        print(
            f"round {round_}: dry run {dry[-1]:.2f} s, rule {real[-1]:.2f} s, "
            f"plain UPDATE {floor[-1]:.2f} s",
            flush=True,
        )
    med = statistics.median
    print(
        f"median: dry run {med(dry):.2f} s, rule {med(real):.2f} s ({len(ids) / med(real):,.0f} "
        f"partners/s), plain UPDATE {med(floor):.2f} s; rule / plain UPDATE "
        f"{med(real) / med(floor):.2f}x"
    )
    db.dispose()


if __name__ == "__main__":
    main()
