"""Webhook endpoints: registration, secrets, the delivery log, redelivery and test events.
Each write is one transaction with one commit. Delivering is ``app.webhooks.dispatcher``'s."""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.auth.dependencies import Principal
from app.core import secrets
from app.core.config import Settings
from app.core.errors import Conflict, NotFound, destination_not_allowed
from app.core.outbound import DestinationNotAllowed
from app.core.pagination import PageRequest, RawPage
from app.db.base import utcnow
from app.events.outbox import event_id
from app.events.repository import EventRepository
from app.events.types import EventType
from app.models import Webhook, WebhookDelivery
from app.webhooks.repository import WebhookRepository
from app.webhooks.schemas import DeliveryFilter, DeliveryStatus, WebhookCreate, WebhookUpdate

MAX_WEBHOOKS = 20  # per company
SECRET_BYTES = 24
ROTATION_OVERLAP = timedelta(hours=24)
PURPOSE = "webhook"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(SECRET_BYTES)).decode("ascii")


def _sealed(settings: Settings, secret: str) -> str:
    return secrets.encrypt(settings.secret_key, {"secret": secret}, purpose=PURPOSE)


def signing_secrets(webhook: Webhook, secret_key: str, now: datetime) -> list[str]:
    """The secrets that sign a delivery now: the current one, and for 24 hours after a
    rotation the previous one too."""
    found = [secrets.decrypt(secret_key, webhook.secret, purpose=PURPOSE)["secret"]]
    expires = webhook.previous_secret_expires_at
    if webhook.previous_secret and expires is not None and expires > now:
        found.append(
            secrets.decrypt(secret_key, webhook.previous_secret, purpose=PURPOSE)["secret"]
        )
    return found


def event_types_of(webhook: Webhook) -> list[str]:
    return list(json.loads(webhook.event_types))


def _not_found(webhook_id: uuid.UUID) -> NotFound:
    return NotFound(f"Webhook {webhook_id} does not exist.", code="webhook_not_found")


def _checked_url(url: str, settings: Settings) -> str:
    try:
        settings.outbound_policy.check_url(url)
    except DestinationNotAllowed:
        raise destination_not_allowed("url", allow_http=settings.outbound_allow_http) from None
    return url


def get(*, session: Session, principal: Principal, webhook_id: uuid.UUID) -> Webhook:
    webhook = WebhookRepository(session, principal.company_id).get(webhook_id)
    if webhook is None:
        raise _not_found(webhook_id)
    return webhook


def list_(*, session: Session, principal: Principal, page: PageRequest) -> RawPage[Webhook]:
    return WebhookRepository(session, principal.company_id).list_(page)


@dataclass(frozen=True)
class WithSecret:
    webhook: Webhook
    secret: str


def create(
    *, session: Session, principal: Principal, data: WebhookCreate, settings: Settings
) -> WithSecret:
    url = _checked_url(data.url, settings)
    repo = WebhookRepository(session, principal.company_id)
    if repo.count() >= MAX_WEBHOOKS:
        raise Conflict(
            f"A company can register at most {MAX_WEBHOOKS} webhooks; delete one first.",
            code="webhook_limit_reached",
        )
    secret = new_secret()
    now = utcnow()
    webhook = Webhook(
        company_id=principal.company_id,
        id=uuid.uuid4(),
        url=url,
        description=data.description,
        event_types=json.dumps(sorted({t.value for t in data.event_types})),
        enabled=data.enabled,
        secret=_sealed(settings, secret),
        # It receives the events committed from now on.
        position=EventRepository(session, principal.company_id).last_seq(),
        failure_streak=0,
        created_at=now,
        updated_at=now,
    )
    session.add(webhook)
    session.commit()
    return WithSecret(webhook, secret)


def update(
    *,
    session: Session,
    principal: Principal,
    webhook_id: uuid.UUID,
    data: WebhookUpdate,
    settings: Settings,
) -> Webhook:
    repo = WebhookRepository(session, principal.company_id)
    webhook = repo.get(webhook_id, for_update=True)
    if webhook is None:
        raise _not_found(webhook_id)
    sent = data.model_fields_set
    if not sent:
        return webhook
    if "url" in sent:
        webhook.url = _checked_url(data.url, settings)
    if "event_types" in sent:
        webhook.event_types = json.dumps(sorted({t.value for t in data.event_types}))
    if "description" in sent:
        webhook.description = data.description
    if "enabled" in sent:
        if data.enabled and not webhook.enabled:
            # Enabled again: a fresh start, from the events committed from now on.
            webhook.disabled_reason = None
            webhook.failure_streak = 0
            webhook.position = max(
                webhook.position, EventRepository(session, principal.company_id).last_seq()
            )
        webhook.enabled = data.enabled
    webhook.updated_at = utcnow()
    session.commit()
    return webhook


def delete(*, session: Session, principal: Principal, webhook_id: uuid.UUID) -> None:
    webhook = WebhookRepository(session, principal.company_id).get(webhook_id, for_update=True)
    if webhook is None:
        raise _not_found(webhook_id)
    session.delete(webhook)  # its deliveries go with it (ON DELETE CASCADE)
    session.commit()


def rotate_secret(
    *, session: Session, principal: Principal, webhook_id: uuid.UUID, settings: Settings
) -> WithSecret:
    webhook = WebhookRepository(session, principal.company_id).get(webhook_id, for_update=True)
    if webhook is None:
        raise _not_found(webhook_id)
    secret = new_secret()
    now = utcnow()
    webhook.previous_secret = webhook.secret
    webhook.previous_secret_expires_at = now + ROTATION_OVERLAP
    webhook.secret = _sealed(settings, secret)
    webhook.updated_at = now
    session.commit()
    return WithSecret(webhook, secret)


def deliveries(
    *,
    session: Session,
    principal: Principal,
    webhook_id: uuid.UUID,
    filters: DeliveryFilter,
    page: PageRequest,
) -> RawPage[WebhookDelivery]:
    repo = WebhookRepository(session, principal.company_id)
    if repo.get(webhook_id) is None:
        raise _not_found(webhook_id)
    return repo.deliveries(webhook_id, filters, page)


def _enabled(webhook: Webhook) -> None:
    if not webhook.enabled:
        raise Conflict(
            "The webhook is disabled; enable it (PATCH enabled=true) first.",
            code="webhook_disabled",
        )


def send_test(*, session: Session, principal: Principal, webhook_id: uuid.UUID) -> WebhookDelivery:
    """Queue a ``webhook.test`` event for this endpoint alone (whatever its event_types; not
    in the feed)."""
    webhook = WebhookRepository(session, principal.company_id).get(webhook_id, for_update=True)
    if webhook is None:
        raise _not_found(webhook_id)
    _enabled(webhook)
    now = utcnow()
    identifier = event_id()
    envelope = {
        "id": identifier,
        "type": EventType.webhook_test.value,
        "occurred_at": now.isoformat().replace("+00:00", "Z"),
        "company": principal.company.slug,
        "data": {},
    }
    delivery = WebhookDelivery(
        company_id=principal.company_id,
        id=uuid.uuid4(),
        webhook_id=webhook.id,
        event_seq=None,
        event_id=identifier,
        event_type=EventType.webhook_test.value,
        payload=json.dumps(envelope, separators=(",", ":")),
        status=DeliveryStatus.pending.value,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    session.commit()
    return delivery


def redeliver(
    *, session: Session, principal: Principal, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Queue a delivery again, with a fresh set of attempts."""
    repo = WebhookRepository(session, principal.company_id)
    webhook = repo.get(webhook_id)
    if webhook is None:
        raise _not_found(webhook_id)
    delivery = repo.delivery(webhook_id, delivery_id, for_update=True)
    if delivery is None:
        raise NotFound(f"Delivery {delivery_id} does not exist.", code="delivery_not_found")
    _enabled(webhook)
    delivery.status = DeliveryStatus.pending.value
    delivery.attempts = 0
    delivery.next_attempt_at = utcnow()
    delivery.claim = None
    delivery.delivered_at = None
    session.commit()
    return delivery
