import uuid

from app.core.schemas import RequestModel, ResponseModel
from app.core.types import Email, Name, UTCDateTime


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
    email: Email
