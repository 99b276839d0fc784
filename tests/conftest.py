"""Test harness.

The backend comes from ``CRM_TEST_DATABASE``: ``sqlite`` (default) or ``postgresql``. PostgreSQL
runs against ``CRM_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/
test``), where each run (each pytest-xdist worker) creates, migrates and finally drops a
database of its own; on SQLite each has a file of its own. When PostgreSQL is unreachable its
tests are skipped, except under ``CI=true``, where that fails.

Each test runs inside a transaction that is rolled back: the app's sessions join it through
savepoints, so services commit as in production. Tests that need real commits across several
connections (concurrency) use ``committed_db`` instead.
"""

from __future__ import annotations

import gc
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastapi.dependencies.models as fastapi_models
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, make_url, text
from sqlalchemy.orm import Session

from app.auth.cache import TokenCache
from app.auth.ratelimit import RateLimiter
from app.core.config import Settings
from app.core.logging import configure_logging
from app.db.migrations import upgrade
from app.db.session import Database, build_engine
from app.main import create_app
from tests.factories import Tenant, make_tenant

BACKEND = os.environ.get("CRM_TEST_DATABASE", "sqlite").lower()
POSTGRES_URL = os.environ.get(
    "CRM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

if BACKEND not in ("sqlite", "postgresql"):
    raise pytest.UsageError("CRM_TEST_DATABASE must be sqlite or postgresql")


def pytest_report_header(config: pytest.Config) -> str:
    return f"crm-overview test database: {BACKEND}"


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # After the last test, the interpreter's final garbage collection would walk every object the
    # session made (apps, engines, schemas, hypothesis data): measured at over two minutes after
    # a whole run on a busy machine. Nothing still needs collecting, and the OS frees the memory.
    gc.freeze()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (CRM_TEST_DATABASE=postgresql)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


# FastAPI memoises, per callable, whether a dependency or endpoint is a generator or a
# coroutine (LRU caches of 4,096 entries each in fastapi.dependencies.models). Most tests share
# an app (``app_for``), but those that need one of their own (a process, a committed database)
# still build it, and the closures each app makes (its docs pages, its lifespan) are keys there
# that hold the whole app: 1 MB and some 6,000 objects each stayed alive, and the garbage
# collector walked them all on every full collection, slowing each later test. A process
# serves one app and never sees this; the tests forget those entries after each test.
_FASTAPI_CALLABLE_CACHES = [
    cache
    for name in (
        "_is_gen_callable_cached",
        "_is_async_gen_callable_cached",
        "_is_coroutine_callable_cached",
    )
    if callable(cache := getattr(fastapi_models, name, None)) and hasattr(cache, "cache_clear")
]


@pytest.fixture(autouse=True)
def _forget_each_tests_app() -> Iterator[None]:
    yield
    for cache in _FASTAPI_CALLABLE_CACHES:
        cache.cache_clear()


@contextmanager
def _postgres_database() -> Iterator[str]:
    admin_url = make_url(POSTGRES_URL)
    # One database per pytest process: under pytest-xdist each worker (gw0, gw1, ...) makes its
    # own, and the pid and random part keep concurrent runs on one server apart.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"crm_test_{worker}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        if IN_CI:
            raise RuntimeError(f"PostgreSQL unreachable at {admin_url!r} under CI") from exc
        pytest.skip(f"PostgreSQL unreachable at {admin_url.render_as_string()}: {exc}")
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    if BACKEND == "postgresql":
        with _postgres_database() as url:
            yield url
    else:
        with tempfile.TemporaryDirectory(prefix="crm-test-") as folder:
            yield f"sqlite:///{Path(folder) / 'test.db'}"


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # Walks over every route without a token would trip the failed-authentication limit
    # (tests/auth/test_limits_and_tokens.py tests it on an app of its own).
    # No inline dispatcher: its thread would share the test's one connection. Dispatching is
    # tested with a Dispatcher of its own (tests/webhooks).
    return Settings(
        database_url=database_url,
        log_json=True,
        log_level="INFO",
        rate_limit_auth_failures="0",
        dispatch_inline=False,
    )


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    eng = build_engine(settings)
    with eng.connect() as conn:
        upgrade(conn)
    yield eng
    eng.dispose()


class RollbackDatabase(Database):
    """Sessions on one connection whose outer transaction the test rolls back."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        super().__init__(connection.engine)

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        with Session(
            bind=self.connection,
            join_transaction_mode="create_savepoint",
            expire_on_commit=False,
        ) as session:
            yield session

    def dispose(self) -> None:  # the engine belongs to the test session
        pass


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        if outer.is_active:
            outer.rollback()


@pytest.fixture
def db(connection: Connection) -> RollbackDatabase:
    return RollbackDatabase(connection)


@pytest.fixture
def session(db: RollbackDatabase) -> Iterator[Session]:
    with db.session() as s:
        yield s


AppFor = Callable[[Settings, Database], Any]


@pytest.fixture(scope="session")
def app_for(engine: Engine) -> AppFor:
    """The app for these settings, on this database: one app per distinct settings for the
    whole run. FastAPI prepares each route (its dependencies, their validators) on the route's
    first request in an app: that was about a third of a test's time when every test built an
    app of its own. Each call points the app at the test's database and a fresh rate limiter;
    and token cache; its lifespan (``with TestClient(app)``) starts on that database, and its logs go to the
    test's stderr, as when ``create_app`` was called in the test."""
    built: dict[str, Any] = {}

    def app_for(settings: Settings, db: Database) -> Any:
        key = repr(list(settings))  # every field, by value
        app = built.get(key)
        if app is None:
            app = built[key] = create_app(settings, database=Database(engine))
        app.state.db = db
        app.state.rate_limiter = RateLimiter.from_settings(settings)
        app.state.token_cache = TokenCache(settings.auth_cache_seconds)
        configure_logging(settings.log_level, json=settings.log_json)  # to this test's stderr
        return app

    return app_for


@pytest.fixture
def app(app_for: AppFor, settings: Settings, db: RollbackDatabase) -> Any:
    return app_for(settings, db)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@dataclass
class Api:
    """A client bound to one tenant, with a token of each scope."""

    client: TestClient
    tenant: Tenant
    scope: str = "admin"
    extra_headers: dict[str, str] = field(default_factory=dict)

    def as_(self, scope: str) -> Api:
        return Api(self.client, self.tenant, scope)

    def headers(self, more: dict[str, str] | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.tenant.tokens[self.scope]}",
            **self.extra_headers,
            **(more or {}),
        }

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = self.headers(kwargs.pop("headers", None))
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.request("PATCH", path, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)


@pytest.fixture
def tenant(session: Session) -> Tenant:
    return make_tenant(session, slug="acme")


@pytest.fixture
def other_tenant(session: Session) -> Tenant:
    return make_tenant(session, slug="globex")


@pytest.fixture
def api(client: TestClient, tenant: Tenant) -> Api:
    return Api(client, tenant)


@pytest.fixture
def other_api(client: TestClient, other_tenant: Tenant) -> Api:
    return Api(client, other_tenant)


@pytest.fixture
def committed_db(settings: Settings, engine: Engine) -> Iterator[Database]:
    """A real database whose writes are committed; companies made here are removed after.

    Its writers wait up to a minute for a lock (production: 5 s on PostgreSQL, 10 s on SQLite):
    the concurrency tests that use it check numbers and totals, and on a machine busy with
    parallel workers a queue of writers can outlast the production wait. The lock timeout
    itself is tested with settings of its own (tests/partners/test_bulk_limits.py)."""
    patient = settings.model_copy(
        update={"db_lock_timeout_ms": 60_000, "sqlite_busy_timeout_ms": 60_000}
    )
    database = Database(build_engine(patient))
    yield database
    database.dispose()


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "code"} <= body.keys()
    if code is not None:
        assert body["code"] == code, body
    return body
