"""An answer to a request, decided once: status, JSON body and headers, as plain values.

A route renders its result into an ``Answer``; the same ``Answer`` is what an
``Idempotency-Key`` stores and replays, so a replay is byte for byte the first answer. Nothing
here knows of the web framework (``app.core.http.respond`` turns an answer into a response).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel


def serialize(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"

    @classmethod
    def json(
        cls,
        model: BaseModel,
        *,
        status: int = 200,
        location: str | None = None,
        etag: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        all_headers = dict(headers or {})
        if location is not None:
            all_headers["Location"] = location
        if etag is not None:
            all_headers["ETag"] = etag
        return cls(status=status, body=serialize(model), headers=all_headers)
