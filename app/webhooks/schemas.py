"""Webhook endpoints and their deliveries."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from pydantic import Field

from app.core.schemas import RequestModel, ResponseModel, omittable
from app.core.types import StrictBool, Text500, UTCDateTime, WebUrl
from app.events.types import FeedEventType

EventTypes = list[FeedEventType]


class DeliveryStatus(StrEnum):
    pending = "pending"
    succeeded = "succeeded"
    failed = "failed"


class WebhookCreate(RequestModel):
    url: WebUrl = Field(description="https:// (http:// only where the server allows it)")
    event_types: EventTypes = Field(
        default_factory=list, max_length=20, description="Only these types; empty: all"
    )
    enabled: StrictBool = True
    description: Text500 | None = None


class WebhookUpdate(RequestModel):
    """Only the fields sent change. Enabling an endpoint the service disabled clears its
    `disabled_reason`."""

    url: WebUrl = omittable()
    event_types: EventTypes = omittable(max_length=20)
    enabled: StrictBool = omittable()
    description: Text500 | None = None


class WebhookRead(ResponseModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    enabled: bool
    description: str | None
    created_at: UTCDateTime
    disabled_reason: str | None = Field(description="null, or why the service disabled it")


class WebhookWithSecret(WebhookRead):
    secret: str = Field(
        description="whsec_<base64>: shown by the create and by rotate-secret only; verify "
        "the webhook-signature header with it (Standard Webhooks)"
    )


class DeliveryRead(ResponseModel):
    id: uuid.UUID
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: UTCDateTime | None
    delivered_at: UTCDateTime | None
    created_at: UTCDateTime


def read_of(webhook: Any, event_types: list[str]) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "url": webhook.url,
        "event_types": event_types,
        "enabled": webhook.enabled,
        "description": webhook.description,
        "created_at": webhook.created_at,
        "disabled_reason": webhook.disabled_reason,
    }


class DeliveryFilter(RequestModel):
    status: DeliveryStatus | None = None
