"""Accounting connection, sync runs and balance pushes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from app.core.schemas import RequestModel, ResponseModel
from app.core.types import IsoDateTime, MoneyIn, Ref50, StrictBool, UTCDateTime, WebUrl
from app.models import SyncRun
from app.models.enums import AccountingProviderName, SyncRunStatus, SyncTrigger

Secret = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[\x21-\x7e]+$")]


class ConnectionRead(ResponseModel):
    provider: AccountingProviderName
    base_url: str
    enabled: bool
    app_secret_token_set: bool
    agreement_grant_token_set: bool
    updated_at: UTCDateTime


class ConnectionPut(RequestModel):
    """The whole connection. The tokens are write-only: leave them out to keep stored ones."""

    provider: AccountingProviderName
    base_url: WebUrl = Field(
        default="https://restapi.e-conomic.com",
        description="The provider's API root; tests and demos may point elsewhere",
    )
    enabled: StrictBool = True
    app_secret_token: Secret | None = Field(default=None, description="Write-only")
    agreement_grant_token: Secret | None = Field(default=None, description="Write-only")


class SyncError(ResponseModel):
    code: str
    message: str


class SyncRunRead(ResponseModel):
    id: uuid.UUID
    status: SyncRunStatus
    trigger: SyncTrigger
    started_at: UTCDateTime
    finished_at: UTCDateTime | None
    fetched: int
    updated: int
    unchanged: int
    unmatched: int = Field(description="Remote customers that match no partner's accounting_ref")
    error: SyncError | None

    @classmethod
    def of(cls, run: SyncRun) -> SyncRunRead:
        return cls.model_validate(
            {
                "id": run.id,
                "status": run.status,
                "trigger": run.trigger,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "fetched": run.fetched,
                "updated": run.updated,
                "unchanged": run.unchanged,
                "unmatched": run.unmatched,
                "error": {"code": run.error_code, "message": run.error_message or ""}
                if run.error_code
                else None,
            }
        )


class BalanceIn(RequestModel):
    accounting_ref: Ref50
    balance: MoneyIn


class BalancePush(RequestModel):
    balances: list[BalanceIn] = Field(min_length=1, max_length=10_000)
    as_of: IsoDateTime = Field(description="When the accounting system had these balances")

    @field_validator("as_of")
    @classmethod
    def _not_future(cls, value: datetime) -> datetime:
        if value > datetime.now(UTC) + timedelta(minutes=5):
            raise PydanticCustomError("as_of_in_future", "lies in the future")
        return value

    @field_validator("balances")
    @classmethod
    def _unique_refs(cls, value: list[BalanceIn]) -> list[BalanceIn]:
        seen: set[str] = set()
        for item in value:
            if item.accounting_ref in seen:
                raise PydanticCustomError(
                    "duplicate_item",
                    "accounting_ref {ref} is listed twice",
                    {"ref": repr(item.accounting_ref)},
                )
            seen.add(item.accounting_ref)
        return value


class BalancePushResult(ResponseModel):
    updated: int
    unchanged: int
    unmatched: int
    unmatched_refs: list[str]
