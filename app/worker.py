"""What runs without a request: the webhook dispatcher and the scheduled jobs.

``crm worker`` runs them alone; ``crm serve`` runs them in-process unless
``CRM_DISPATCH_INLINE=false``. Any number of either may run against one database:

* deliveries are claimed with ``SKIP LOCKED`` leases (``app.webhooks.dispatcher``);
* a scheduled job (event retention, the dormancy rule, accounting refreshes) runs once per
  interval across all processes: the process whose ``UPDATE scheduled_jobs SET next_run_at
  = now + interval WHERE name = ? AND next_run_at <= now`` changes the row runs it (a second
  process's UPDATE waits for the first's row lock on PostgreSQL, or its write transaction on
  SQLite, then finds the condition false).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from app.accounting.scheduler import run_due as refresh_balances
from app.core.config import Settings
from app.db.base import utcnow
from app.db.session import Database
from app.events import service as events
from app.models import ScheduledJob
from app.partners import dormancy
from app.webhooks.dispatcher import Dispatcher, DispatchLoop

log = structlog.get_logger("crm.worker")

RETENTION_EVERY = 3600.0
DORMANCY_EVERY = 86400.0  # the dormancy rule counts whole days


@dataclass(frozen=True)
class Job:
    name: str
    interval: float  # seconds
    run: Callable[[], Any]


class Jobs:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.jobs = [
            Job(
                "event_retention",
                RETENTION_EVERY,
                lambda: self._in_session(lambda s: events.prune(s, settings.event_retention_days)),
            ),
            Job("dormancy", DORMANCY_EVERY, lambda: dormancy.run_daily(db)),
        ]
        if settings.accounting_sync_interval > 0:
            self.jobs.append(
                Job(
                    "accounting_refresh",
                    float(settings.accounting_sync_interval),
                    lambda: refresh_balances(db, settings),
                )
            )

    def _in_session(self, work: Callable[[Any], Any]) -> Any:
        with self.db.session() as session:
            return work(session)

    def run_due(self) -> list[str]:
        """Run every job whose time has come and that no other process took; returns their
        names."""
        ran = []
        for job in self.jobs:
            if not self.claim(job):
                continue
            try:
                job.run()
                ran.append(job.name)
            except Exception:
                log.exception("job_failed", job=job.name)
        return ran

    def claim(self, job: Job) -> bool:
        now = utcnow()
        with self.db.session() as session:
            if session.get(ScheduledJob, job.name) is None:
                session.add(ScheduledJob(name=job.name, next_run_at=now))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()  # another process made it first
        with self.db.session() as session:
            result = session.execute(
                update(ScheduledJob)
                .where(ScheduledJob.name == job.name, ScheduledJob.next_run_at <= now)
                .values(next_run_at=now + timedelta(seconds=job.interval))
            )
            session.commit()
            return int(getattr(result, "rowcount", 0) or 0) == 1


def start_inline(db: Database, settings: Settings) -> DispatchLoop | None:
    """The dispatcher and jobs of ``crm serve`` (None when they are left to workers)."""
    if not settings.dispatch_inline:
        return None
    loop = DispatchLoop(Dispatcher(db, settings), Jobs(db, settings))
    loop.start()
    return loop


def run_worker(db: Database, settings: Settings, *, once: bool = False) -> None:
    """``crm worker``: rounds until SIGTERM or SIGINT, then finish the attempts under way."""
    dispatcher = Dispatcher(db, settings)
    jobs = Jobs(db, settings)
    if once:
        jobs.run_due()
        dispatcher.drain()
        dispatcher.close()
        return
    loop = DispatchLoop(dispatcher, jobs)
    stopped = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("worker_started", concurrency=settings.dispatch_concurrency)
    loop.start()
    stopped.wait()
    log.info("worker_stopping")
    loop.stop(timeout=settings.webhook_timeout + 5)
