"""The partner list filters as query parameters; the overview and its CSV read them too."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query

from app.core.types import CountryCode, IsoDateTime, Name, StrictBool
from app.models.enums import CustomerStage
from app.partners.schemas import MAX_TAGS, PartnerFilter
from app.tags.schemas import TagName


def partner_filters(
    q: Annotated[
        Name | None, Query(description="Part of the name (any case), or the exact number")
    ] = None,
    customer_stage: Annotated[
        list[CustomerStage] | None, Query(max_length=5, description="Any of these stages")
    ] = None,
    tag: Annotated[
        list[TagName] | None, Query(max_length=MAX_TAGS, description="Has any of these tags")
    ] = None,
    owner_id: Annotated[uuid.UUID | None, Query()] = None,
    country: Annotated[CountryCode | None, Query()] = None,
    credit_limit_exceeded: Annotated[StrictBool | None, Query()] = None,
    updated_since: Annotated[
        IsoDateTime | None, Query(description="Changed at or after (with a time zone)")
    ] = None,
) -> PartnerFilter:
    """The partner list filters, read from the query string."""
    return PartnerFilter(
        q=q,
        customer_stage=customer_stage,
        tag=tag,
        owner_id=owner_id,
        country=country,
        credit_limit_exceeded=credit_limit_exceeded,
        updated_since=updated_since,
    )


Filters = Annotated[PartnerFilter, Depends(partner_filters)]
