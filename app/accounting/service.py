"""Accounting use-cases: the connection, balance refreshes (sync runs) and balance pushes.

A refresh never holds a database transaction while it talks to the accounting system: it
fetches every balance first, then applies them all in one transaction, so a run that fails
part-way stores nothing and a repeated run gives identical balances. At most one run per
company is ``running`` at a time (a partial unique index, across every server process); a run
whose process died, or that stopped reporting, is marked failed.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.accounting.providers import economic
from app.accounting.providers.base import AccountingProvider, ProviderError, RetryPolicy
from app.accounting.repository import AccountingRepository
from app.accounting.schemas import BalancePush, BalancePushResult, ConnectionPut, SyncRunRead
from app.core import secrets
from app.core.config import Settings
from app.core.errors import (
    Conflict,
    FieldError,
    NotFound,
    ValidationFailed,
    destination_not_allowed,
)
from app.core.outbound import DestinationNotAllowed, OutboundPolicy
from app.core.pagination import PageRequest, RawPage
from app.db.base import utcnow
from app.db.session import Database
from app.events import outbox
from app.events.types import EventType
from app.idempotency.service import Idempotency
from app.models import AccountingConnection, Company, SyncRun
from app.models.enums import AccountingProviderName, SyncRunStatus
from app.partners import events as partner_events
from app.partners.credit import is_exceeded

log = structlog.get_logger("crm.accounting")

HEARTBEAT_EVERY = 5.0  # seconds between heartbeats while fetching
PUSH_LOCK_LIMIT = 10_000  # up to this many balances, only their partners are locked


@dataclass(frozen=True)
class ProviderConfig:
    """What a provider needs, detached from the database."""

    provider: str
    base_url: str
    credentials: dict[str, str]


ProviderFactory = Callable[[ProviderConfig, Settings], AccountingProvider]


def _this_runner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def default_provider(config: ProviderConfig, settings: Settings) -> AccountingProvider:
    policy = RetryPolicy(
        request_timeout=settings.accounting_request_timeout,
        attempts=settings.accounting_retry_attempts,
        max_wait=settings.accounting_retry_max_wait,
        connect_timeout=settings.accounting_connect_timeout,
        read_timeout=settings.accounting_read_timeout,
    )
    if config.provider == AccountingProviderName.economic.value:
        return economic.EconomicProvider(
            base_url=config.base_url,
            app_secret_token=config.credentials["app_secret_token"],
            agreement_grant_token=config.credentials["agreement_grant_token"],
            policy=policy,
            outbound=settings.outbound_policy,
        )
    raise ProviderError("unknown_provider", f"No provider named {config.provider!r}.")


# -- the connection ----------------------------------------------------------------------


def get_connection(*, session: Session, company_id: uuid.UUID) -> AccountingConnection:
    connection = AccountingRepository(session, company_id).connection()
    if connection is None:
        raise NotFound("No accounting system is connected.", code="accounting_not_connected")
    return connection


CREDENTIAL_FIELDS = ("app_secret_token", "agreement_grant_token")


def put_connection(
    *,
    session: Session,
    company_id: uuid.UUID,
    data: ConnectionPut,
    secret_key: str,
    outbound: OutboundPolicy,
) -> AccountingConnection:
    """Store the connection. Stored credentials are kept for the fields a request leaves out,
    but only while the destination stays the same: a new provider or ``base_url`` needs every
    credential again, so no stored secret can be sent anywhere but where it was meant to go."""
    base_url = str(data.base_url).rstrip("/")
    try:
        outbound.check_url(base_url)
    except DestinationNotAllowed:
        raise destination_not_allowed("base_url", allow_http=outbound.allow_http) from None
    repo = AccountingRepository(session, company_id)
    connection = repo.connection(for_update=True)
    given = {
        name: value for name in CREDENTIAL_FIELDS if (value := getattr(data, name)) is not None
    }
    same_destination = (
        connection is not None
        and connection.provider == data.provider.value
        and connection.base_url == base_url
    )
    credentials: dict[str, str] = {}
    if connection is not None and same_destination and len(given) < len(CREDENTIAL_FIELDS):
        # Keep the stored credentials that this request leaves out.
        credentials = secrets.decrypt(secret_key, connection.credentials)
    credentials.update(given)
    missing = [n for n in CREDENTIAL_FIELDS if n not in credentials]
    if missing:
        detail = (
            "A new connection needs every credential."
            if connection is None
            else "Changing the provider or base_url needs every credential again."
        )
        raise ValidationFailed(
            detail,
            code="credentials_required",
            errors=[FieldError(("body", n), "required", "credentials_required") for n in missing],
        )
    now = utcnow()
    if connection is None:
        connection = AccountingConnection(company_id=company_id, created_at=now)
        session.add(connection)
    connection.provider = data.provider.value
    connection.base_url = base_url
    connection.enabled = data.enabled
    connection.credentials = secrets.encrypt(secret_key, credentials)
    connection.updated_at = now
    session.commit()
    return connection


def credentials_set(connection: AccountingConnection, secret_key: str) -> dict[str, bool]:
    try:
        stored = secrets.decrypt(secret_key, connection.credentials)
    except secrets.SecretKeyMissing:
        stored = {}
    return {f"{n}_set": bool(stored.get(n)) for n in CREDENTIAL_FIELDS}


# -- sync runs ---------------------------------------------------------------------------


def _runner_alive(runner: str) -> bool:
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine: only its heartbeat tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ended(session: Session, run: SyncRun) -> None:
    """The event of a refresh that ended (its transaction commits it)."""
    kind = (
        EventType.accounting_sync_succeeded
        if run.status == SyncRunStatus.succeeded.value
        else EventType.accounting_sync_failed
    )
    outbox.emit(session, run.company_id, kind, SyncRunRead.of(run).model_dump(mode="json"))


def mark_abandoned(session: Session, company_id: uuid.UUID, settings: Settings) -> int:
    """Fail runs whose process is gone or whose heartbeat stopped; returns how many."""
    cutoff = utcnow() - timedelta(seconds=settings.accounting_heartbeat_timeout)
    count = 0
    for run in AccountingRepository(session, company_id).running():
        if run.heartbeat_at < cutoff or not _runner_alive(run.runner):
            run.status = SyncRunStatus.failed.value
            run.finished_at = utcnow()
            run.error_code = "run_abandoned"
            run.error_message = "The process running this refresh stopped before it finished."
            _ended(session, run)
            count += 1
    if count:
        session.commit()
    return count


def start_run(
    *, session: Session, company_id: uuid.UUID, trigger: str, settings: Settings
) -> SyncRun:
    mark_abandoned(session, company_id, settings)
    connection = AccountingRepository(session, company_id).connection()
    if connection is None or not connection.enabled:
        raise Conflict(
            "Connect an accounting system (PUT /api/v1/accounting/connection) and enable it first.",
            code="accounting_not_connected",
        )
    now = utcnow()
    run = SyncRun(
        company_id=company_id,
        trigger=trigger,
        runner=_this_runner(),
        started_at=now,
        heartbeat_at=now,
        status=SyncRunStatus.running.value,
    )
    session.add(run)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise Conflict(
            "A balance refresh is already running for this company.", code="sync_already_running"
        ) from exc
    return run


@dataclass
class Applied:
    updated: int
    unchanged: int
    unmatched_refs: list[str]


def apply_balances(
    *,
    session: Session,
    company: Company,
    balances: Mapping[str, Decimal],
    synced_at: datetime,
) -> Applied:
    """Store fetched or pushed balances and re-evaluate credit states (caller commits)."""
    repo = AccountingRepository(session, company.id)
    refs = list(balances) if len(balances) <= PUSH_LOCK_LIMIT else None
    partners = {p.accounting_ref: p for p in repo.partners_with_refs(refs)}
    rows = []
    touched = []
    updated = unchanged = 0
    unmatched: list[str] = []
    for ref, balance in balances.items():
        partner = partners.get(ref)
        if partner is None:
            unmatched.append(ref)
            continue
        known_at = partner.debtor_balance_synced_at
        if known_at is not None and known_at > synced_at:
            unchanged += 1  # a newer balance is stored already: an older one never wins
            continue
        exceeded = is_exceeded(
            balance=balance,
            limit=partner.credit_limit,
            uninvoiced=partner.uninvoiced_total,
            check=company.credit_check,
        )
        changed = partner.debtor_balance != balance or partner.credit_limit_exceeded != exceeded
        updated += changed
        unchanged += not changed
        rows.append(
            {"pid": partner.id, "balance": balance, "exceeded": exceeded, "changed": changed}
        )
        if changed:  # the sync time moving alone is no change a client of the events sees
            touched.append(partner)
    partner_events.touched(session, company.id, touched)
    repo.write_balances(rows, synced_at)
    return Applied(updated=updated, unchanged=unchanged, unmatched_refs=sorted(unmatched))


def _heartbeat(db: Database, company_id: uuid.UUID, run_id: uuid.UUID, fetched: int) -> None:
    with db.session() as session:
        run = AccountingRepository(session, company_id).run(run_id)
        if run is not None and run.status == SyncRunStatus.running.value:
            run.heartbeat_at = utcnow()
            run.fetched = fetched
            session.commit()


def _finish(
    db: Database,
    company_id: uuid.UUID,
    run_id: uuid.UUID,
    *,
    fetched: int,
    error: ProviderError | None = None,
) -> None:
    with db.session() as session:
        run = AccountingRepository(session, company_id).run(run_id)
        if run is None:
            return
        run.status = SyncRunStatus.failed.value if error else SyncRunStatus.succeeded.value
        run.fetched = fetched
        run.finished_at = utcnow()
        if error:
            run.error_code = error.code
            run.error_message = error.message[:1000]
        _ended(session, run)
        session.commit()


def execute_run(
    *,
    db: Database,
    company_id: uuid.UUID,
    run_id: uuid.UUID,
    settings: Settings,
    provider_factory: ProviderFactory = default_provider,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Fetch every balance (no transaction open), then apply them all in one transaction."""
    fetched: dict[str, Decimal] = {}
    started = time.monotonic()
    try:
        with db.session(write=False) as session:
            connection = AccountingRepository(session, company_id).connection()
            if connection is None:
                raise ProviderError("accounting_not_connected", "The connection was removed.")
            config = ProviderConfig(
                provider=connection.provider,
                base_url=connection.base_url,
                credentials=secrets.decrypt(settings.secret_key, connection.credentials),
            )
        # The read transaction is over before the provider is called.
        provider = provider_factory(config, settings)
        deadline = started + settings.accounting_run_timeout
        set_deadline = getattr(provider, "set_deadline", None)
        if set_deadline is not None:
            set_deadline(deadline)
        last_beat = time.monotonic()
        try:
            for record in provider.iter_balances():
                fetched[record.customer_ref] = record.balance
                now = time.monotonic()
                if now - started > settings.accounting_run_timeout:
                    raise ProviderError("run_timeout", "The refresh took longer than allowed.")
                if now - last_beat > HEARTBEAT_EVERY:
                    _heartbeat(db, company_id, run_id, len(fetched))
                    last_beat = now
                    if progress:
                        progress(len(fetched))
        finally:
            close = getattr(provider, "close", None)
            if close:
                close()
        with db.session() as session:
            company = session.get(Company, company_id)
            assert company is not None
            run = AccountingRepository(session, company_id).run(run_id)
            if run is None or run.status != SyncRunStatus.running.value:
                raise ProviderError("run_abandoned", "The run was marked failed meanwhile.")
            applied = apply_balances(
                session=session, company=company, balances=fetched, synced_at=utcnow()
            )
            run.status = SyncRunStatus.succeeded.value
            run.fetched = len(fetched)
            run.updated = applied.updated
            run.unchanged = applied.unchanged
            run.unmatched = len(applied.unmatched_refs)
            run.finished_at = utcnow()
            _ended(session, run)
            session.commit()
        if progress:
            progress(len(fetched))
        log.info(
            "sync_succeeded",
            run_id=str(run_id),
            fetched=len(fetched),
            updated=applied.updated,
            unmatched=len(applied.unmatched_refs),
        )
    except ProviderError as exc:
        log.warning("sync_failed", run_id=str(run_id), code=exc.code)
        _finish(db, company_id, run_id, fetched=len(fetched), error=exc)
    except secrets.SecretKeyMissing as exc:
        _finish(db, company_id, run_id, fetched=0, error=ProviderError(exc.code, exc.detail))
    except Exception:
        # Mark the run failed first: nothing, not even logging, may leave it "running".
        _finish(
            db,
            company_id,
            run_id,
            fetched=len(fetched),
            error=ProviderError("internal_error", "The refresh failed unexpectedly."),
        )
        log.exception("sync_crashed", run_id=str(run_id))


def list_runs(*, session: Session, company_id: uuid.UUID, page: PageRequest) -> RawPage[SyncRun]:
    return AccountingRepository(session, company_id).runs(page)


def get_run(*, session: Session, company_id: uuid.UUID, run_id: uuid.UUID) -> SyncRun:
    run = AccountingRepository(session, company_id).run(run_id)
    if run is None:
        raise NotFound(f"Sync run {run_id} does not exist.", code="sync_run_not_found")
    return run


def push_balances(
    *,
    session: Session,
    company_id: uuid.UUID,
    data: BalancePush,
    idempotency: Idempotency[BalancePushResult] | None = None,
) -> BalancePushResult:
    company = session.scalar(select(Company).where(Company.id == company_id))
    assert company is not None
    applied = apply_balances(
        session=session,
        company=company,
        balances={b.accounting_ref: b.balance for b in data.balances},
        synced_at=data.as_of,
    )
    result = BalancePushResult(
        updated=applied.updated,
        unchanged=applied.unchanged,
        unmatched=len(applied.unmatched_refs),
        unmatched_refs=applied.unmatched_refs,
    )
    if idempotency is not None:
        idempotency.record(session, result)
    session.commit()
    return result
