"""The CRM overview read model."""

from __future__ import annotations

from typing import Any

from pydantic import Field, create_model

from app.core.schemas import ResponseModel
from app.core.types import Money
from app.crm.columns import OVERVIEW_COLUMNS
from app.models.enums import CustomerStage

# One overview row: a field per column, in column order (the columns are declared once, in
# ``app.crm.columns``).
_ROW_FIELDS: dict[str, Any] = {column.name: (column.type, ...) for column in OVERVIEW_COLUMNS}
OverviewRow = create_model(
    "OverviewRow", __base__=ResponseModel, __module__=__name__, **_ROW_FIELDS
)


class StageSummary(ResponseModel):
    customer_stage: CustomerStage | None = Field(description="null in the `total` row")
    partners: int
    uninvoiced_total: Money
    debtor_balance: Money
    credit_limit_exceeded: int = Field(description="How many exceed their credit limit")


class Summary(ResponseModel):
    stages: list[StageSummary] = Field(description="One row per stage, in stage order")
    total: StageSummary
