"""Base classes for request and response schemas."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RequestModel(BaseModel):
    """A request body: unknown and read-only fields are rejected (422), never ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


def omittable(**kwargs: Any) -> Any:
    """A PATCH field that may be left out but, when sent, may not be null (it has no empty
    value). The contract shows it as non-nullable; leaving it out changes nothing."""
    return Field(default=None, **kwargs)
