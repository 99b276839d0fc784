"""The Host header: never reflected into a ``Location``; with ``CRM_ALLOWED_HOSTS``, any other
host is refused with 400 problem+json ``invalid_host``."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app.core.config import Settings
from tests.conftest import AppFor, RollbackDatabase, assert_problem
from tests.factories import Tenant

EVIL_HOSTS = [
    "evil.example",
    "EVIL.example:8443",
    "evil.example/x?",
    "evil.example#",
    "user@evil.example",
    "[::1]:8000",
    "evil.example\\@good.example",
]


def _client(
    app_for: AppFor, settings: Settings, db: RollbackDatabase, **overrides: Any
) -> TestClient:
    app = app_for(settings.model_copy(update=overrides), db)
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


@pytest.fixture
def open_client(app_for: AppFor, settings: Settings, db: RollbackDatabase) -> Iterator[TestClient]:
    with _client(app_for, settings, db, allowed_hosts="") as c:
        yield c


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _slash_variants(app: Any) -> list[tuple[str, str, str]]:
    """(method, path as requested, the route's path) for every route, its trailing slash
    toggled: each is answered with a redirect to the route."""

    def flat(routes: list[Any]) -> Iterator[Any]:
        for route in routes:
            included = getattr(route, "original_router", None)
            yield from flat(included.routes) if included is not None else [route]

    out = []
    for route in flat(app.routes):
        if not isinstance(route, APIRoute):
            continue
        path = _concrete(route.path_format)
        for method in sorted(route.methods or ()):
            out.append((method, path + "/", path))
    return out


def _assert_relative(location: str, host: str) -> None:
    assert location.startswith("/"), location
    assert not location.startswith(("//", "/\\")), location
    assert "://" not in location, location
    for part in ("evil", host.lower()):
        assert part not in location.lower(), (host, location)


# --- (a) no Location built from Host -------------------------------------------------------


@pytest.mark.parametrize("host", EVIL_HOSTS)
def test_trailing_slash_redirect_never_carries_the_host(open_client: TestClient, host: str) -> None:
    r = open_client.get("/api/v1/partners/", headers={"Host": host})
    assert r.status_code in (307, 308), r.text
    assert r.headers["location"] == "/api/v1/partners"
    _assert_relative(r.headers["location"], host)


def test_the_redirect_is_path_and_query_only(open_client: TestClient) -> None:
    r = open_client.get(
        "/api/v1/partners/?limit=5&q=a%20b&sort=-name", headers={"Host": "evil.example"}
    )
    assert r.status_code in (307, 308)
    assert r.headers["location"] == "/api/v1/partners?limit=5&q=a%20b&sort=-name"


def test_no_route_redirects_to_the_host_sent(open_client: TestClient) -> None:
    variants = _slash_variants(open_client.app)
    assert len(variants) > 20
    seen_redirect = 0
    for method, path, target in variants:
        r = open_client.request(method, path, headers={"Host": "evil.example"})
        assert r.status_code != 500, (method, path, r.text)
        location = r.headers.get("location")
        if location is None:
            continue
        seen_redirect += 1
        _assert_relative(location, "evil.example")
        assert location == target, (method, path, location)
    assert seen_redirect > 0


@pytest.mark.parametrize("path", ["/healthz/", "/readyz/", "/metrics/", "/docs/", "/redoc/"])
def test_operations_redirects_are_relative(open_client: TestClient, path: str) -> None:
    r = open_client.get(path, headers={"Host": "evil.example"})
    assert r.status_code in (307, 308), r.text
    assert r.headers["location"] == path.rstrip("/")


def test_the_offline_docs_mount_redirect_is_relative(open_client: TestClient) -> None:
    r = open_client.get("/static-offline-docs", headers={"Host": "evil.example"})
    assert r.status_code in (307, 308), r.text
    _assert_relative(r.headers["location"], "evil.example")
    assert r.headers["location"] == "/static-offline-docs/"


def test_a_created_resource_location_ignores_the_host(
    open_client: TestClient, tenant: Tenant
) -> None:
    r = open_client.post(
        "/api/v1/partners",
        json={"name": "Host Test", "country": "DK"},
        headers={"Host": "evil.example", "Authorization": f"Bearer {tenant.tokens['write']}"},
    )
    assert r.status_code == 201, r.text
    _assert_relative(r.headers["location"], "evil.example")
    assert r.headers["location"] == f"/api/v1/partners/{r.json()['number']}"


def _asgi_get(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """One request straight through ASGI, so it can go without any Host header (HTTP/1.0)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.0",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("internal.host", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return {
        "status": start["status"],
        "headers": {k.decode().lower(): v.decode() for k, v in start["headers"]},
    }


def test_without_a_host_header_the_redirect_is_relative_too(open_client: TestClient) -> None:
    answer = _asgi_get(open_client.app, "/api/v1/partners/", [])
    assert answer["status"] in (307, 308)
    assert answer["headers"]["location"] == "/api/v1/partners"


# --- (b) CRM_ALLOWED_HOSTS -----------------------------------------------------------------


ALLOWED = "api.example.com, *.crm.example"


@pytest.fixture
def guarded(app_for: AppFor, settings: Settings, db: RollbackDatabase) -> Iterator[TestClient]:
    with _client(app_for, settings, db, allowed_hosts=ALLOWED) as c:
        yield c


def test_allowed_hosts_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_ALLOWED_HOSTS", " API.example.com ,*.crm.example,, ")
    assert Settings().allowed_host_list == ["api.example.com", "*.crm.example"]
    monkeypatch.delenv("CRM_ALLOWED_HOSTS")
    assert Settings(_env_file=None).allowed_host_list == []


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "api.example.com.evil.example",
        "evilapi.example.com",
        "crm.example",  # the wildcard names subdomains only
        "testserver",
        "api.example.com/x",
        *EVIL_HOSTS,
    ],
)
@pytest.mark.parametrize("path", ["/healthz", "/api/v1/me", "/api/v1/partners/", "/nope"])
def test_another_host_is_400_invalid_host(
    guarded: TestClient, tenant: Tenant, host: str, path: str
) -> None:
    r = guarded.get(
        path, headers={"Host": host, "Authorization": f"Bearer {tenant.tokens['read']}"}
    )
    body = assert_problem(r, 400, "invalid_host")
    assert "location" not in r.headers
    assert host not in r.text  # the refused Host is not echoed either
    assert r.headers.get("x-request-id")
    assert r.headers.get("x-content-type-options") == "nosniff"
    assert body["instance"] == path


@pytest.mark.parametrize(
    "host",
    [
        "api.example.com",
        "API.Example.COM",
        "api.example.com:8443",
        "eu.crm.example",
        "a.b.crm.example",
    ],
)
def test_an_allowed_host_is_served(guarded: TestClient, tenant: Tenant, host: str) -> None:
    assert guarded.get("/healthz", headers={"Host": host}).status_code == 200
    me = guarded.get(
        "/api/v1/me", headers={"Host": host, "Authorization": f"Bearer {tenant.tokens['read']}"}
    )
    assert me.status_code == 200, me.text
    r = guarded.get("/api/v1/partners/?limit=1", headers={"Host": host})
    assert r.status_code in (307, 308)
    assert r.headers["location"] == "/api/v1/partners?limit=1"


def test_healthz_works_for_an_allowed_host(guarded: TestClient) -> None:
    r = guarded.get("/healthz", headers={"Host": "api.example.com"})
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_a_request_without_host_is_refused_when_hosts_are_listed(guarded: TestClient) -> None:
    answer = _asgi_get(guarded.app, "/healthz", [])
    assert answer["status"] == 400
    assert answer["headers"]["content-type"].startswith("application/problem+json")


def test_a_star_allows_any_host(app_for: AppFor, settings: Settings, db: RollbackDatabase) -> None:
    with _client(app_for, settings, db, allowed_hosts="*") as c:
        assert c.get("/healthz", headers={"Host": "anything.example"}).status_code == 200


def test_no_allowed_hosts_accepts_any_host(open_client: TestClient) -> None:
    for host in ("anything.example", "10.0.0.7:8000", "testserver"):
        assert open_client.get("/healthz", headers={"Host": host}).status_code == 200


def test_the_refusal_is_counted_as_a_400(guarded: TestClient) -> None:
    r = guarded.get("/api/v1/me", headers={"Host": "evil.example"})
    assert r.status_code == 400
    metrics = guarded.get("/metrics", headers={"Host": "api.example.com"}).text
    counted = re.search(
        r'crm_http_requests_total\{method="GET",route="unmatched",status="400"\} ([0-9.]+)', metrics
    )
    assert counted, metrics
    assert float(counted.group(1)) >= 1
