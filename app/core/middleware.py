"""One pure-ASGI middleware for every request: request id, trusted hosts, body limit, HEAD
as GET without the body, access log, metrics, security headers, and never an absolute
``Location`` built from ``Host``."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping, Sequence

import structlog
from prometheus_client import Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import (
    AppError,
    BadRequest,
    InternalError,
    PayloadTooLarge,
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

log = structlog.get_logger("crm.http")


def internal_error(request_id: str) -> InternalError:
    # Never the exception's text: it is logged (with the request id), not answered.
    return InternalError(f"An unexpected error occurred (request id {request_id}).")


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
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        allowed_hosts: Sequence[str] = (),
        body_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Paths whose POST body has a limit of its own (the partner import's file).
        self.body_limits = dict(body_limits or {})
        self.allowed_hosts = [h.strip().lower() for h in allowed_hosts if h.strip()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = dict(scope["headers"])
        incoming = request_headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        status_sent = False
        method: str = scope.get("method", "")
        head = method == "HEAD"
        # HEAD is answered as GET without the body (RFC 9110 9.3.2), so every GET route
        # answers HEAD with the GET's status and headers. The app gets a copy of the scope:
        # the server's own scope still says HEAD, and the server sends no body for it either.
        app_scope = {**scope, "method": "GET"} if head else scope

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
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        async def answer(error: AppError) -> None:
            response = problem_response(error, instance=scope.get("path"))
            await response(scope, receive, send_wrapper)

        try:
            if not host_allowed(_host_header(scope), self.allowed_hosts):
                await answer(invalid_host())
                return
            limit = self.body_limit(method, scope.get("path", ""))
            body = await read_body(request_headers, receive, limit)
            if body is None:
                await answer(too_large(limit))
                return
            try:
                await self.app(app_scope, body, send_wrapper)
            except Exception:
                # Answer here, inside this middleware, so the 500 carries the request id and
                # the security headers too; log it while the request id is still bound.
                log_unhandled(scope.get("path"))
                if status_sent:
                    raise
                await answer(internal_error(request_id))
        finally:
            self._finish(app_scope, method, status, started)

    def body_limit(self, method: str, path: str) -> int:
        """The largest body this request may send: ``max_body_bytes``, or a POST to one of
        ``body_limits``' paths its own limit."""
        if method == "POST":
            return self.body_limits.get(path, self.max_body_bytes)
        return self.max_body_bytes

    @staticmethod
    def _finish(scope: Scope, method: str, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route = _route_template(scope)
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


async def read_body(headers: dict[bytes, bytes], receive: Receive, limit: int) -> Receive | None:
    """The one place the body limit is applied: the whole request body read here, whatever
    its framing (``Content-Length`` or chunked), before the app parses any of it. Returns a
    ``receive`` that replays it, or ``None`` when it is over ``limit`` bytes; a declared
    ``Content-Length`` over the limit is refused before a byte is read."""
    declared = headers.get(b"content-length", b"")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    more = True
    disconnect: Message | None = None
    while more:
        message = await receive()
        if message["type"] != "http.request":
            disconnect = message  # the client went away: none of its body is handed on
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return None
        more = message.get("more_body", False)
    body: Message = disconnect or {
        "type": "http.request",
        "body": b"".join(chunks),
        "more_body": False,
    }
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return body
        return await receive()

    return replay


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    # The template without convertors ("/api/v1/partners/{number}"), as the contract names it.
    return getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched"
