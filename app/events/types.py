"""The event types (the contract's list, ``../shared/design/integrations.md``)."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    partner_created = "partner.created"
    partner_updated = "partner.updated"
    partner_deleted = "partner.deleted"
    partner_stage_changed = "partner.stage_changed"
    partner_credit_limit_exceeded = "partner.credit_limit_exceeded"
    partner_credit_limit_cleared = "partner.credit_limit_cleared"
    sales_order_created = "sales_order.created"
    sales_order_updated = "sales_order.updated"
    sales_order_delivered = "sales_order.delivered"
    sales_order_invoiced = "sales_order.invoiced"
    sales_order_cancelled = "sales_order.cancelled"
    accounting_sync_succeeded = "accounting.sync.succeeded"
    accounting_sync_failed = "accounting.sync.failed"
    webhook_test = "webhook.test"


# In the feed: every type but the webhook test (sent to one endpoint, never logged).
FeedEventType = StrEnum(  # type: ignore[misc]
    "FeedEventType", {t.name: t.value for t in EventType if t is not EventType.webhook_test}
)
