"""HTTP helpers shared by routers: JSON responses with ETags and conditional requests."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel

from app.core.errors import FieldError, PreconditionFailed


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def serialize(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


def _tags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def json_response(
    model: BaseModel,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    etag: bool = False,
) -> Response:
    body = serialize(model)
    all_headers = dict(headers or {})
    if etag:
        all_headers["ETag"] = etag_of(body)
    return Response(
        content=body, status_code=status_code, media_type="application/json", headers=all_headers
    )


def cached_json_response(request: Request, model: BaseModel) -> Response:
    """A single resource: 200 with its ETag, or 304 when ``If-None-Match`` already has it."""
    body = serialize(model)
    tag = etag_of(body)
    wanted = request.headers.get("if-none-match")
    if wanted is not None and (wanted.strip() == "*" or tag in _tags(wanted)):
        return Response(status_code=304, headers={"ETag": tag})
    return Response(content=body, media_type="application/json", headers={"ETag": tag})


def check_if_match(if_match: str | None, current: BaseModel) -> None:
    """``If-Match`` (strong comparison): 412 unless it names the current representation."""
    if if_match is None:
        return
    if if_match.strip() == "*":
        return
    current_tag = etag_of(serialize(current))
    if current_tag not in [t for t in (s.strip() for s in if_match.split(",")) if t]:
        raise PreconditionFailed(
            "The resource has changed since you read it (If-Match does not match its ETag).",
            code="etag_mismatch",
            errors=[FieldError(("header", "If-Match"), "does not match the ETag", "etag_mismatch")],
            headers={"ETag": current_tag},
        )


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
