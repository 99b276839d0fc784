"""Accounting use-cases: the connection, balance refreshes (sync runs) and balance pushes.

A refresh never holds a database transaction while it talks to the accounting system: it
fetches every balance first, then applies them all in one transaction, so a run that fails
part-way stores nothing and a repeated run gives identical balances. At most one run per
company is ``running`` at a time (a partial unique index, across every server process); a run
whose process died, or that stopped reporting, is marked failed.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.accounting.providers import REGISTRY
from app.accounting.providers.base import (
    AccountingProvider,
    Connection,
    ProviderContext,
    ProviderError,
    RetryPolicy,
)
from app.accounting.repository import AccountingRepository
from app.accounting.schemas import BalancePush, BalancePushResult, SyncRunRead
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
from app.models.enums import SyncRunStatus
from app.partners import events as partner_events
from app.partners.credit import is_exceeded

log = structlog.get_logger("crm.accounting")

HEARTBEAT_EVERY = 5.0  # seconds between heartbeats while fetching
PUSH_LOCK_LIMIT = 10_000  # up to this many balances, only their partners are locked


ProviderFactory = Callable[[Connection, ProviderContext], AccountingProvider]


def _this_runner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def open_provider(connection: Connection, context: ProviderContext) -> AccountingProvider:
    spec = REGISTRY.get(connection.provider)
    if spec is None:
        raise ProviderError("unknown_provider", f"No provider named {connection.provider!r}.")
    return spec.open(connection, context)


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        request_timeout=settings.accounting_request_timeout,
        attempts=settings.accounting_retry_attempts,
        max_wait=settings.accounting_retry_max_wait,
        connect_timeout=settings.accounting_connect_timeout,
        read_timeout=settings.accounting_read_timeout,
    )


# -- the connection ----------------------------------------------------------------------


def get_connection(*, session: Session, company_id: uuid.UUID) -> AccountingConnection:
    connection = AccountingRepository(session, company_id).connection()
    if connection is None:
        raise NotFound("No accounting system is connected.", code="accounting_not_connected")
    return connection


def _checked_url(outbound: OutboundPolicy, field: str, url: str) -> str:
    url = url.rstrip("/")
    try:
        outbound.check_url(url)
    except DestinationNotAllowed:
        raise destination_not_allowed(field, allow_http=outbound.allow_http) from None
    return url


def put_connection(
    *,
    session: Session,
    company_id: uuid.UUID,
    data: Any,
    secret_key: str,
    outbound: OutboundPolicy,
) -> AccountingConnection:
    """Store the connection (``data``: the provider's PUT body). Stored credentials are kept
    for the fields a request leaves out, but only while the destination stays the same: a new
    provider, ``base_url`` or ``token_url`` needs every credential again, so no stored secret
    can be sent anywhere but where it was meant to go. URLs left out keep the stored ones (of
    the same provider), else the provider's defaults."""
    spec = REGISTRY[data.provider]
    repo = AccountingRepository(session, company_id)
    connection = repo.connection(for_update=True)
    same_provider = connection is not None and connection.provider == spec.name
    stored_base = connection.base_url if connection is not None and same_provider else None
    stored_token = connection.token_url if connection is not None and same_provider else None
    base_url = _checked_url(outbound, "base_url", data.base_url or stored_base or spec.base_url)
    token_url: str | None = None
    if spec.token_url is not None:
        token_url = _checked_url(
            outbound, "token_url", data.token_url or stored_token or spec.token_url
        )
    given = {
        name: value for name in spec.credentials if (value := getattr(data, name, None)) is not None
    }
    same_destination = same_provider and stored_base == base_url and stored_token == token_url
    credentials: dict[str, str] = {}
    if connection is not None and same_destination and len(given) < len(spec.credentials):
        # Keep the stored credentials that this request leaves out.
        stored = secrets.decrypt(secret_key, connection.credentials)
        credentials = {n: stored[n] for n in spec.credentials if n in stored}
    credentials.update(given)
    missing = [n for n in spec.credentials if n not in credentials]
    if missing:
        if connection is None:
            detail = "A new connection needs every credential."
        elif same_destination:
            detail = "The stored connection lacks credentials; send every one."
        else:
            detail = "Changing the provider, base_url or token_url needs every credential again."
        raise ValidationFailed(
            detail,
            code="credentials_required",
            errors=[FieldError(("body", n), "required", "credentials_required") for n in missing],
        )
    now = utcnow()
    if connection is None:
        connection = AccountingConnection(company_id=company_id, created_at=now)
        session.add(connection)
    connection.provider = spec.name
    connection.base_url = base_url
    connection.token_url = token_url
    connection.enabled = data.enabled
    connection.credentials = secrets.encrypt(secret_key, credentials)
    connection.updated_at = now
    session.commit()
    return connection


def connection_read(connection: AccountingConnection, secret_key: str) -> dict[str, Any]:
    """The connection as GET shows it: never a credential, only whether each is set."""
    spec = REGISTRY.get(connection.provider)
    try:
        stored = secrets.decrypt(secret_key, connection.credentials)
    except secrets.SecretKeyMissing:
        stored = {}
    return {
        "provider": connection.provider,
        "base_url": connection.base_url,
        "token_url": connection.token_url,
        "enabled": connection.enabled,
        "updated_at": connection.updated_at,
        **{f"{n}_set": bool(stored.get(n)) for n in (spec.credentials if spec else ())},
    }


class _RotatedStore:
    """Where a run puts credentials that rotated (a new refresh token): at once, in a short
    transaction of its own, whatever becomes of the run. Compare-and-set: only while the
    stored connection is the one the run read (same provider and URLs) and still holds the
    values being replaced; otherwise an admin's newer PUT wins, and the run, whose balances
    come from a grant no longer connected, fails (``connection_changed``). The connection's
    ``updated_at`` stays: it tells when an admin last changed it."""

    def __init__(self, db: Database, company_id: uuid.UUID, read: Connection, key: str) -> None:
        self.db = db
        self.company_id = company_id
        self.read = read
        self.key = key
        self.refused = False

    def __call__(self, changed: dict[str, str], replaced: dict[str, str]) -> None:
        with self.db.session() as session:
            connection = AccountingRepository(session, self.company_id).connection(for_update=True)
            stored = secrets.decrypt(self.key, connection.credentials) if connection else {}
            if (
                connection is None
                or not _same_destination(connection, self.read)
                or any(stored.get(name) != value for name, value in replaced.items())
            ):
                self.refused = True
                log.warning("rotated_credentials_not_stored", reason="connection changed")
                return
            stored.update(changed)
            connection.credentials = secrets.encrypt(self.key, stored)
            session.commit()


def _same_destination(connection: AccountingConnection, read: Connection) -> bool:
    return (connection.provider, connection.base_url, connection.token_url) == (
        read.provider,
        read.base_url,
        read.token_url,
    )


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


def read_connection(db: Database, company_id: uuid.UUID, settings: Settings) -> Connection:
    """The stored connection, its credentials decrypted, in a read transaction of its own."""
    with db.session(write=False) as session:
        stored = AccountingRepository(session, company_id).connection()
        if stored is None:
            raise ProviderError("accounting_not_connected", "No accounting system is connected.")
        return Connection(
            provider=stored.provider,
            base_url=stored.base_url,
            token_url=stored.token_url,
            credentials=secrets.decrypt(settings.secret_key, stored.credentials),
        )


def check_connection(
    *, db: Database, company_id: uuid.UUID, settings: Settings, provider_factory: Any = None
) -> None:
    """Prove the stored credentials (one small read, a token refresh stored as a run stores
    it); raises ProviderError with the run's codes."""
    connection = read_connection(db, company_id, settings)
    context = ProviderContext(
        store_credentials=_RotatedStore(db, company_id, connection, settings.secret_key),
        policy=retry_policy(settings),
        outbound=settings.outbound_policy,
    )
    deadline = time.monotonic() + settings.accounting_run_timeout
    with (provider_factory or open_provider)(connection, context) as provider:
        provider.check_credentials(deadline=deadline)


FOREIGN_CURRENCY_SHOWN = 100  # customer refs a foreign_currency warning lists


def _warnings(records: Mapping[str, str | None], base_currency: str) -> list[dict[str, Any]]:
    """What a run stored as reported but a reader should know: balances in another currency
    than the company's (Xero's ``Outstanding`` is not converted)."""
    foreign = sorted(
        ref for ref, currency in records.items() if currency not in (None, base_currency)
    )
    if not foreign:
        return []
    return [
        {
            "code": "foreign_currency",
            "message": f"{len(foreign)} balance(s) are in another currency than "
            f"{base_currency}; they were stored as the accounting system reports them.",
            "customer_refs": foreign[:FOREIGN_CURRENCY_SHOWN],
        }
    ]


def execute_run(
    *,
    db: Database,
    company_id: uuid.UUID,
    run_id: uuid.UUID,
    settings: Settings,
    provider_factory: ProviderFactory = open_provider,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Fetch every balance (no transaction open), then apply them all in one transaction."""
    fetched: dict[str, Decimal] = {}
    currencies: dict[str, str | None] = {}
    started = time.monotonic()
    try:
        connection = read_connection(db, company_id, settings)
        # The read transaction is over before the provider is called.
        store = _RotatedStore(db, company_id, connection, settings.secret_key)
        last_beat = time.monotonic()

        def beat() -> None:
            """A heartbeat every few seconds: per record, and per answer of the provider
            (a provider may read many pages before its first record)."""
            nonlocal last_beat
            now = time.monotonic()
            if now - started > settings.accounting_run_timeout:
                raise ProviderError("run_timeout", "The refresh took longer than allowed.")
            if now - last_beat > HEARTBEAT_EVERY:
                _heartbeat(db, company_id, run_id, len(fetched))
                last_beat = now
                if progress:
                    progress(len(fetched))

        context = ProviderContext(
            store_credentials=store,
            policy=retry_policy(settings),
            outbound=settings.outbound_policy,
            heartbeat=beat,
        )
        deadline = started + settings.accounting_run_timeout
        with provider_factory(connection, context) as provider:
            for record in provider.balances(deadline=deadline):
                fetched[record.customer_ref] = record.balance
                currencies[record.customer_ref] = record.currency
                beat()
        with db.session() as session:
            company = session.get(Company, company_id)
            assert company is not None
            repo = AccountingRepository(session, company_id)
            run = repo.run(run_id)
            if run is None or run.status != SyncRunStatus.running.value:
                raise ProviderError("run_abandoned", "The run was marked failed meanwhile.")
            now_stored = repo.connection()
            if store.refused or now_stored is None or not _same_destination(now_stored, connection):
                raise ProviderError(
                    "connection_changed",
                    "The connection was changed while the refresh ran; its balances were not "
                    "stored. Start a new refresh.",
                )
            applied = apply_balances(
                session=session, company=company, balances=fetched, synced_at=utcnow()
            )
            run.status = SyncRunStatus.succeeded.value
            run.fetched = len(fetched)
            run.updated = applied.updated
            run.unchanged = applied.unchanged
            run.unmatched = len(applied.unmatched_refs)
            warnings = _warnings(currencies, company.base_currency)
            run.warnings = json.dumps(warnings) if warnings else None
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
