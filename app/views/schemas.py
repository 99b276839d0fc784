"""A saved view of the CRM overview: its filters (the overview's own filter parameters, as an
object), sort and columns, private to its creator or shared with the whole company."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from app.core.schemas import RequestModel, ResponseModel, omittable
from app.core.types import Name, StrictBool, UTCDateTime
from app.partners.overview import OVERVIEW_COLUMNS, OverviewField, OverviewSort
from app.partners.schemas import PartnerFilter
from app.users.schemas import UserRef


def _distinct(names: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"column {str(name.value)!r} is listed more than once")
        seen.add(name)
    return names


Columns = Annotated[
    list[OverviewField],
    Field(
        min_length=1,
        max_length=len(OVERVIEW_COLUMNS),
        json_schema_extra={"uniqueItems": True},
        description=(
            "The overview fields to show, in this order (each at most once); null: all, in "
            "the overview's order. Shapes the JSON rows and the CSV and XLSX columns."
        ),
    ),
    AfterValidator(_distinct),
]
FILTERS_DESCRIPTION = (
    "The overview's filter parameters as an object (the names and values of its query "
    "parameters; lists for the repeatable ones). Explicit query parameters of a request that "
    "applies the view replace them, parameter by parameter."
)
SORT_DESCRIPTION = "One of the overview's sorts; null: the overview's default (by number)."
SHARED_DESCRIPTION = "Visible to the whole company; false: to its creator only."


class ViewCreate(RequestModel):
    name: Name
    filters: PartnerFilter = Field(default_factory=PartnerFilter, description=FILTERS_DESCRIPTION)
    sort: OverviewSort | None = Field(default=None, description=SORT_DESCRIPTION)  # type: ignore[valid-type]
    columns: Columns | None = None
    shared: StrictBool = Field(default=False, description=SHARED_DESCRIPTION)


class ViewUpdate(RequestModel):
    """Only the fields sent change; `filters`, when sent, replaces the view's filters whole."""

    name: Name = omittable()
    filters: PartnerFilter = omittable(description=FILTERS_DESCRIPTION)
    sort: OverviewSort | None = Field(default=None, description=SORT_DESCRIPTION)  # type: ignore[valid-type]
    columns: Columns | None = None
    shared: StrictBool = omittable(description=SHARED_DESCRIPTION)


class ViewRead(ResponseModel):
    id: uuid.UUID
    name: str
    filters: PartnerFilter = Field(description=FILTERS_DESCRIPTION)
    sort: OverviewSort | None = Field(description=SORT_DESCRIPTION)  # type: ignore[valid-type]
    columns: list[OverviewField] | None = Field(
        description="The overview fields it shows, in order; null: all"
    )
    shared: bool = Field(description=SHARED_DESCRIPTION)
    owner: UserRef = Field(description="Its creator: who, with an admin, may change it")
    created_at: UTCDateTime
    updated_at: UTCDateTime
