"""HTTP helpers shared by routers: answers as responses, ETags and conditional requests."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel

from app.core.answer import Answer
from app.core.etags import check_if_match, etag, moment

__all__ = ["cached_json_response", "check_if_match", "etag", "json_response", "moment", "respond"]


def respond(answer: Answer) -> Response:
    return Response(
        content=answer.body,
        status_code=answer.status,
        media_type=answer.media_type,
        headers=answer.headers,
    )


def _tags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def json_response(
    model: BaseModel,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    etag: str | None = None,
) -> Response:
    return respond(Answer.json(model, status=status_code, headers=headers, etag=etag))


def cached_json_response(request: Request, model: BaseModel, etag: str) -> Response:
    """A single resource: 200 with its ETag, or 304 when ``If-None-Match`` already has it."""
    wanted = request.headers.get("if-none-match")
    if wanted is not None and (wanted.strip() == "*" or etag in _tags(wanted)):
        return Response(status_code=304, headers={"ETag": etag})
    return json_response(model, etag=etag)


def location(path: str) -> dict[str, Any]:
    return {"Location": path}


def links(parameter: str, source: str, *operation_ids: str) -> dict[str, Any]:
    """OpenAPI links from a created resource to the operations that take its key, so clients
    and stateful tests can follow them (``source``: a JSON pointer into the response body)."""
    return {
        "links": {
            op: {"operationId": op, "parameters": {parameter: f"$response.body#/{source}"}}
            for op in operation_ids
        }
    }
