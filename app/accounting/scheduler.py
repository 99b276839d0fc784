"""The optional schedule (``CRM_ACCOUNTING_SYNC_INTERVAL``): a thread in each server process
starts a refresh for every company with an enabled connection. The one-running-run rule makes
the processes take turns; a process that finds a run going simply skips that company."""

from __future__ import annotations

import threading

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


class Scheduler:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="accounting-schedule", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        interval = self.settings.accounting_sync_interval
        while not self._stop.wait(interval):
            try:
                run_due(self.db, self.settings)
            except Exception:
                log.exception("schedule_round_failed")
