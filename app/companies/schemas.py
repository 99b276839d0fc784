import uuid
from typing import Annotated

from pydantic import BeforeValidator, Field

from app.core.schemas import RequestModel, ResponseModel, omittable
from app.core.types import Name, UTCDateTime
from app.models.enums import CreditCheck, CreditEnforcement


def _whole_days(value: object) -> object:
    """A JSON number of days: 180 or 180.0, never true or "180" (an integer the contract's
    schema accepts, and nothing a lax parse would invent)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number of days")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number of days")
    return int(value)


DormancyDays = Annotated[int, Field(ge=1, le=3650), BeforeValidator(_whole_days)]


class CompanyRead(ResponseModel):
    id: uuid.UUID
    slug: str
    name: str
    base_currency: str
    credit_check: CreditCheck
    credit_enforcement: CreditEnforcement
    dormancy_days: int | None = Field(
        description="An active customer whose latest order is older than this many days "
        "becomes inactive (null: the rule is off)"
    )
    created_at: UTCDateTime
    updated_at: UTCDateTime


class CompanyUpdate(RequestModel):
    """`slug` and `base_currency` are fixed at creation."""

    name: Name = omittable()
    credit_check: CreditCheck = omittable()
    credit_enforcement: CreditEnforcement = omittable()
    dormancy_days: DormancyDays | None = Field(
        default=None,
        description="Days without a (non-cancelled) order after which an active customer "
        "becomes inactive, applied daily and by `POST /api/v1/partners/bulk/apply-dormancy`; "
        "null turns the rule off",
    )
