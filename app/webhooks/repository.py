"""Webhook SQL, scoped by company (the dispatcher's cross-company queue: ``dispatcher``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.pagination import PageRequest, RawPage, SortField, Sorting, paginate
from app.models import Webhook, WebhookDelivery
from app.webhooks.schemas import DeliveryFilter

WEBHOOK_SORTING = Sorting(
    fields={"created_at": SortField.of(Webhook.created_at)},
    tiebreak=SortField.of(Webhook.id),
    default="created_at",
)
# Newest first.
DELIVERY_SORTING = Sorting(
    fields={"created_at": SortField.of(WebhookDelivery.created_at)},
    tiebreak=SortField.of(WebhookDelivery.id),
    default="-created_at",
)


@dataclass
class WebhookRepository:
    session: Session
    company_id: uuid.UUID

    def get(self, webhook_id: uuid.UUID, *, for_update: bool = False) -> Webhook | None:
        stmt = select(Webhook).where(
            Webhook.company_id == self.company_id, Webhook.id == webhook_id
        )
        if for_update:
            stmt = stmt.with_for_update()
        return self.session.scalar(stmt.execution_options(populate_existing=True))

    def list_(self, page: PageRequest) -> RawPage[Webhook]:
        stmt = select(Webhook).where(Webhook.company_id == self.company_id)
        return paginate(self.session, stmt, sorting=WEBHOOK_SORTING, request=page)

    def count(self) -> int:
        return len(
            self.session.scalars(
                select(Webhook.id).where(Webhook.company_id == self.company_id)
            ).all()
        )

    def deliveries(
        self, webhook_id: uuid.UUID, f: DeliveryFilter, page: PageRequest
    ) -> RawPage[WebhookDelivery]:
        stmt = select(WebhookDelivery).where(
            WebhookDelivery.company_id == self.company_id,
            WebhookDelivery.webhook_id == webhook_id,
        )
        if f.status is not None:
            stmt = stmt.where(WebhookDelivery.status == f.status.value)
        return paginate(self.session, stmt, sorting=DELIVERY_SORTING, request=page)

    def delivery(
        self, webhook_id: uuid.UUID, delivery_id: uuid.UUID, *, for_update: bool = False
    ) -> WebhookDelivery | None:
        stmt = select(WebhookDelivery).where(
            WebhookDelivery.company_id == self.company_id,
            WebhookDelivery.webhook_id == webhook_id,
            WebhookDelivery.id == delivery_id,
        )
        if for_update:
            stmt = stmt.with_for_update()
        return self.session.scalar(stmt.execution_options(populate_existing=True))
