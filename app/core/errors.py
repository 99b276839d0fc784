"""One error model: every failure answers RFC 9457 problem+json with a stable ``code``.

Services raise ``AppError`` (never ``HTTPException``). ``problem_response`` is the one way a
problem body is built: ``install_error_handlers`` routes through it everything else a request
can raise (FastAPI's validation errors, the framework's own HTTP errors, the database's
integrity, concurrency and lock-timeout errors), and the request middleware answers with it
what it refuses itself (the Host, the body size, an unexpected exception). In the OpenAPI
document, ``problem_responses`` declares a route's own answers and ``declare_problems`` the
ones every route can give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from app.core.problem_schema import Problem

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "urn:crm-overview:problem:"

log = structlog.get_logger("crm.app")


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


class Gone(AppError):
    status, title, default_code = 410, "Gone", "gone"


class PreconditionFailed(AppError):
    status, title, default_code = 412, "Precondition failed", "precondition_failed"


class PayloadTooLarge(AppError):
    status, title, default_code = 413, "Payload too large", "payload_too_large"


class UnsupportedMediaType(AppError):
    status, title, default_code = 415, "Unsupported media type", "unsupported_media_type"


class ValidationFailed(AppError):
    status, title, default_code = 422, "Validation failed", "validation_failed"


def destination_not_allowed(field: str, *, allow_http: bool) -> ValidationFailed:
    """A tenant-supplied URL the outbound policy refuses (``app.core.outbound``), as a 422
    naming the field (never why: the reason could map the network)."""
    schemes = "https:// or http://" if allow_http else "https://"
    return ValidationFailed(
        f"{field} leads to a destination that is not allowed ({schemes} to a public address only).",
        code="destination_not_allowed",
        errors=[FieldError(("body", field), "destination not allowed", "destination_not_allowed")],
    )


class InternalError(AppError):
    status, title, default_code = 500, "Internal server error", "internal_error"


class UpstreamError(AppError):
    status, title, default_code = 502, "Upstream error", "upstream_error"


class ServiceUnavailable(AppError):
    status, title, default_code = 503, "Service unavailable", "service_unavailable"


class HTTPStatusError(AppError):
    """A status the framework answers itself (no route, method not allowed, ...), with the
    standard phrase as its title and the phrase in snake case as its code."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None):
        phrase = _phrase(status)
        code = phrase.lower().replace(" ", "_").replace("-", "_")
        super().__init__(detail, code=code, headers=headers)
        self.status = status
        self.title = phrase


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(error: AppError, *, instance: str | None = None) -> JSONResponse:
    """The one way an error becomes an answer: problem+json with the error's status, code,
    title, detail, field errors, extra members and headers."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + error.code,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
    }
    if instance:
        body["instance"] = instance
    if error.errors:
        body["errors"] = [e.as_dict() for e in error.errors]
    # Extra members never replace the standard ones.
    body.update({k: v for k, v in error.extra.items() if k not in body})
    return JSONResponse(
        body,
        status_code=error.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=error.headers or None,
    )


# --- the exception handlers ------------------------------------------------------------------


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception a request can raise as problem+json (unexpected ones reach the
    request middleware, which answers 500 the same way)."""

    def answer(request: Request, error: AppError) -> JSONResponse:
        return problem_response(error, instance=request.url.path)

    @app.exception_handler(AppError)
    async def on_app_error(request: Request, exc: AppError) -> JSONResponse:
        return answer(request, exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return answer(request, _validation_failed(exc))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return answer(request, _framework_error(request, exc))

    @app.exception_handler(IntegrityError)
    async def on_integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        log.warning("integrity_error", error=type(exc.orig).__name__)
        return answer(request, Conflict("The change conflicts with existing data."))

    @app.exception_handler(StaleDataError)
    async def on_stale(request: Request, exc: StaleDataError) -> JSONResponse:
        return answer(
            request,
            Conflict(
                "Someone changed this at the same time; read it again and retry.",
                code="concurrent_update",
            ),
        )

    @app.exception_handler(OperationalError)
    async def on_database_error(request: Request, exc: OperationalError) -> JSONResponse:
        return answer(request, _database_unavailable(exc))


_TAG_ERRORS = ("union_tag_invalid", "union_tag_not_found")


def _union_tag_at(loc: list[str | int], body: Any) -> bool:
    """Whether ``loc`` runs through the tag pydantic puts in the path of a tagged union's
    member (``body.fortnox.client_id``): a segment that is no key of the body but one of its
    values (the tag the body chose)."""
    if len(loc) < 3 or loc[0] != "body" or not isinstance(body, dict):
        return False
    tag = loc[1]
    return isinstance(tag, str) and tag not in body and tag in body.values()


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    out = []
    body = getattr(exc, "body", None)
    for err in exc.errors():
        loc = [p if isinstance(p, int | str) else str(p) for p in err.get("loc", ())]
        if err.get("type") in _TAG_ERRORS:  # a discriminated union: name its tag field
            loc.append(str((err.get("ctx") or {}).get("discriminator", "")).strip("'"))
        elif _union_tag_at(loc, body):
            del loc[1]  # a body of a tagged union: the field is the body's, not the tag's
        out.append(FieldError(loc, str(err.get("msg", "invalid")), str(err.get("type", "invalid"))))
    return out


def _validation_failed(exc: RequestValidationError) -> ValidationFailed:
    errors = _field_errors(exc)
    if any(e.code == "json_invalid" for e in errors):
        return ValidationFailed(
            "The request body is not valid JSON.", code="invalid_json", errors=errors
        )
    first = errors[0] if errors else None
    where = ".".join(str(p) for p in first.loc) if first else "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ValidationFailed(
        f"{where}: {first.message if first else 'invalid'}{more}", errors=errors
    )


def _framework_error(request: Request, exc: StarletteHTTPException) -> AppError:
    """An ``HTTPException`` of Starlette or FastAPI (this app raises none), told apart by its
    status alone, never by its message."""
    status = exc.status_code
    headers = dict(exc.headers or {})
    if status == 400:
        # FastAPI's one 400: a body it could not read or decode (e.g. not UTF-8), as
        # malformed as bad JSON.
        return ValidationFailed("The request body is not valid JSON.", code="invalid_json")
    if status == 404:
        detail = f"No route matches {request.method} {request.url.path}."
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
    else:
        detail = exc.detail if isinstance(exc.detail, str) else _phrase(status)
    return HTTPStatusError(status, detail, headers=headers)


def allowed_methods(app: Any, path: str) -> list[str]:
    """Every method some route serves at ``path`` (for the ``Allow`` header of a 405); HEAD
    wherever GET is (the request middleware answers HEAD as GET without the body)."""

    def flat(routes: list[Any]) -> list[Any]:
        out = []
        for route in routes:
            included = getattr(route, "original_router", None)
            out.extend(flat(included.routes) if included is not None else [route])
        return out

    methods: set[str] = set()
    for route in flat(app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path) and getattr(route, "methods", None):
            methods.update(route.methods)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def _database_unavailable(exc: OperationalError) -> ServiceUnavailable:
    # A lock wait that timed out: PostgreSQL's lock_timeout (SQLSTATE 55P03,
    # psycopg.errors.LockNotAvailable) or SQLite's busy timeout (SQLITE_BUSY).
    orig = exc.orig
    retry = {"Retry-After": "1"}
    if getattr(orig, "sqlstate", None) == "55P03" or str(
        getattr(orig, "sqlite_errorname", "")
    ).startswith("SQLITE_BUSY"):
        log.warning("lock_timeout", error=type(orig).__name__)
        return ServiceUnavailable(
            "Another change (e.g. a bulk change) held the data this request needs longer "
            "than the lock timeout; nothing was changed. Retry shortly.",
            code="lock_timeout",
            headers=retry,
        )
    log.error("database_error", error=type(orig).__name__)
    return ServiceUnavailable(
        "The database is busy or unreachable; retry shortly.",
        code="database_unavailable",
        headers=retry,
    )


# --- the OpenAPI declarations ----------------------------------------------------------------

_DESCRIPTIONS = {
    304: "Not modified: the `If-None-Match` ETag is current",
    400: "Bad request",
    401: "Missing, unknown or revoked API token",
    403: "The token's scope does not allow this",
    404: "Not found (also: it belongs to another company)",
    409: "Conflict with the current state",
    410: "Gone: what the request points at is no longer kept",
    412: "`If-Match` does not match the current ETag",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Validation failed: `errors` names each field",
    429: "Rate limit reached: retry after `Retry-After` seconds",
    503: "Service unavailable: the database is busy or a lock wait timed out; retry after "
    "`Retry-After`",
}
INVALID_HOST = (
    "the `Host` header names a host this server does not answer for (`invalid_host`; only "
    "when `CRM_ALLOWED_HOSTS` is set)"
)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problem+json answers a route can give."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        if status == 304:
            out[status] = {"description": _DESCRIPTIONS[304]}
            continue
        entry: dict[str, Any] = {"description": _DESCRIPTIONS.get(status, "Error")}
        if status in (429, 503):
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        entry["content"] = {
            PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
        out[status] = entry
    return out


def declare_problems(schema: dict[str, Any]) -> None:
    """Complete an OpenAPI document with the problem+json answers: the ``Problem`` schema,
    every 422 as a Problem (FastAPI's own validation-error schemas are never sent), and the
    answers every route can give: 400 ``invalid_host`` (the Host check covers every path),
    and on every API route 429 (rate limits) and 503 (a lock wait timed out, or the database
    is unavailable)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in problem.pop("$defs", {}).items():
        components[name] = sub
    components["Problem"] = problem
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for path, path_item in schema.get("paths", {}).items():
        for operation in path_item.values():
            # Fresh entries for each operation: shared ones would be YAML aliases.
            everywhere = problem_responses(400, 422, 429, 503)
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = {**responses["422"], **everywhere[422]}
            bad_request = responses.setdefault("400", everywhere[400])
            if bad_request.get("description", "Bad request") == "Bad request":
                bad_request["description"] = f"Bad request: {INVALID_HOST}"
            else:
                bad_request["description"] += f"; or {INVALID_HOST}"
            if path.startswith("/api/"):
                responses["429"] = everywhere[429]
                responses.setdefault("503", everywhere[503])  # a route's own says more
