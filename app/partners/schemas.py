"""Partner request and response schemas, and the filters shared by every partner list."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from app.core.schemas import RequestModel, ResponseModel, omittable
from app.core.types import (
    CountryCode,
    CurrencyCode,
    Email,
    IsoDateTime,
    Money,
    Name,
    NonNegativeMoneyIn,
    Ref50,
    StrictBool,
    TagName,
    Text20,
    Text50,
    Text100,
    Text200,
    Text500,
    UTCDateTime,
    WebUrl,
)
from app.models import Partner, PartnerLocation
from app.models.enums import CustomerStage, StageChangeReason
from app.users.schemas import UserRef

MAX_TAGS = 50
MAX_LOCATIONS = 50


class LocationIn(RequestModel):
    name: Text200 | None = None
    address: Text500 | None = None
    postal_code: Text20 | None = None
    city: Text100 | None = None
    country: CountryCode
    is_primary: StrictBool = False


class LocationRead(ResponseModel):
    id: uuid.UUID
    name: str | None
    address: str | None
    postal_code: str | None
    city: str | None
    country: str
    is_primary: bool


class _PartnerFields(RequestModel):
    vat_id: Text50 | None = None
    email: Email | None = None
    phone: Text50 | None = None
    website: WebUrl | None = None
    owner_id: uuid.UUID | None = None
    customer_stage: CustomerStage | None = None
    credit_limit: NonNegativeMoneyIn | None = None
    accounting_ref: Ref50 | None = None

    @field_validator("tags", check_fields=False)
    @classmethod
    def _unique_tags(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            seen: set[str] = set()
            for name in value:
                if name.lower() in seen:
                    raise PydanticCustomError(
                        "duplicate_item", "tag {name} is listed twice", {"name": repr(name)}
                    )
                seen.add(name.lower())
        return value


class PartnerCreate(_PartnerFields):
    name: Name
    country: CountryCode
    currency: CurrencyCode | None = Field(
        default=None, description="Defaults to the company's base currency"
    )
    tags: list[TagName] = Field(default_factory=list, max_length=MAX_TAGS)
    locations: list[LocationIn] = Field(
        default_factory=list,
        max_length=MAX_LOCATIONS,
        description="When none is marked primary, the first one is.",
    )


class PartnerUpdate(_PartnerFields):
    """Only the fields sent are changed; `tags` and `locations` replace the whole list."""

    # Optional to send, but never null: these fields have no empty value.
    name: Name = omittable()
    country: CountryCode = omittable()
    currency: CurrencyCode = omittable()
    tags: list[TagName] = omittable(max_length=MAX_TAGS)
    locations: list[LocationIn] = omittable(max_length=MAX_LOCATIONS)


class PartnerRead(ResponseModel):
    id: uuid.UUID
    number: int
    name: str
    country: str
    vat_id: str | None
    currency: str
    email: str | None
    phone: str | None
    website: str | None
    owner: UserRef | None
    tags: list[str]
    customer_stage: CustomerStage | None
    credit_limit: Money | None
    accounting_ref: str | None
    locations: list[LocationRead]
    debtor_balance: Money | None
    debtor_balance_synced_at: UTCDateTime | None
    credit_limit_exceeded: bool
    uninvoiced_total: Money
    latest_sales_delivery_date: date | None
    created_at: UTCDateTime
    updated_at: UTCDateTime

    @field_validator("tags", mode="before")
    @classmethod
    def _tag_names(cls, tags: Any) -> Any:
        """Read from a partner, ``tags`` are its Tag rows: their names."""
        return [getattr(t, "name", t) for t in tags] if isinstance(tags, list | tuple) else tags

    @classmethod
    def of(cls, partner: Partner) -> PartnerRead:
        """Every field is the partner's attribute of the same name (``owner`` and
        ``locations`` are read as their own schemas; ``tags`` as names)."""
        return cls.model_validate(partner)


class StageChangeRead(ResponseModel):
    previous_stage: CustomerStage | None
    stage: CustomerStage | None
    reason: StageChangeReason
    changed_at: UTCDateTime
    changed_by: UserRef | None


class PartnerFilter(RequestModel):
    """The partner list filters; the CRM overview and the bulk stage change use them too."""

    q: Name | None = Field(
        default=None, description="Part of the name (any case), or the exact number"
    )
    customer_stage: list[CustomerStage] | None = Field(
        default=None, max_length=5, description="Any of these stages (repeatable)"
    )
    tag: list[TagName] | None = Field(
        default=None, max_length=MAX_TAGS, description="Has any of these tags (repeatable)"
    )
    owner_id: uuid.UUID | None = None
    country: CountryCode | None = None
    credit_limit_exceeded: StrictBool | None = None
    updated_since: IsoDateTime | None = Field(
        default=None, description="Changed at or after this time (with a time zone)"
    )


def location_rows(company_id: uuid.UUID, items: list[LocationIn]) -> list[PartnerLocation]:
    """New location rows in the given order; the first is primary when none is marked."""
    marked = any(item.is_primary for item in items)
    return [
        PartnerLocation(
            company_id=company_id,
            position=index,
            name=item.name,
            address=item.address,
            postal_code=item.postal_code,
            city=item.city,
            country=item.country,
            is_primary=item.is_primary or (not marked and index == 0),
        )
        for index, item in enumerate(items)
    ]


class BulkStageRequest(RequestModel):
    """Exactly one of `numbers` and `filter`."""

    customer_stage: CustomerStage
    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["numbers"]}, {"required": ["filter"]}]}
    )

    numbers: list[Annotated[int, Field(ge=1, le=2_147_483_647)]] = omittable(
        min_length=1, max_length=1000
    )
    filter: PartnerFilter = omittable(
        description=(
            "The partner list filters; {} selects every partner. A filter that matches more "
            "partners than the server's bulk limit (100,000 unless configured otherwise) "
            "changes nothing: 422 `too_many_partners`, naming the count"
        )
    )
    dry_run: StrictBool = False

    @model_validator(mode="after")
    def _one_selector(self) -> BulkStageRequest:
        if (self.numbers is None) == (self.filter is None):
            raise ValueError("give exactly one of `numbers` and `filter`")
        return self


class DormancyRequest(RequestModel):
    """Apply the company's dormancy rule now (`dormancy_days` of `PATCH /api/v1/company`)."""

    dry_run: StrictBool = Field(
        default=False, description="Answer what would change, and change nothing"
    )


# The most entries `changes` lists; counts are always complete, and every change is in the
# partners' stage history (reason `bulk`).
BULK_CHANGES_LISTED = 1000


class BulkStageChange(ResponseModel):
    number: int
    previous_stage: CustomerStage | None


class BulkStageResult(ResponseModel):
    customer_stage: CustomerStage
    dry_run: bool
    matched: int = Field(description="Partners selected")
    changed: int = Field(description="Selected partners whose stage changes (always complete)")
    unchanged: int = Field(description="Selected partners already at the stage")
    changes: list[BulkStageChange] = Field(
        description=(
            f"The changed partners with their previous stage, by number: at most the first "
            f"{BULK_CHANGES_LISTED:,}. When more changed, `changes_truncated` is true; every "
            "change is in the partners' stage history (reason `bulk`; `dormant` for the "
            "dormancy rule)"
        ),
        max_length=BULK_CHANGES_LISTED,
    )
    changes_truncated: bool = Field(
        description=f"True when more than {BULK_CHANGES_LISTED:,} partners changed and "
        "`changes` lists only the first of them"
    )


class ImportResult(ResponseModel):
    """What a partner import did (or, on a dry run, would do): every row is counted once."""

    dry_run: bool
    created: int = Field(description="Rows without a number: new partners")
    updated: int = Field(description="Rows with a number whose partner changes")
    unchanged: int = Field(description="Rows with a number whose partner already is as the row")
    numbers_created: list[int] = Field(
        description="The numbers of the new partners, in the order of their rows (empty on a "
        "dry run: numbers are given out only when partners are stored)"
    )
