"""Webhook routes (admin)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from app.auth.dependencies import Admin, SessionDep, SettingsDep
from app.core.errors import problem_responses
from app.core.http import json_response, links
from app.core.pagination import Page, PageRequest, list_params, page_response
from app.models import Webhook, WebhookDelivery
from app.webhooks import service
from app.webhooks.repository import DELIVERY_SORTING, WEBHOOK_SORTING
from app.webhooks.schemas import (
    DeliveryFilter,
    DeliveryRead,
    DeliveryStatus,
    WebhookCreate,
    WebhookRead,
    WebhookUpdate,
    WebhookWithSecret,
    read_of,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])

WebhookId = Annotated[uuid.UUID, Path(description="The webhook's id")]
DeliveryId = Annotated[uuid.UUID, Path(description="The delivery's id")]
NO_STORE = {"Cache-Control": "no-store"}  # the answer holds a secret


async def delivery_filters(
    status: Annotated[
        DeliveryStatus | None, Query(description="Only deliveries in this state")
    ] = None,
) -> DeliveryFilter:
    return DeliveryFilter(status=status)


WebhookList = Annotated[PageRequest[None], Depends(list_params(WEBHOOK_SORTING))]
DeliveryList = Annotated[
    PageRequest[DeliveryFilter], Depends(list_params(DELIVERY_SORTING, filters=delivery_filters))
]


def _read(webhook: Webhook) -> WebhookRead:
    return WebhookRead.model_validate(read_of(webhook, service.event_types_of(webhook)))


def _with_secret(found: service.WithSecret) -> WebhookWithSecret:
    webhook = found.webhook
    return WebhookWithSecret.model_validate(
        {**read_of(webhook, service.event_types_of(webhook)), "secret": found.secret}
    )


def _delivery(delivery: WebhookDelivery) -> DeliveryRead:
    return DeliveryRead.model_validate(delivery)


@router.get(
    "",
    response_model=Page[WebhookRead],
    operation_id="list_webhooks",
    responses=problem_responses(401, 403, 422),
)
def list_webhooks(principal: Admin, session: SessionDep, page: WebhookList) -> Response:
    result = service.list_(session=session, principal=principal, page=page)
    return page_response(result, [_read(w) for w in result.rows])


@router.post(
    "",
    status_code=201,
    response_model=WebhookWithSecret,
    operation_id="create_webhook",
    responses={
        201: links(
            "webhook_id",
            "id",
            "get_webhook",
            "update_webhook",
            "delete_webhook",
            "rotate_webhook_secret",
            "test_webhook",
            "list_webhook_deliveries",
        ),
        **problem_responses(401, 403, 409, 413, 422),
    },
)
def create_webhook(
    principal: Admin, session: SessionDep, settings: SettingsDep, body: WebhookCreate
) -> Response:
    """Register an endpoint. The answer shows its signing `secret`, once."""
    found = service.create(session=session, principal=principal, data=body, settings=settings)
    return json_response(
        _with_secret(found),
        status_code=201,
        headers={"Location": f"{router.prefix}/{found.webhook.id}", **NO_STORE},
    )


@router.get(
    "/{webhook_id}",
    response_model=WebhookRead,
    operation_id="get_webhook",
    responses=problem_responses(401, 403, 404, 422),
)
def get_webhook(principal: Admin, session: SessionDep, webhook_id: WebhookId) -> Response:
    return json_response(
        _read(service.get(session=session, principal=principal, webhook_id=webhook_id))
    )


@router.patch(
    "/{webhook_id}",
    response_model=WebhookRead,
    operation_id="update_webhook",
    responses=problem_responses(401, 403, 404, 413, 422),
)
def update_webhook(
    principal: Admin,
    session: SessionDep,
    settings: SettingsDep,
    webhook_id: WebhookId,
    body: WebhookUpdate,
) -> Response:
    webhook = service.update(
        session=session, principal=principal, webhook_id=webhook_id, data=body, settings=settings
    )
    return json_response(_read(webhook))


@router.delete(
    "/{webhook_id}",
    status_code=204,
    operation_id="delete_webhook",
    responses=problem_responses(401, 403, 404, 422),
)
def delete_webhook(principal: Admin, session: SessionDep, webhook_id: WebhookId) -> Response:
    service.delete(session=session, principal=principal, webhook_id=webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=WebhookWithSecret,
    operation_id="rotate_webhook_secret",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def rotate_webhook_secret(
    principal: Admin, session: SessionDep, settings: SettingsDep, webhook_id: WebhookId
) -> Response:
    """A new signing secret, shown once. For 24 hours the previous one signs too (two
    signatures in `webhook-signature`), so receivers can switch without losing an event."""
    found = service.rotate_secret(
        session=session, principal=principal, webhook_id=webhook_id, settings=settings
    )
    return json_response(_with_secret(found), headers=NO_STORE)


@router.post(
    "/{webhook_id}/test",
    status_code=202,
    response_model=DeliveryRead,
    operation_id="test_webhook",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def test_webhook(principal: Admin, session: SessionDep, webhook_id: WebhookId) -> Response:
    """Queue a `webhook.test` event for this endpoint (whatever its `event_types`)."""
    delivery = service.send_test(session=session, principal=principal, webhook_id=webhook_id)
    return json_response(_delivery(delivery), status_code=202)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[DeliveryRead],
    operation_id="list_webhook_deliveries",
    responses=problem_responses(401, 403, 404, 422),
)
def list_webhook_deliveries(
    principal: Admin, session: SessionDep, webhook_id: WebhookId, page: DeliveryList
) -> Response:
    """The delivery log, newest first."""
    result = service.deliveries(
        session=session,
        principal=principal,
        webhook_id=webhook_id,
        filters=page.filters,
        page=page,
    )
    return page_response(result, [_delivery(d) for d in result.rows])


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryRead,
    operation_id="redeliver_webhook_delivery",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def redeliver_webhook_delivery(
    principal: Admin, session: SessionDep, webhook_id: WebhookId, delivery_id: DeliveryId
) -> Response:
    """Queue the delivery again, with a fresh set of attempts."""
    delivery = service.redeliver(
        session=session, principal=principal, webhook_id=webhook_id, delivery_id=delivery_id
    )
    return json_response(_delivery(delivery), status_code=202)
