"""The CRM overview read model."""

from __future__ import annotations

from pydantic import Field

from app.core.schemas import ResponseModel
from app.core.types import Money
from app.models.enums import CustomerStage


class StageSummary(ResponseModel):
    customer_stage: CustomerStage | None = Field(description="null in the `total` row")
    partners: int
    uninvoiced_total: Money
    debtor_balance: Money
    credit_limit_exceeded: int = Field(description="How many exceed their credit limit")


class Summary(ResponseModel):
    stages: list[StageSummary] = Field(description="One row per stage, in stage order")
    total: StageSummary
