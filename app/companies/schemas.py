import uuid

from app.core.schemas import RequestModel, ResponseModel, omittable
from app.core.types import Name, UTCDateTime
from app.models.enums import CreditCheck, CreditEnforcement


class CompanyRead(ResponseModel):
    id: uuid.UUID
    slug: str
    name: str
    base_currency: str
    credit_check: CreditCheck
    credit_enforcement: CreditEnforcement
    created_at: UTCDateTime
    updated_at: UTCDateTime


class CompanyUpdate(RequestModel):
    """`slug` and `base_currency` are fixed at creation."""

    name: Name = omittable()
    credit_check: CreditCheck = omittable()
    credit_enforcement: CreditEnforcement = omittable()
