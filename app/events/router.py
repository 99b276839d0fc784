"""The event feed: ``GET /api/v1/events``, with long polling."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.auth.dependencies import Reader, SessionDep, SettingsDep
from app.core.errors import problem_responses
from app.events import service
from app.events.schemas import EventPage
from app.events.types import FeedEventType

router = APIRouter(prefix="/api/v1/events", tags=["events"])


@router.get(
    "",
    response_model=EventPage,
    operation_id="list_events",
    responses=problem_responses(401, 403, 410, 422),
)
async def list_events(
    request: Request,
    principal: Reader,
    session: SessionDep,
    settings: SettingsDep,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            description="`next_cursor` of the previous answer; absent: from the oldest event kept",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    type: Annotated[
        list[FeedEventType] | None,
        Query(max_length=20, description="Only these types (repeatable)"),
    ] = None,
    wait: Annotated[
        int,
        Query(
            ge=0,
            le=30,
            description="Long polling: seconds to wait for a first event when there is none "
            "yet; the answer comes as soon as there is one",
        ),
    ] = 0,
) -> Response:
    """Every committed change of the company, exactly once and in commit order, for a
    consumer that loops on `next_cursor`."""
    position = (
        service.decode_cursor(settings.secret_key, principal, cursor)
        if cursor is not None
        else None
    )
    types = sorted({t.value for t in type}) if type else None

    def poll(at: int | None) -> service.FeedPage:
        try:
            return service.read(
                session=session,
                principal=principal,
                position=at,
                limit=limit,
                types=types,
                retention_days=settings.event_retention_days,
            )
        finally:
            session.rollback()  # no transaction (nor pooled connection) held between looks

    deadline = time.monotonic() + min(wait, settings.event_max_wait)
    result = await run_in_threadpool(poll, position)
    while not result.events and time.monotonic() < deadline:
        await asyncio.sleep(min(settings.event_poll_interval, deadline - time.monotonic()))
        if await request.is_disconnected():
            break
        result = await run_in_threadpool(poll, result.position)
    page = service.page(principal, settings.secret_key, result)
    return Response(content=page.model_dump_json(), media_type="application/json")
