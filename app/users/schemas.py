import uuid
from typing import Annotated

from pydantic import EmailStr, Field

from app.core.schemas import RequestModel, ResponseModel
from app.core.types import Name, UTCDateTime


class UserRef(ResponseModel):
    id: uuid.UUID
    name: str


class UserRead(ResponseModel):
    id: uuid.UUID
    name: str
    email: str
    created_at: UTCDateTime


class UserCreate(RequestModel):
    name: Name
    email: Annotated[EmailStr, Field(max_length=254)]
