"""The CRM overview read model."""

from __future__ import annotations

import uuid

from pydantic import Field

from app.core.schemas import ResponseModel
from app.core.types import Money
from app.models.enums import CustomerStage
from app.partners.schemas import PartnerFilter


class StageSummary(ResponseModel):
    customer_stage: CustomerStage | None = Field(description="null in the `total` row")
    partners: int
    uninvoiced_total: Money
    debtor_balance: Money
    credit_limit_exceeded: int = Field(description="How many exceed their credit limit")


class Summary(ResponseModel):
    stages: list[StageSummary] = Field(description="One row per stage, in stage order")
    total: StageSummary


class OverviewFilter(PartnerFilter):
    """What an overview cursor carries: the filters the page applied (a saved view's, with
    the explicit query parameters over them) and the view itself, so that a cursor sent alone
    continues the same rows, in the view's columns."""

    view: uuid.UUID | None = None
