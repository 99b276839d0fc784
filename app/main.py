"""The application: routers, middleware, error handlers, lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from starlette.responses import RedirectResponse

from app.accounting.router import router as accounting_router
from app.auth.cache import TokenCache
from app.auth.dependencies import authenticate
from app.auth.ratelimit import RateLimiter
from app.companies.router import router as company_router
from app.core.config import Settings, get_settings
from app.core.errors import declare_problems, install_error_handlers, problem_responses
from app.core.etags import IF_MATCH_PATTERN
from app.core.logging import configure_logging
from app.core.middleware import RequestContextMiddleware
from app.core.query import declare_strict_query, strict_query
from app.crm.router import router as crm_router
from app.db.session import Database, build_engine, build_replica_engine, request_slots_for
from app.events.router import router as events_router
from app.ops.bench import router as floor_router
from app.ops.router import router as ops_router
from app.partners.router import router as partners_router
from app.sales_orders.router import router as sales_orders_router
from app.tags.router import router as tags_router
from app.tokens.router import router as tokens_router
from app.users.router import router as users_router
from app.views.router import router as views_router
from app.webhooks.router import router as webhooks_router
from app.worker import start_inline

API_DESCRIPTION = """\
The CRM overview of a B2B food-and-beverage ERP: partners (customers) and their customer
stages, tags, owners and locations.

* **Auth**: `Authorization: Bearer <token>`; the token decides the company. Scopes `read` <
  `write` < `admin`.
* **Errors**: RFC 9457 `application/problem+json` with a stable `code`, and `errors[]` naming
  each field.
* **Lists**: `limit` (1-500), opaque `cursor` (`next_cursor` of the previous page),
  `include_total`, `sort=field` or `sort=-field` (nulls last, ties broken by number).
* **Query parameters**: an unknown one is rejected, never ignored (422
  `unknown_query_parameter`), and so is one that takes a single value given twice (422
  `repeated_query_parameter`); list filters such as `customer_stage`, `tag` and `status`
  repeat (`?tag=a&tag=b`: any of them).
* **Money**: strings with two decimals on output; input as a string or number with at most two.
* **Concurrency**: single resources carry an `ETag`; `PATCH`/`DELETE` honour `If-Match` (412;
  a malformed one: 400), `GET` honours `If-None-Match` (304).
* **HEAD**: every `GET` also answers `HEAD` (same status and headers, no body).
"""


def package_version() -> str:
    """The installed distribution's version: the contract's ``info.version``."""
    try:
        return version("crm-overview")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0+unknown"


async def redirect_to_docs(request: Request) -> RedirectResponse:
    """``GET /``: the browsable contract (a relative ``Location``; not an API operation, so
    not in the OpenAPI document)."""
    return RedirectResponse(request.scope.get("root_path", "") + "/docs", status_code=307)


def _complete_openapi(app: FastAPI) -> None:
    """The generated document, completed once: ``If-Match``'s grammar and its 400, the
    problem+json answers (``declare_problems``), and one tag per operation."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                _document_if_match(operation)
                # FastAPI lists a router's tags before the route's own: the last is the most
                # specific (``tokens`` under the ``auth`` router), and /docs shows each
                # operation once.
                if operation.get("tags"):
                    operation["tags"] = operation["tags"][-1:]
        declare_strict_query(schema)
        declare_problems(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document_if_match(operation: dict[str, Any]) -> None:
    """An operation that takes ``If-Match`` states its grammar and the 400 of a malformed one.
    The header is a string when sent (``str | None`` renders as "string or null", and a header
    has no null: not sending it is the optional case)."""
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "header" and parameter.get("name", "").lower() == "if-match":
            schema = parameter.get("schema", {})
            strings = [b for b in [schema, *schema.get("anyOf", [])] if b.get("type") == "string"]
            annotations = {k: v for k, v in schema.items() if k in ("title", "description")}
            parameter["schema"] = {
                **(strings[0] if strings else {"type": "string"}),
                "pattern": IF_MATCH_PATTERN,
                **annotations,
            }
            operation.setdefault("responses", {})["400"] = {
                **problem_responses(400)[400],
                "description": "Bad request: `If-Match` is neither `*` nor a list of quoted "
                "entity tags (`invalid_if_match`)",
            }


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    db = database or Database(
        build_engine(settings),
        build_replica_engine(settings),
        request_slots=request_slots_for(settings),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Webhook deliveries and the scheduled jobs, unless left to `crm worker` processes.
        # The database is the app's at start-up (app.state.db: a test harness may swap it).
        current: Database = app.state.db
        dispatching = start_inline(current, settings)
        yield
        if dispatching is not None:
            dispatching.stop(timeout=settings.webhook_timeout + 5)
        if database is None:
            current.dispose()

    app = FastAPIOffline(
        title="crm-overview",
        version=package_version(),
        description=API_DESCRIPTION,
        lifespan=lifespan,
        favicon_url=None,
    )
    app.state.db = db
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter.from_settings(settings)
    app.state.token_cache = TokenCache(settings.auth_cache_seconds)
    install_error_handlers(app)
    app.add_route("/", redirect_to_docs, methods=["GET"], include_in_schema=False)
    app.include_router(ops_router)
    # Every API route rejects an unknown query parameter, or a single-value one given twice
    # (422), once the token is checked (so 401 and the rate limit come first).
    strict = strict_query(after=authenticate)
    for router in (
        tokens_router,
        company_router,
        users_router,
        tags_router,
        partners_router,
        sales_orders_router,
        crm_router,
        views_router,
        accounting_router,
        events_router,
        webhooks_router,
    ):
        app.include_router(router, dependencies=[strict])
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
        body_limits={f"{partners_router.prefix}/import": settings.import_max_bytes},
    )
    _complete_openapi(app)
    return app
