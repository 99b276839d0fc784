"""The CRM overview read model."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from app.core.schemas import ResponseModel
from app.core.types import Money, UTCDateTime
from app.models.enums import CustomerStage
from app.users.schemas import UserRef

# The overview columns, in the order of the seed page; also the CSV header.
OVERVIEW_FIELDS = (
    "number",
    "name",
    "country",
    "credit_limit",
    "debtor_balance",
    "debtor_balance_synced_at",
    "credit_limit_exceeded",
    "uninvoiced_total",
    "tags",
    "latest_sales_delivery_date",
    "owner",
    "customer_stage",
)


class OverviewRow(ResponseModel):
    number: int
    name: str
    country: str
    credit_limit: Money | None
    debtor_balance: Money | None
    debtor_balance_synced_at: UTCDateTime | None
    credit_limit_exceeded: bool
    uninvoiced_total: Money
    tags: list[str]
    latest_sales_delivery_date: date | None
    owner: UserRef | None
    customer_stage: CustomerStage


class StageSummary(ResponseModel):
    customer_stage: CustomerStage | None = Field(description="null in the `total` row")
    partners: int
    uninvoiced_total: Money
    debtor_balance: Money
    credit_limit_exceeded: int = Field(description="How many exceed their credit limit")


class Summary(ResponseModel):
    stages: list[StageSummary] = Field(description="One row per stage, in stage order")
    total: StageSummary
