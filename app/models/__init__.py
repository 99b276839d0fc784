"""ORM tables, one file per aggregate; importing this package registers them all."""

from app.models.accounting import AccountingConnection, SyncRun
from app.models.company import Company, NumberSequence
from app.models.event import Event, ScheduledJob, Webhook, WebhookDelivery
from app.models.idempotency import IdempotencyKey
from app.models.partner import Partner, PartnerLocation, PartnerTag, StageChange
from app.models.sales_order import SalesOrder, SalesOrderLine
from app.models.tag import Tag
from app.models.user import ApiToken, User
from app.models.view import SavedView

__all__ = [
    "AccountingConnection",
    "ApiToken",
    "Company",
    "Event",
    "IdempotencyKey",
    "NumberSequence",
    "Partner",
    "PartnerLocation",
    "PartnerTag",
    "SalesOrder",
    "SalesOrderLine",
    "SavedView",
    "ScheduledJob",
    "StageChange",
    "SyncRun",
    "Tag",
    "User",
    "Webhook",
    "WebhookDelivery",
]
