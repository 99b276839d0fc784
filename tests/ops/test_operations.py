"""Operations: health, readiness, metrics, request ids, security headers, offline docs, logs
and the answer to an unexpected exception."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import Settings
from app.db.migrations import downgrade, head_revision, upgrade
from app.db.session import Database, build_engine
from app.main import create_app
from tests.conftest import Api, RollbackDatabase

FreshClient = Callable[[], AbstractContextManager[TestClient]]
GENERATED_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY"}


def assert_security_headers(response: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))


def assert_request_id(response: Any) -> str:
    request_id = response.headers.get("x-request-id")
    assert request_id, dict(response.headers)
    assert GENERATED_REQUEST_ID.match(request_id), request_id
    return request_id


# -- health and readiness ---------------------------------------------------------------


def test_healthz_answers_ok_without_a_token(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"status": "ok"}


def test_readyz_is_ready_on_a_migrated_database(client: TestClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "status": "ready",
        "database": "ok",
        "revision": head_revision(),
        "rate_limits": "per_process",
        "replica": "none",
    }


@pytest.fixture
def empty_sqlite_settings() -> Iterator[Settings]:
    with tempfile.TemporaryDirectory(prefix="crm-ops-") as folder:
        yield Settings(database_url=f"sqlite:///{Path(folder) / 'empty.db'}", log_json=True)


def test_readyz_reports_an_empty_database_as_not_migrated(
    empty_sqlite_settings: Settings,
) -> None:
    database = Database(build_engine(empty_sqlite_settings))
    try:
        app = create_app(empty_sqlite_settings, database=database)
        with TestClient(app, raise_server_exceptions=False) as c:
            r = c.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json() == {
            "status": "not_ready",
            "database": "not_migrated",
            "revision": None,
            "rate_limits": "per_process",
            "replica": "none",
        }
    finally:
        database.dispose()


def test_readyz_reports_an_older_revision_as_not_migrated(
    empty_sqlite_settings: Settings,
) -> None:
    database = Database(build_engine(empty_sqlite_settings))
    try:
        with database.engine.begin() as conn:
            upgrade(conn)
        with database.engine.begin() as conn:
            downgrade(conn, "-1")
        with database.engine.connect() as conn:
            older = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        app = create_app(empty_sqlite_settings, database=database)
        with TestClient(app, raise_server_exceptions=False) as c:
            r = c.get("/readyz")
        if older is None:  # a single migration: -1 is base, the table is empty
            assert r.json()["revision"] is None
        assert r.status_code == 503, r.text
        assert r.json() == {
            "status": "not_ready",
            "database": "not_migrated",
            "revision": older,
            "rate_limits": "per_process",
            "replica": "none",
        }
    finally:
        database.dispose()


def test_readyz_reports_an_unreachable_database(tmp_path: Path) -> None:
    # A SQLite file in a folder that does not exist cannot be opened.
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    database = Database(build_engine(settings))
    try:
        app = create_app(settings, database=database)
        with TestClient(app, raise_server_exceptions=False) as c:
            r = c.get("/readyz")
        assert r.status_code == 503, r.text
        assert r.json() == {
            "status": "not_ready",
            "database": "unreachable",
            "revision": None,
            "rate_limits": "per_process",
            "replica": "none",
        }
    finally:
        database.dispose()


# -- metrics --------------------------------------------------------------------------


def requests_total(client: TestClient, *, method: str, route: str, status: str) -> float:
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    for family in text_string_to_metric_families(r.text):
        if family.name != "crm_http_requests":
            continue
        for sample in family.samples:
            if sample.name == "crm_http_requests_total" and sample.labels == {
                "method": method,
                "route": route,
                "status": status,
            }:
                return sample.value
    return 0.0


def test_metrics_is_prometheus_text(client: TestClient) -> None:
    client.get("/healthz")
    r = client.get("/metrics")
    assert r.status_code == 200, r.text
    content_type = r.headers["content-type"]
    assert content_type.startswith("text/plain; version="), content_type
    names = {family.name for family in text_string_to_metric_families(r.text)}
    assert {"crm_http_requests", "crm_http_request_duration_seconds"} <= names
    assert "# TYPE crm_http_requests_total counter" in r.text


def test_metrics_counts_requests_by_route_template(api: Api) -> None:
    client = api.client
    before_health = requests_total(client, method="GET", route="/healthz", status="200")
    before_partner = requests_total(
        client, method="GET", route="/api/v1/partners/{number}", status="404"
    )
    client.get("/healthz")
    client.get("/healthz")
    api.get("/api/v1/partners/987654")
    assert requests_total(client, method="GET", route="/healthz", status="200") == (
        before_health + 2
    )
    assert requests_total(
        client, method="GET", route="/api/v1/partners/{number}", status="404"
    ) == (before_partner + 1)


def test_metrics_labels_unknown_paths_as_one_route(client: TestClient) -> None:
    before = requests_total(client, method="GET", route="unmatched", status="404")
    client.get("/no/such/path/one")
    client.get("/no/such/path/two")
    assert requests_total(client, method="GET", route="unmatched", status="404") == before + 2


# -- request id and security headers ---------------------------------------------------


def test_a_request_id_is_generated_when_none_is_sent(client: TestClient) -> None:
    first = assert_request_id(client.get("/healthz"))
    second = assert_request_id(client.get("/healthz"))
    assert first != second


def test_a_valid_incoming_request_id_is_echoed(client: TestClient) -> None:
    for incoming in ("abc-123", "trace:4f2a.9_x", "A" * 64):
        r = client.get("/healthz", headers={"X-Request-ID": incoming})
        assert r.headers["x-request-id"] == incoming


@pytest.mark.parametrize(
    "incoming",
    ["A" * 200, "has spaces in it", "semi;colon", "new\tline", "ünïcode", ""],
    ids=["200-chars", "spaces", "semicolon", "tab", "non-ascii", "empty"],
)
def test_an_invalid_incoming_request_id_is_replaced(client: TestClient, incoming: str) -> None:
    r = client.get("/healthz", headers={"X-Request-ID": incoming.encode("utf-8")})
    request_id = assert_request_id(r)
    assert request_id != incoming


@pytest.mark.parametrize(
    ("method", "path", "authorized", "status"),
    [
        ("GET", "/healthz", False, 200),
        ("GET", "/readyz", False, 200),
        ("GET", "/metrics", False, 200),
        ("GET", "/api/v1/me", True, 200),
        ("GET", "/api/v1/me", False, 401),
        ("GET", "/api/v1/partners/987654", True, 404),
        ("GET", "/api/v1/partners/not-a-number", True, 422),
        ("POST", "/api/v1/partners", True, 422),
        ("DELETE", "/healthz", False, 405),
        ("GET", "/no/such/route", False, 404),
        ("GET", "/docs", False, 200),
        ("GET", "/redoc", False, 200),
        ("GET", "/openapi.json", False, 200),
    ],
)
def test_every_response_carries_request_id_and_security_headers(
    api: Api, method: str, path: str, authorized: bool, status: int
) -> None:
    if authorized:
        r = api.request(method, path, headers={"X-Request-ID": "ops-test-1"})
    else:
        r = api.client.request(method, path, headers={"X-Request-ID": "ops-test-1"})
    assert r.status_code == status, r.text
    assert r.headers.get("x-request-id") == "ops-test-1"
    assert_security_headers(r)


# -- offline docs ---------------------------------------------------------------------


class AssetCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for attr in ("src", "href", "spec-url"):
            value = found.get(attr)
            if value:
                self.urls.append(value)


def page_assets(html: str) -> list[str]:
    collector = AssetCollector()
    collector.feed(html)
    # Swagger UI takes the contract's URL from a script literal (`url: '/openapi.json'`).
    collector.urls += re.findall(r"""\burl:\s*['"]([^'"]+)['"]""", html)
    return collector.urls


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_page_uses_only_assets_the_app_serves(client: TestClient, page: str) -> None:
    r = client.get(page)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html, re.IGNORECASE), (
        "the page loads something from another host"
    )
    assert "http://" not in html
    assert "https://" not in html
    assets = page_assets(html)
    scripts = [url for url in assets if url.endswith(".js")]
    assert scripts, f"no script on {page}: {assets}"
    for url in assets:
        assert url.startswith("/"), f"{page} references {url!r}, not a local path"
        asset = client.get(url)
        assert asset.status_code == 200, (url, asset.status_code)
        assert asset.content, url


def test_swagger_ui_loads_its_stylesheet_locally(client: TestClient) -> None:
    html = client.get("/docs").text
    stylesheets = [url for url in page_assets(html) if url.endswith(".css")]
    assert stylesheets
    for url in stylesheets:
        r = client.get(url)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/css")


# -- logs -----------------------------------------------------------------------------


def log_records(captured: str) -> list[dict[str, Any]]:
    lines = [line for line in captured.splitlines() if line.strip()]
    assert lines, "nothing was logged"
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a log line is not JSON: {line!r}")
    return records


@pytest.fixture
def fresh_client(
    settings: Settings, db: RollbackDatabase, capfd: pytest.CaptureFixture[str]
) -> FreshClient:
    """Makes a client of a new app inside the test body.

    ``create_app`` configures structlog with the ``sys.stderr`` of that moment, and only in the
    test body is that the stream ``capfd`` reads; the throwaway ``/test-only/boom`` route
    raises an unexpected exception.
    """

    @contextmanager
    def make() -> Iterator[TestClient]:
        saved = structlog.get_config()
        app = create_app(settings, database=db)

        @app.get("/test-only/boom", include_in_schema=False)
        def boom() -> None:
            raise Boom("secret internals: password=hunter2 at /srv/app/secret.py")

        try:
            with TestClient(app, raise_server_exceptions=False) as c:
                capfd.readouterr()  # drop anything logged before the test's requests
                yield c
        finally:
            structlog.configure(**saved)  # capfd's stream closes with the test

    return make


class Boom(RuntimeError):
    pass


def test_log_lines_are_json_with_the_request_id(
    fresh_client: FreshClient, capfd: pytest.CaptureFixture[str]
) -> None:
    with fresh_client() as c:
        r = c.get("/healthz", headers={"X-Request-ID": "log-test-42"})
        assert r.status_code == 200
        records = log_records(capfd.readouterr().err)
    requests = [rec for rec in records if rec.get("event") == "request"]
    assert len(requests) == 1, records
    record = requests[0]
    assert record["request_id"] == "log-test-42"
    assert record["method"] == "GET"
    assert record["path"] == "/healthz"
    assert record["status"] == 200
    assert record["level"] == "info"
    assert "timestamp" in record


def test_each_request_logs_its_own_request_id(
    fresh_client: FreshClient, capfd: pytest.CaptureFixture[str]
) -> None:
    with fresh_client() as c:
        ids = [assert_request_id(c.get("/healthz")) for _ in range(3)]
        records = log_records(capfd.readouterr().err)
    requests = [r for r in records if r.get("event") == "request"]
    assert [r["request_id"] for r in requests] == ids


def test_logs_never_contain_the_bearer_token(
    fresh_client: FreshClient, capfd: pytest.CaptureFixture[str], api: Api
) -> None:
    token = api.tenant.tokens["admin"]
    wrong = token[:-4] + "XXXX"
    auth = {"Authorization": f"Bearer {token}"}
    wrong_auth = {"Authorization": f"Bearer {wrong}"}
    with fresh_client() as c:
        assert c.get("/api/v1/me", headers=auth).status_code == 200
        r = c.post("/api/v1/partners", headers=auth, json={"name": "X", "country": "DK"})
        assert r.status_code == 201, r.text
        assert c.get("/api/v1/partners/987654", headers=auth).status_code == 404
        assert c.post("/api/v1/partners", headers=auth, json={}).status_code == 422
        assert c.get("/api/v1/me", headers=wrong_auth).status_code == 401
        assert c.get("/test-only/boom", headers=auth).status_code == 500
        captured = capfd.readouterr()
    records = log_records(captured.err)
    assert len([r for r in records if r.get("event") == "request"]) == 6
    output = captured.err + captured.out
    assert token not in output
    assert wrong not in output
    assert "Bearer" not in output


# -- unexpected exceptions ------------------------------------------------------------


def test_an_unexpected_exception_is_a_500_problem_without_internals(
    fresh_client: FreshClient,
) -> None:
    with fresh_client() as c:
        r = c.get("/test-only/boom")
    assert r.status_code == 500
    assert r.headers.get("content-type", "").startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["status"] == 500
    assert body["code"] == "internal_error"
    assert {"type", "title", "detail"} <= body.keys()
    for leak in ("Traceback", "Boom", "hunter2", "secret", 'File "', "raise "):
        assert leak not in r.text, leak


def test_an_unexpected_exception_keeps_request_id_and_security_headers(
    fresh_client: FreshClient,
) -> None:
    with fresh_client() as c:
        r = c.get("/test-only/boom", headers={"X-Request-ID": "boom-1"})
    assert r.status_code == 500
    assert r.headers.get("x-request-id") == "boom-1", dict(r.headers)
    assert_security_headers(r)


def test_an_unexpected_exception_is_logged_with_its_request_id(
    fresh_client: FreshClient, capfd: pytest.CaptureFixture[str]
) -> None:
    with fresh_client() as c:
        r = c.get("/test-only/boom", headers={"X-Request-ID": "boom-2"})
        records = log_records(capfd.readouterr().err)
    assert r.status_code == 500
    assert "boom-2" in r.json()["detail"]
    errors = [rec for rec in records if rec.get("event") == "unhandled_error"]
    assert len(errors) == 1, records
    assert errors[0]["level"] == "error"
    assert "Boom" in errors[0].get("exception", "")
    requests = [rec for rec in records if rec.get("event") == "request"]
    assert [(rec["request_id"], rec["status"]) for rec in requests] == [("boom-2", 500)]
    assert errors[0].get("request_id") == "boom-2", errors[0]


def test_an_unexpected_exception_is_counted_as_a_500(fresh_client: FreshClient) -> None:
    with fresh_client() as c:
        before = requests_total(c, method="GET", route="/test-only/boom", status="500")
        c.get("/test-only/boom")
        after = requests_total(c, method="GET", route="/test-only/boom", status="500")
    assert after == before + 1
