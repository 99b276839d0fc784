"""One error model: every failure answers RFC 9457 problem+json with a stable ``code``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:crm-overview:problem:"


@dataclass(frozen=True)
class FieldError:
    loc: Sequence[str | int]
    message: str
    code: str

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "message": self.message, "code": self.code}


class AppError(Exception):
    """Base of every error a service raises; rendered as problem+json by one handler."""

    status: int = 400
    title: str = "Bad request"
    default_code: str = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.errors = list(errors)
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(AppError):
    status, title, default_code = 400, "Bad request", "bad_request"


class Unauthorized(AppError):
    status, title, default_code = 401, "Unauthorized", "unauthorized"


class Forbidden(AppError):
    status, title, default_code = 403, "Forbidden", "forbidden"


class NotFound(AppError):
    status, title, default_code = 404, "Not found", "not_found"


class Conflict(AppError):
    status, title, default_code = 409, "Conflict", "conflict"


class PreconditionFailed(AppError):
    status, title, default_code = 412, "Precondition failed", "precondition_failed"


class PayloadTooLarge(AppError):
    status, title, default_code = 413, "Payload too large", "payload_too_large"


class ValidationFailed(AppError):
    status, title, default_code = 422, "Validation failed", "validation_failed"


class UpstreamError(AppError):
    status, title, default_code = 502, "Upstream error", "upstream_error"


def problem_body(
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    instance: str | None = None,
    errors: Sequence[FieldError] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if errors:
        body["errors"] = [e.as_dict() for e in errors]
    if extra:
        # Extra members never replace the standard ones.
        body.update({k: v for k, v in extra.items() if k not in body})
    return body


_DESCRIPTIONS = {
    304: "Not modified: the `If-None-Match` ETag is current",
    400: "Bad request",
    401: "Missing, unknown or revoked API token",
    403: "The token's scope does not allow this",
    404: "Not found (also: it belongs to another company)",
    409: "Conflict with the current state",
    412: "`If-Match` does not match the current ETag",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Validation failed: `errors` names each field",
    503: "Not ready",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problem+json answers a route can give."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        if status == 304:
            out[status] = {"description": _DESCRIPTIONS[304]}
            continue
        out[status] = {
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    return out


def problem_response(error: AppError, *, instance: str | None = None) -> JSONResponse:
    return JSONResponse(
        problem_body(
            status=error.status,
            code=error.code,
            title=error.title,
            detail=error.detail,
            instance=instance,
            errors=error.errors,
            extra=error.extra,
        ),
        status_code=error.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=error.headers or None,
    )
