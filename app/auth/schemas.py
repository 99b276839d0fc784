import uuid

from pydantic import Field

from app.core.schemas import RequestModel, ResponseModel
from app.core.types import Text100, UTCDateTime
from app.models.enums import Scope
from app.users.schemas import UserRead, UserRef


class TokenCreate(RequestModel):
    name: Text100 = Field(default="", description="What the token is for")
    scope: Scope
    user_id: uuid.UUID | None = Field(
        default=None, description="The user the token acts as; defaults to the caller"
    )


class TokenRead(ResponseModel):
    id: uuid.UUID
    name: str
    scope: Scope
    user: UserRef
    prefix: str = Field(description="The first characters of the secret, to recognise it")
    created_at: UTCDateTime


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
