"""The scheduled refresh (``CRM_ACCOUNTING_SYNC_INTERVAL``): one round starts a refresh for
every company with an enabled connection. ``app.worker`` runs the round once per interval
across all processes; the one-running-run rule still keeps two runs of a company apart."""

from __future__ import annotations

import structlog
from sqlalchemy import select

from app.accounting import service
from app.core.config import Settings
from app.core.errors import AppError
from app.db.session import Database
from app.models import AccountingConnection
from app.models.enums import SyncTrigger

log = structlog.get_logger("crm.accounting.schedule")


def run_due(db: Database, settings: Settings) -> int:
    """One round: try every enabled connection; returns how many runs this process did."""
    with db.session(write=False) as session:
        company_ids = list(
            session.scalars(
                select(AccountingConnection.company_id).where(AccountingConnection.enabled)
            )
        )
    done = 0
    for company_id in company_ids:
        try:
            with db.session() as session:
                run = service.start_run(
                    session=session,
                    company_id=company_id,
                    trigger=SyncTrigger.schedule,
                    settings=settings,
                )
                run_id = run.id
        except AppError:
            continue  # running elsewhere, or no longer connected
        service.execute_run(db=db, company_id=company_id, run_id=run_id, settings=settings)
        done += 1
    return done
