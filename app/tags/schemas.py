import uuid

from app.core.schemas import RequestModel, ResponseModel
from app.core.types import TagName, UTCDateTime, tag_key

__all__ = ["TagName", "tag_key"]


class TagRead(ResponseModel):
    id: uuid.UUID
    name: str
    created_at: UTCDateTime


class TagCreate(RequestModel):
    name: TagName
