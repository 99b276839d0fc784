"""Per-token rate limits (429 with Retry-After, shared through Redis) and CORS."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import IN_CI, RollbackDatabase, assert_problem
from tests.factories import Tenant

REDIS_URL = os.environ.get("CRM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _client(settings: Settings, db: RollbackDatabase, **overrides: Any) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=overrides), database=db))


def _me(client: TestClient, token: str) -> Any:
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def test_over_the_rate_limit_is_429_with_retry_after(
    settings: Settings, db: RollbackDatabase, tenant: Tenant
) -> None:
    client = _client(settings, db, rate_limit="3/minute")
    token = tenant.tokens["read"]
    assert [_me(client, token).status_code for _ in range(3)] == [200, 200, 200]
    r = _me(client, token)
    assert_problem(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 60


def test_the_limit_counts_per_token(
    settings: Settings, db: RollbackDatabase, tenant: Tenant
) -> None:
    client = _client(settings, db, rate_limit="2/minute")
    for _ in range(2):
        assert _me(client, tenant.tokens["read"]).status_code == 200
    assert _me(client, tenant.tokens["read"]).status_code == 429
    assert _me(client, tenant.tokens["write"]).status_code == 200


def test_a_zero_rate_limit_means_no_limit(
    settings: Settings, db: RollbackDatabase, tenant: Tenant
) -> None:
    client = _client(settings, db, rate_limit="0")
    assert {_me(client, tenant.tokens["read"]).status_code for _ in range(30)} == {200}


@pytest.fixture
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        if IN_CI:
            raise
        pytest.skip(f"Redis unreachable at {REDIS_URL}: {exc}")
    return REDIS_URL


def test_processes_share_the_limit_through_redis(
    settings: Settings, db: RollbackDatabase, tenant: Tenant, redis_url: str
) -> None:
    # Two app instances stand for two server processes; a fresh limit string per run keeps
    # earlier runs' counters out of it.
    rate = f"{3 + uuid.uuid4().int % 1000}/hour"
    first = _client(settings, db, rate_limit=rate, redis_url=redis_url)
    second = _client(settings, db, rate_limit=rate, redis_url=redis_url)
    allowed = int(rate.split("/")[0])
    token = tenant.tokens["admin"]
    codes = [
        (first if i % 2 else second)
        .get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        .status_code
        for i in range(allowed + 1)
    ]
    assert codes[:allowed] == [200] * allowed
    assert codes[allowed] == 429


def test_cors_answers_only_configured_origins(
    settings: Settings, db: RollbackDatabase, tenant: Tenant
) -> None:
    client = _client(settings, db, cors_origins="https://app.example.com")
    preflight = client.options(
        "/api/v1/partners",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,idempotency-key",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
    r = client.get(
        "/api/v1/me",
        headers={
            "Origin": "https://app.example.com",
            "Authorization": f"Bearer {tenant.tokens['read']}",
        },
    )
    assert r.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "ETag" in r.headers["access-control-expose-headers"]
    other = client.get(
        "/api/v1/me",
        headers={
            "Origin": "https://evil.example",
            "Authorization": f"Bearer {tenant.tokens['read']}",
        },
    )
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_headers_without_configured_origins(
    settings: Settings, db: RollbackDatabase, tenant: Tenant
) -> None:
    client = _client(settings, db, cors_origins="")
    r = client.get(
        "/api/v1/me",
        headers={
            "Origin": "https://app.example.com",
            "Authorization": f"Bearer {tenant.tokens['read']}",
        },
    )
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.postgres_only
def test_postgresql_statements_have_a_timeout(settings: Settings) -> None:
    from sqlalchemy import text

    from app.db.session import build_engine

    engine = build_engine(settings.model_copy(update={"db_statement_timeout_ms": 1234}))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "1234ms"
    finally:
        engine.dispose()
