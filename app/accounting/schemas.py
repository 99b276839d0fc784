"""Accounting connection, sync runs and balance pushes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, cast

from pydantic import Field, create_model, field_validator
from pydantic_core import PydanticCustomError

from app.accounting.providers import REGISTRY
from app.accounting.providers.base import ProviderSpec
from app.core.schemas import RequestModel, ResponseModel
from app.core.types import IsoDateTime, MoneyIn, Ref50, StrictBool, UTCDateTime, WebUrl
from app.models import SyncRun
from app.models.enums import SyncRunStatus, SyncTrigger

Secret = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[\x21-\x7e]+$")]


def _put_model(spec: ProviderSpec) -> type[RequestModel]:
    """The PUT body of one provider: its name, its URLs (left out: the stored ones, or the
    provider's defaults) and its write-only credentials. Another provider's field is 422."""
    fields: dict[str, Any] = {
        "provider": (Literal[spec.name], ...),
        "base_url": (
            WebUrl | None,
            Field(
                default=None,
                description=f"The API root; left out: the stored one, else {spec.base_url}",
            ),
        ),
        "enabled": (StrictBool, True),
    }
    if spec.token_url is not None:
        fields["token_url"] = (
            WebUrl | None,
            Field(
                default=None,
                description=f"The token endpoint; left out: the stored one, else {spec.token_url}",
            ),
        )
    for name in spec.credentials:
        fields[name] = (Secret | None, Field(default=None, description="Write-only"))
    model = create_model(
        f"{_title(spec.name)}ConnectionPut",
        __base__=RequestModel,
        __doc__=f"A {spec.label} connection. Credentials are write-only: leave them out to "
        "keep the stored ones (not when provider, base_url or token_url change).",
        **fields,
    )
    return cast(type[RequestModel], model)


def _read_model(spec: ProviderSpec) -> type[ResponseModel]:
    fields: dict[str, Any] = {
        "provider": (Literal[spec.name], ...),
        "base_url": (str, ...),
        "token_url": (str | None, ...),
        "enabled": (bool, ...),
        "updated_at": (UTCDateTime, ...),
    }
    for name in spec.credentials:
        fields[f"{name}_set"] = (bool, ...)
    model = create_model(f"{_title(spec.name)}ConnectionRead", __base__=ResponseModel, **fields)
    return cast(type[ResponseModel], model)


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-", " ").split())


PUT_MODELS = {name: _put_model(spec) for name, spec in REGISTRY.items()}
READ_MODELS = {name: _read_model(spec) for name, spec in REGISTRY.items()}
# One body (and one read) per provider, told apart by ``provider``.
if TYPE_CHECKING:
    ConnectionPut = Any
    ConnectionRead = Any
else:
    ConnectionPut = Annotated[
        Union[tuple(PUT_MODELS.values())],  # noqa: UP007
        Field(discriminator="provider"),
    ]
    ConnectionRead = Annotated[
        Union[tuple(READ_MODELS.values())],  # noqa: UP007
        Field(discriminator="provider"),
    ]


class SyncWarning(ResponseModel):
    code: str
    message: str
    customer_refs: list[str] = Field(description="The remote customers concerned (at most 100)")


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
    warnings: list[SyncWarning] = Field(
        description="What a succeeded run stored but a reader should know (e.g. foreign_currency)"
    )
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
                "warnings": json.loads(run.warnings) if run.warnings else [],
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
