"""The application: routers, middleware, error handlers, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from app.accounting.router import router as accounting_router
from app.accounting.scheduler import Scheduler
from app.auth.ratelimit import RateLimiter
from app.auth.router import router as auth_router
from app.companies.router import router as company_router
from app.core.config import Settings, get_settings
from app.core.errors import (
    AppError,
    Conflict,
    FieldError,
    ValidationFailed,
    problem_body,
    problem_response,
)
from app.core.logging import configure_logging
from app.core.middleware import RequestContextMiddleware
from app.core.problem_schema import Problem
from app.crm.router import router as crm_router
from app.db.session import Database, build_engine
from app.ops.bench import router as floor_router
from app.ops.router import router as ops_router
from app.partners.router import router as partners_router
from app.sales_orders.router import router as sales_orders_router
from app.tags.router import router as tags_router
from app.users.router import router as users_router

log = structlog.get_logger("crm.app")

API_DESCRIPTION = """\
The CRM overview of a B2B food-and-beverage ERP: partners (customers) and their customer
stages, tags, owners and locations.

* **Auth**: `Authorization: Bearer <token>`; the token decides the company. Scopes `read` <
  `write` < `admin`.
* **Errors**: RFC 9457 `application/problem+json` with a stable `code`, and `errors[]` naming
  each field.
* **Lists**: `limit` (1-500), opaque `cursor` (`next_cursor` of the previous page),
  `include_total`, `sort=field` or `sort=-field` (nulls last, ties broken by number).
* **Money**: strings with two decimals on output; input as a string or number with at most two.
* **Concurrency**: single resources carry an `ETag`; `PATCH`/`DELETE` honour `If-Match` (412),
  `GET` honours `If-None-Match` (304).
"""


def _status_code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors():
        loc = [p if isinstance(p, int | str) else str(p) for p in err.get("loc", ())]
        out.append(FieldError(loc, str(err.get("msg", "invalid")), str(err.get("type", "invalid"))))
    return out


def allowed_methods(app: Any, path: str) -> list[str]:
    """Every method some route serves at ``path`` (for the Allow header of a 405)."""

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
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    def instance(request: Request) -> str:
        return request.url.path

    @app.exception_handler(AppError)
    async def on_app_error(request: Request, exc: AppError) -> JSONResponse:
        return problem_response(exc, instance=instance(request))

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        if any(e.code == "json_invalid" for e in errors):
            err = ValidationFailed(
                "The request body is not valid JSON.", code="invalid_json", errors=errors
            )
        else:
            first = errors[0] if errors else None
            where = ".".join(str(p) for p in first.loc) if first else "request"
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            err = ValidationFailed(
                f"{where}: {first.message if first else 'invalid'}{more}", errors=errors
            )
        return problem_response(err, instance=instance(request))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = dict(exc.headers or {})
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            # e.g. a body that is not UTF-8: as malformed as bad JSON
            return problem_response(
                ValidationFailed("The request body is not valid JSON.", code="invalid_json"),
                instance=instance(request),
            )
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route matches {request.method} {request.url.path}."
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}."
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
        body = problem_body(
            status=exc.status_code,
            code=_status_code(exc.status_code),
            title=HTTPStatus(exc.status_code).phrase,
            detail=detail,
            instance=instance(request),
        )
        return JSONResponse(
            body,
            status_code=exc.status_code,
            headers=headers or None,
            media_type="application/problem+json",
        )

    @app.exception_handler(IntegrityError)
    async def on_integrity_error(request: Request, exc: IntegrityError) -> JSONResponse:
        log.warning("integrity_error", error=type(exc.orig).__name__)
        return problem_response(
            Conflict("The change conflicts with existing data.", code="conflict"),
            instance=instance(request),
        )

    @app.exception_handler(StaleDataError)
    async def on_stale(request: Request, exc: StaleDataError) -> JSONResponse:
        return problem_response(
            Conflict(
                "Someone changed this at the same time; read it again and retry.",
                code="concurrent_update",
            ),
            instance=instance(request),
        )

    @app.exception_handler(OperationalError)
    async def on_db_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        # A lock wait that timed out: PostgreSQL's lock_timeout (SQLSTATE 55P03,
        # psycopg.errors.LockNotAvailable) or SQLite's busy timeout (SQLITE_BUSY).
        orig = exc.orig
        lock_timeout = getattr(orig, "sqlstate", None) == "55P03" or str(
            getattr(orig, "sqlite_errorname", "")
        ).startswith("SQLITE_BUSY")
        if lock_timeout:
            log.warning("lock_timeout", error=type(orig).__name__)
            body = problem_body(
                status=503,
                code="lock_timeout",
                title="Service unavailable",
                detail="Another change (e.g. a bulk change) held the data this request needs "
                "longer than the lock timeout; nothing was changed. Retry shortly.",
                instance=instance(request),
            )
        else:
            log.error("database_error", error=type(orig).__name__)
            body = problem_body(
                status=503,
                code="database_unavailable",
                title="Service unavailable",
                detail="The database is busy or unreachable; retry shortly.",
                instance=instance(request),
            )
        return JSONResponse(
            body,
            status_code=503,
            headers={"Retry-After": "1"},
            media_type="application/problem+json",
        )

    # Unexpected exceptions reach RequestContextMiddleware, which answers 500 problem+json.


def _add_problem_schema(app: FastAPI) -> None:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in problem.pop("$defs", {}).items():
            components[name] = sub
        components["Problem"] = problem
        # FastAPI's own validation-error schemas are never sent: every 422 is a Problem.
        # Every authenticated route can answer 429 (the per-token rate limit).
        for path, path_item in schema.get("paths", {}).items():
            for operation in path_item.values():
                if path.startswith("/api/"):
                    operation["responses"]["429"] = {
                        "description": "Rate limit reached: retry after `Retry-After` seconds",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": {
                            "application/problem+json": {
                                "schema": {"$ref": "#/components/schemas/Problem"}
                            }
                        },
                    }
                resp = operation.get("responses", {}).get("422")
                if resp is not None:
                    resp["content"] = {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    }
                    resp["description"] = "Validation failed: `errors` names each field"
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    db = database or Database(build_engine(settings))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler = None
        if settings.accounting_sync_interval > 0:
            scheduler = Scheduler(db, settings)
            scheduler.start()
        yield
        if scheduler is not None:
            scheduler.stop()
        if database is None:
            db.dispose()

    app = FastAPIOffline(
        title="crm-overview",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        favicon_url=None,
    )
    app.state.db = db
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter.from_settings(settings)
    install_error_handlers(app)
    for router in (
        ops_router,
        auth_router,
        company_router,
        users_router,
        tags_router,
        partners_router,
        sales_orders_router,
        crm_router,
        accounting_router,
    ):
        app.include_router(router)
    if settings.bench_routes:
        app.include_router(floor_router)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "If-None-Match",
                "Idempotency-Key",
                "X-Request-ID",
            ],
            expose_headers=["ETag", "Location", "Retry-After", "X-Request-ID"],
            max_age=600,
        )
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        allowed_hosts=settings.allowed_host_list,
    )
    _add_problem_schema(app)
    return app
