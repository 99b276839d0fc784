import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field, ValidationError, ValidatorFunctionWrapHandler, field_validator
from pydantic_core import PydanticCustomError

from app.core.schemas import RequestModel, ResponseModel
from app.core.types import IsoDateTime, Text100, UTCDateTime
from app.models.enums import Scope
from app.users.schemas import UserRead, UserRef

MAX_TOKEN_LIFETIME = timedelta(days=3650)


class TokenCreate(RequestModel):
    name: Text100 = Field(default="", description="What the token is for")
    scope: Scope
    user_id: uuid.UUID | None = Field(
        default=None, description="The user the token acts as; defaults to the caller"
    )
    expires_at: IsoDateTime | None = Field(
        default=None,
        description="When the token stops working (in the future, at most 10 years ahead); "
        "null: never",
    )

    @field_validator("expires_at", mode="wrap")
    @classmethod
    def _in_range(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """An instant past the calendar's ends once in UTC is, for an expiry, simply in the
        past (year 1) or too far ahead (year 9999): said with those codes."""
        try:
            return handler(value)
        except ValidationError as exc:
            if [e["type"] for e in exc.errors()] == ["datetime_out_of_range"]:
                if isinstance(value, str) and value.startswith("0001"):
                    raise PydanticCustomError(
                        "expires_at_in_past", "must lie in the future"
                    ) from None
                raise PydanticCustomError(
                    "expires_at_too_far", "must lie at most 10 years ahead"
                ) from None
            raise

    @field_validator("expires_at")
    @classmethod
    def _ahead(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        now = datetime.now(UTC)
        if value <= now:
            raise PydanticCustomError("expires_at_in_past", "must lie in the future")
        if value > now + MAX_TOKEN_LIFETIME:
            raise PydanticCustomError("expires_at_too_far", "must lie at most 10 years ahead")
        return value.astimezone(UTC)


class TokenRead(ResponseModel):
    id: uuid.UUID
    name: str
    scope: Scope
    user: UserRef
    prefix: str = Field(description="The first characters of the secret, to recognise it")
    created_at: UTCDateTime
    expires_at: UTCDateTime | None = Field(description="When it stops working; null: never")
    last_used_at: UTCDateTime | None = Field(
        description="Its latest use (recorded to the minute); null: never used"
    )


class TokenCreated(TokenRead):
    token: str = Field(description="The secret. Shown this once; only a hash is stored.")


class CompanyRef(ResponseModel):
    id: uuid.UUID
    slug: str
    name: str


class MeRead(ResponseModel):
    user: UserRead
    company: CompanyRef
    scope: Scope
    scopes: list[Scope] = Field(description="Every scope the token grants (admin > write > read)")
    token_id: uuid.UUID
