"""The dispatcher: turns committed events into deliveries and sends the due ones.

Any number of dispatchers may run side by side (``crm worker`` processes on several machines,
and one inside ``crm serve`` unless ``CRM_DISPATCH_INLINE=false``); nothing is sent twice at
the same time and nothing is lost when a process dies:

* **Fan-out.** Each endpoint keeps the last event number it has turned into deliveries
  (``position``). A round reads which companies have enabled endpoints behind their event
  counter, then takes them one company at a time: lock that company's endpoints that are
  behind (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: another dispatcher takes the others; on
  SQLite the write transaction is the one lock), insert a delivery per matching event up to
  the counter read first (every event up to it is committed: see ``app.events.outbox``), and
  move the position, all in one transaction.
* **Claim.** A round reads which companies have due pending deliveries (oldest first) and
  shares its capacity between them; each company's share is taken (``SKIP LOCKED``) and
  leased in one short transaction: ``next_attempt_at`` moves past the attempt's longest time
  with a fresh ``claim`` token. Another dispatcher skips them until the lease ends; if this
  one dies, the lease ends and another attempts them again (at least once). Every locking
  statement names one company, as a database distributed by company needs (docs/scale.md).
* **Send and record.** Outside any transaction: POST the envelope, signed (Standard
  Webhooks), through the one outbound policy. The outcome is stored only while the claim is
  still this attempt's.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import and_, func, insert, select
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook as Signer

from app.core.config import Settings
from app.core.outbound import (
    DestinationNotAllowed,
    GuardedTransport,
    ResponseTooLarge,
    read_body,
)
from app.db.base import utcnow
from app.db.session import Database
from app.events.metrics import DELIVERIES, DELIVERY_LATENCY, OLDEST_PENDING
from app.events.outbox import EVENT_SEQUENCE
from app.events.service import envelope
from app.models import Company, Event, NumberSequence, Webhook, WebhookDelivery
from app.webhooks.schemas import DeliveryStatus
from app.webhooks.service import event_types_of, signing_secrets

log = structlog.get_logger("crm.webhooks")

MAX_ANSWER_BYTES = 64 * 1024
FAN_OUT_BATCH = 5000
# Companies fanned out per round (each in a transaction of its own).
FAN_OUT_COMPANIES = 100
# A claimed attempt is another dispatcher's to retry after the receiver's timeout plus this
# margin (for the claim, the sending and the recording around it), at most 30 s.
MAX_LEASE_MARGIN = 30.0
GONE_REASON = "The receiver answered 410 Gone."


@dataclass(frozen=True)
class Claimed:
    company_id: uuid.UUID
    id: uuid.UUID
    claim: uuid.UUID
    url: str
    event_id: str
    body: str | None  # None: the event is no longer kept
    secrets: list[str]


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Dispatcher:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.transport = transport  # tests only: an in-process receiver
        self.pool = ThreadPoolExecutor(
            max_workers=settings.dispatch_concurrency, thread_name_prefix="webhook-delivery"
        )
        self.postgres = db.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    # --- one round ------------------------------------------------------------------------

    def run_once(self) -> int:
        """Fan out, then send what is due (at most ``dispatch_concurrency`` at a time);
        returns how many attempts were made."""
        self.fan_out()
        claimed = self.claim(self.settings.dispatch_concurrency)
        if claimed:
            list(self.pool.map(self.attempt, claimed))
        self._measure_backlog()
        return len(claimed)

    def drain(self, rounds: int = 100) -> int:
        """Rounds until nothing is due (tests and ``crm worker --once``)."""
        total = 0
        for _ in range(rounds):
            done = self.run_once()
            total += done
            if not done:
                break
        return total

    def fan_out(self) -> int:
        """Turn committed events into deliveries, one company at a time: the companies with an
        endpoint behind are read first (no lock), then each is fanned out in a transaction of
        its own that locks only its endpoints."""
        counter = _event_counter()
        with self.db.session(write=False) as session:
            companies = session.scalars(
                select(Webhook.company_id)
                .join(counter, _counter_of(counter))
                .where(Webhook.enabled.is_(True), Webhook.position < counter.c.last_value)
                .distinct()
                .limit(FAN_OUT_COMPANIES)
            ).all()
        return sum(self._fan_out_company(company_id) for company_id in companies)

    def _fan_out_company(self, company_id: uuid.UUID) -> int:
        made = 0
        counter = _event_counter()
        with self.db.session() as session:
            stmt = (
                select(Webhook, counter.c.last_value)
                .join(counter, _counter_of(counter))
                .where(
                    Webhook.company_id == company_id,
                    Webhook.enabled.is_(True),
                    Webhook.position < counter.c.last_value,
                )
                .order_by(Webhook.id)
            )
            if self.postgres:
                stmt = stmt.with_for_update(of=Webhook, skip_locked=True)
            now = utcnow()
            for webhook, last in session.execute(stmt).all():
                types = event_types_of(webhook)
                query = (
                    select(Event.seq, Event.id, Event.type)
                    .where(
                        Event.company_id == company_id,
                        Event.seq > webhook.position,
                        Event.seq <= last,
                    )
                    .order_by(Event.seq)
                    .limit(FAN_OUT_BATCH)
                )
                events = session.execute(query).all()
                rows = [
                    {
                        "company_id": company_id,
                        "id": uuid.uuid4(),
                        "webhook_id": webhook.id,
                        "event_seq": seq,
                        "event_id": identifier,
                        "event_type": type_,
                        "status": DeliveryStatus.pending.value,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for seq, identifier, type_ in events
                    if not types or type_ in types
                ]
                if rows:
                    session.execute(insert(WebhookDelivery), rows)
                    made += len(rows)
                webhook.position = events[-1].seq if len(events) == FAN_OUT_BATCH else last
            session.commit()
        return made

    def claim(self, limit: int) -> list[Claimed]:
        """Up to ``limit`` due deliveries, shared fairly between the companies that have
        some due: the companies are read first (no lock, oldest due first), then each claims
        its share in a transaction of its own. A company with a large backlog therefore does
        not hold back another's next event, and every locking statement names one company
        (one shard when the tables are distributed by company: docs/scale.md)."""
        now = utcnow()
        timeout = self.settings.webhook_timeout
        lease = timedelta(seconds=timeout + min(MAX_LEASE_MARGIN, timeout))
        with self.db.session(write=False) as session:
            oldest = func.min(WebhookDelivery.next_attempt_at)
            waiting = list(
                session.scalars(
                    select(WebhookDelivery.company_id)
                    .where(
                        WebhookDelivery.status == DeliveryStatus.pending.value,
                        WebhookDelivery.next_attempt_at <= now,
                    )
                    .group_by(WebhookDelivery.company_id)
                    .order_by(oldest, WebhookDelivery.company_id)
                    .limit(limit)
                ).all()
            )
        claimed: list[Claimed] = []
        # Rounds of equal shares: a company that took its whole share may take more of what
        # the others left; one that took less has nothing more due (or it is locked).
        while waiting and len(claimed) < limit:
            share = max(1, (limit - len(claimed)) // len(waiting))
            more = []
            for company_id in waiting:
                take = min(share, limit - len(claimed))
                if take <= 0:
                    break
                got = self._claim_company(company_id, take, now, lease)
                claimed.extend(got)
                if len(got) == take:
                    more.append(company_id)
            waiting = more
        return claimed

    def _claim_company(
        self, company_id: uuid.UUID, limit: int, now: datetime, lease: timedelta
    ) -> list[Claimed]:
        with self.db.session() as session:
            stmt = (
                select(WebhookDelivery, Webhook)
                .join(
                    Webhook,
                    and_(
                        Webhook.company_id == WebhookDelivery.company_id,
                        Webhook.id == WebhookDelivery.webhook_id,
                    ),
                )
                .where(
                    WebhookDelivery.company_id == company_id,
                    WebhookDelivery.status == DeliveryStatus.pending.value,
                    WebhookDelivery.next_attempt_at <= now,
                    Webhook.enabled.is_(True),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            )
            if self.postgres:
                stmt = stmt.with_for_update(of=WebhookDelivery, skip_locked=True)
            claimed = []
            for delivery, webhook in session.execute(stmt).all():
                token = uuid.uuid4()
                delivery.claim = token
                delivery.next_attempt_at = now + lease
                claimed.append(
                    Claimed(
                        company_id=delivery.company_id,
                        id=delivery.id,
                        claim=token,
                        url=webhook.url,
                        event_id=delivery.event_id,
                        body=self._body(session, delivery),
                        secrets=signing_secrets(webhook, self.settings.secret_key, now),
                    )
                )
            session.commit()
        return claimed

    def _body(self, session: Session, delivery: WebhookDelivery) -> str | None:
        if delivery.payload is not None:
            return delivery.payload
        event = session.get(Event, (delivery.company_id, delivery.event_seq))
        if event is None:
            return None
        slug = session.scalar(select(Company.slug).where(Company.id == delivery.company_id))
        return envelope(event, slug or "").model_dump_json()

    # --- one attempt ----------------------------------------------------------------------

    def attempt(self, item: Claimed) -> None:
        if item.body is None:
            outcome = Outcome(None, "The event is no longer kept (older than the retention).")
            self.record(item, outcome, final=True)
            return
        began = time.monotonic()
        outcome = self.send(item)
        DELIVERY_LATENCY.observe(time.monotonic() - began)
        self.record(item, outcome)

    def send(self, item: Claimed) -> Outcome:
        sent_at = datetime.now(UTC)
        signatures = " ".join(
            Signer(secret).sign(item.event_id, sent_at, item.body or "") for secret in item.secrets
        )
        headers = {
            "Content-Type": "application/json",
            "webhook-id": item.event_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signatures,
            "User-Agent": "crm-overview-webhooks",
        }
        timeout = self.settings.webhook_timeout
        deadline = time.monotonic() + timeout
        policy = self.settings.outbound_policy
        transport = self.transport or GuardedTransport(policy)
        client = policy.client(
            base_url=item.url, timeout=httpx.Timeout(timeout), transport=transport
        )
        # httpx bounds each connect, write and read by the timeout, not the whole attempt; a
        # receiver that trickles its answer would outlive the claim's lease. At the deadline
        # the watchdog ends the connection (a read waiting on it fails at once).
        abort = getattr(transport, "abort", client.close)
        watchdog = threading.Timer(timeout, abort)
        watchdog.daemon = True
        watchdog.start()
        try:
            with client:
                request = client.build_request("POST", item.url, content=item.body, headers=headers)
                response = client.send(request, stream=True)
                answered_at = time.monotonic()
                # The status is the outcome; the body is read (bounded) only to end the
                # exchange cleanly, and what it says does not matter.
                with contextlib.suppress(Exception):
                    read_body(response, max_bytes=MAX_ANSWER_BYTES, deadline=deadline)
                response.close()
            if answered_at > deadline:  # the status came too late to count
                return Outcome(None, f"No answer within {timeout:g} seconds.")
            if 200 <= response.status_code < 300:
                return Outcome(response.status_code, None)
            return Outcome(response.status_code, f"The receiver answered {response.status_code}.")
        except httpx.TimeoutException:
            return Outcome(None, f"No answer within {timeout:g} seconds.")
        except (httpx.TransportError, RuntimeError):
            if time.monotonic() >= deadline:
                return Outcome(None, f"No answer within {timeout:g} seconds.")
            return Outcome(None, "The receiver could not be reached.")
        except Exception as exc:
            return Outcome(None, _refusal(exc))
        finally:
            watchdog.cancel()

    def record(self, item: Claimed, outcome: Outcome, *, final: bool = False) -> None:
        now = utcnow()
        waits = self.settings.webhook_retry_waits
        with self.db.session() as session:
            delivery = session.scalar(
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.company_id == item.company_id,
                    WebhookDelivery.id == item.id,
                    WebhookDelivery.claim == item.claim,
                )
                .with_for_update()
            )
            if delivery is None:
                return  # redelivered or deleted meanwhile: that attempt is not this one's
            webhook = session.scalar(
                select(Webhook)
                .where(Webhook.company_id == item.company_id, Webhook.id == delivery.webhook_id)
                .with_for_update()
            )
            delivery.claim = None
            delivery.attempts += 1
            delivery.last_status_code = outcome.status_code
            delivery.last_error = outcome.error
            if outcome.delivered:
                delivery.status = DeliveryStatus.succeeded.value
                delivery.delivered_at = now
                delivery.next_attempt_at = None
                if webhook is not None:
                    webhook.failure_streak = 0
                DELIVERIES.labels("succeeded").inc()
            elif outcome.status_code == 410:
                delivery.status = DeliveryStatus.failed.value
                delivery.next_attempt_at = None
                if webhook is not None:
                    _disable(webhook, GONE_REASON, now)
                DELIVERIES.labels("gone").inc()
            elif not final and delivery.attempts <= len(waits):
                delivery.next_attempt_at = now + timedelta(seconds=waits[delivery.attempts - 1])
                DELIVERIES.labels("retry").inc()
            else:
                delivery.status = DeliveryStatus.failed.value
                delivery.next_attempt_at = None
                DELIVERIES.labels("failed").inc()
                if webhook is not None and webhook.enabled:
                    webhook.failure_streak += 1
                    limit = self.settings.webhook_disable_after
                    if webhook.failure_streak >= limit:
                        _disable(
                            webhook,
                            f"{limit} events in a row could not be delivered.",
                            now,
                        )
            session.commit()
        log.info(
            "webhook_attempt",
            delivery_id=str(item.id),
            status_code=outcome.status_code,
            delivered=outcome.delivered,
        )

    def _measure_backlog(self) -> None:
        with self.db.session(write=False) as session:
            oldest = session.scalar(
                select(func.min(WebhookDelivery.created_at)).where(
                    WebhookDelivery.status == DeliveryStatus.pending.value
                )
            )
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        OLDEST_PENDING.set((utcnow() - oldest).total_seconds() if oldest else 0)


def _event_counter() -> Any:
    """Each company's event counter (the last event number handed out)."""
    return NumberSequence.__table__.alias("counter")


def _counter_of(counter: Any) -> Any:
    return and_(counter.c.company_id == Webhook.company_id, counter.c.kind == EVENT_SEQUENCE)


def _disable(webhook: Webhook, reason: str, now: datetime) -> None:
    webhook.enabled = False
    webhook.disabled_reason = reason
    webhook.updated_at = now
    log.warning("webhook_disabled", webhook_id=str(webhook.id), reason=reason)


def _refusal(exc: Exception) -> str:

    if isinstance(exc, DestinationNotAllowed):
        return "The destination is not allowed."
    if isinstance(exc, ResponseTooLarge):
        return "The answer was too large."
    return "The delivery failed."


class DispatchLoop:
    """Rounds of a dispatcher (and of the scheduled jobs) in a thread, until stopped."""

    def __init__(self, dispatcher: Dispatcher, jobs: Any | None = None) -> None:
        self.dispatcher = dispatcher
        self.jobs = jobs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name="dispatcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the attempts under way (nothing is lost if they cannot: their lease ends
        and another dispatcher retries them), then stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
        self.dispatcher.close()

    def run(self) -> None:
        interval = self.dispatcher.settings.dispatch_interval
        while not self._stop.is_set():
            busy = False
            try:
                if self.jobs is not None:
                    self.jobs.run_due()
                busy = self.dispatcher.run_once() > 0
            except Exception:
                log.exception("dispatch_round_failed")
            if not busy:
                self._stop.wait(interval)
