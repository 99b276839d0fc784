"""The feed's envelope and page."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.core.schemas import ResponseModel
from app.core.types import UTCDateTime
from app.events.types import EventType


class EventRead(ResponseModel):
    id: str = Field(description="evt_…: the same in the feed and in a webhook's webhook-id")
    type: str = Field(json_schema_extra={"enum": [t.value for t in EventType]})
    occurred_at: UTCDateTime
    company: str = Field(description="The company's slug")
    data: dict[str, Any] = Field(description="What the type says (see the integration guide)")


class EventPage(ResponseModel):
    items: list[EventRead]
    next_cursor: str = Field(
        description="Never null: after the last item, or the same position when there was "
        "nothing new. Loop on it."
    )
