import uuid
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from app.core.schemas import RequestModel, ResponseModel
from app.core.types import UTCDateTime, clean_text

# No "/" (it names the tag in paths), no ";" (it joins tags in CSV), no control characters;
# spaces around the name are allowed and trimmed.
TAG_NAME_PATTERN = r"^ *[^ /;\x00-\x1f\x7f]([^/;\x00-\x1f\x7f]*[^ /;\x00-\x1f\x7f])? *$"

TagName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=50, pattern=TAG_NAME_PATTERN),
    AfterValidator(lambda name: clean_text(name).strip(" ")),
]


def tag_key(name: str) -> str:
    """Tag names are unique per company regardless of case."""
    return name.strip(" ").lower()


class TagRead(ResponseModel):
    id: uuid.UUID
    name: str
    created_at: UTCDateTime


class TagCreate(RequestModel):
    name: TagName
