"""One pure-ASGI middleware for every request: request id, trusted hosts, body limit, access
log, metrics, security headers, and never an absolute ``Location`` built from ``Host``."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence

import structlog
from prometheus_client import Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import (
    PROBLEM_MEDIA_TYPE,
    BadRequest,
    PayloadTooLarge,
    problem_body,
    problem_response,
)

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

REQUESTS = Counter(
    "crm_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram(
    "crm_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
DOC_PATHS = ("/docs", "/redoc", "/static-offline-docs")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

log = structlog.get_logger("crm.http")


def internal_error(request_id: str, path: str | None) -> JSONResponse:
    body = problem_body(
        status=500,
        code="internal_error",
        title="Internal server error",
        detail=f"An unexpected error occurred (request id {request_id}).",
        instance=path,
    )
    return JSONResponse(body, status_code=500, media_type=PROBLEM_MEDIA_TYPE)


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body exceeds the limit of {limit} bytes.")


def invalid_host() -> BadRequest:
    # The Host sent is not echoed: it is the attacker's text.
    return BadRequest(
        "The Host header names a host this server does not answer for.", code="invalid_host"
    )


def _host_header(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"host":
            return str(value.decode("latin-1"))
    return None


def _hostname(host: str) -> str:
    """The name in a Host header, without its port: ``[::1]:8000`` -> ``[::1]``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(host: str | None, allowed: Sequence[str]) -> bool:
    """Whether ``host`` (a Host header) is one of ``allowed``: names (any port), ``*.domain``
    for its subdomains, or ``*`` for any. No allowed hosts: any Host is accepted."""
    if not allowed or "*" in allowed:
        return True
    if not host:
        return False
    name = _hostname(host)
    for pattern in allowed:
        pattern = pattern.strip().lower()
        if name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


def relative_location(location: str, scope: Scope) -> str:
    """``location`` without the scheme and authority when they are this request's own: what
    Starlette's trailing-slash redirect (and anything else using ``URL(scope=...)``) builds
    from the client's ``Host`` header. A client follows a relative ``Location`` to the host it
    asked, so nothing the client sent as ``Host`` is ever handed back as a place to go."""
    scheme = scope.get("scheme", "http")
    authorities = []
    host = _host_header(scope)
    if host is not None:
        authorities.append(host)
    server = scope.get("server")
    if server:
        authorities += [f"{server[0]}:{server[1]}", str(server[0])]
    for authority in authorities:
        prefix = f"{scheme}://{authority}"
        if location[: len(prefix)].lower() == prefix.lower():
            rest = location[len(prefix) :]
            if rest[:1] in ("", "/", "?", "#"):
                # One leading slash: "//x" would be a URL of another host.
                return "/" + rest.lstrip("/\\")
    return location


def log_unhandled(path: str | None) -> None:
    """Log the exception being handled, with the request id bound (the logging setup keeps
    database values out of it)."""
    log.exception("unhandled_error", path=path)


class RequestContextMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, allowed_hosts: Sequence[str] = ()
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.allowed_hosts = [h.strip().lower() for h in allowed_hosts if h.strip()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        limit = self.max_body_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        status_sent = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, status_sent
            if message["type"] == "http.response.start":
                status = message["status"]
                status_sent = True
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                for key, value in SECURITY_HEADERS:
                    headers.append(key.decode(), value.decode())
                if "location" in headers:
                    headers["Location"] = relative_location(headers["location"], scope)
                path: str = scope.get("path", "")
                if not path.startswith(DOC_PATHS):
                    headers.append(API_CSP[0].decode(), API_CSP[1].decode())
                if path.startswith("/api/") and "cache-control" not in headers:
                    headers["Cache-Control"] = "private, no-cache"
            await send(message)

        if not host_allowed(_host_header(scope), self.allowed_hosts):
            try:
                await problem_response(invalid_host(), instance=scope.get("path"))(
                    scope, receive, send_wrapper
                )
            finally:
                self._finish(scope, status, started)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            # Refuse before reading a byte of it.
            try:
                await problem_response(too_large(limit), instance=scope.get("path"))(
                    scope, receive, send_wrapper
                )
            finally:
                self._finish(scope, status, started)
            return
        app_receive = limited_receive
        if not declared and scope.get("method") in BODY_METHODS:
            # No Content-Length (chunked): read the body here, up to the limit, so an
            # oversized one is refused with 413 before the app parses any of it.
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
                if size > limit:
                    try:
                        await problem_response(too_large(limit), instance=scope.get("path"))(
                            scope, receive, send_wrapper
                        )
                    finally:
                        self._finish(scope, status, started)
                    return
            replayed = False

            async def buffered_receive() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                return await receive()

            app_receive = buffered_receive
        try:
            await self.app(scope, app_receive, send_wrapper)
        except Exception:
            # Answer here, inside this middleware, so the 500 carries the request id and the
            # security headers too; log it while the request id is still bound.
            log_unhandled(scope.get("path"))
            if status_sent:
                raise
            await internal_error(request_id, scope.get("path"))(scope, receive, send_wrapper)
        finally:
            self._finish(scope, status, started)

    @staticmethod
    def _finish(scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route = _route_template(scope)
        method = scope.get("method", "")
        REQUESTS.labels(method, route, str(status)).inc()
        LATENCY.labels(method, route).observe(elapsed)
        principal = scope.get("state", {}).get("principal")
        log.info(
            "request",
            method=method,
            path=scope.get("path"),
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            company_id=str(principal.company_id) if principal else None,
        )
        structlog.contextvars.unbind_contextvars("request_id")


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"
