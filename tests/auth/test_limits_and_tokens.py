"""Limits that hold: per company over all its tokens, failed authentication per address
(answered before any database work), shared through Redis across processes, and still
answering when Redis dies; token expiry, last use and the active-token cap."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from app.auth import ratelimit
from app.core.config import Settings
from app.db.session import Database
from app.demo import ensure_demo
from app.main import create_app
from app.models import ApiToken, Company
from tests.conftest import IN_CI, RollbackDatabase, assert_problem
from tests.factories import Tenant, make_tenant


# Limits per day in these tests: the sliding window weighs the previous window's count, so a
# test whose requests straddle the window's boundary would see a lower count.
def _client(settings: Settings, db: RollbackDatabase, **overrides: Any) -> TestClient:
    return TestClient(
        create_app(settings.model_copy(update=overrides), database=db),
        raise_server_exceptions=False,
    )


def _me(client: TestClient, token: str) -> Any:
    return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


# -- per company ----------------------------------------------------------------------------


def test_the_company_limit_counts_every_token_of_the_company(
    settings: Settings, db: RollbackDatabase, tenant: Tenant, other_tenant: Tenant
) -> None:
    client = _client(settings, db, rate_limit="100/day", rate_limit_company="4/day")
    codes = [_me(client, tenant.tokens[scope]).status_code for scope in ("read", "write") * 2]
    assert codes == [200, 200, 200, 200]
    r = _me(client, tenant.tokens["admin"])  # a third token of the same company
    assert_problem(r, 429, "rate_limited")
    assert "company" in r.json()["detail"]
    assert int(r.headers["Retry-After"]) >= 1
    assert _me(client, other_tenant.tokens["read"]).status_code == 200  # others unaffected


def test_minting_tokens_does_not_raise_the_company_limit(
    settings: Settings, db: RollbackDatabase, tenant: Tenant
) -> None:
    client = _client(settings, db, rate_limit="100/day", rate_limit_company="6/day")
    admin = {"Authorization": f"Bearer {tenant.tokens['admin']}"}
    minted = [
        client.post("/api/v1/tokens", json={"scope": "read"}, headers=admin).json()["token"]
        for _ in range(3)
    ]
    codes = [_me(client, token).status_code for token in minted for _ in range(2)]
    assert codes.count(429) >= 3  # 3 mints + 6 reads against a company limit of 6


# -- failed authentication --------------------------------------------------------------------


def test_failed_authentication_is_limited_per_address_before_any_query(
    settings: Settings, db: RollbackDatabase, tenant: Tenant
) -> None:
    client = _client(settings, db, rate_limit_auth_failures="3/day")
    assert _me(client, "crm_wrong").status_code == 401
    assert client.get("/api/v1/me").status_code == 401  # no token counts too
    assert _me(client, "crm_wrong_again").status_code == 401
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.connection.engine, "before_cursor_execute", count)
    try:
        blocked = _me(client, "crm_still_guessing")
        valid = _me(client, tenant.tokens["read"])  # even a good token, from this address
    finally:
        event.remove(db.connection.engine, "before_cursor_execute", count)
    assert_problem(blocked, 429, "too_many_auth_failures")
    assert_problem(valid, 429, "too_many_auth_failures")
    assert int(blocked.headers["Retry-After"]) >= 1
    assert statements == []  # refused without touching the database


def test_successful_requests_do_not_count_as_failures(
    settings: Settings, db: RollbackDatabase, tenant: Tenant
) -> None:
    client = _client(settings, db, rate_limit_auth_failures="2/day")
    assert {_me(client, tenant.tokens["read"]).status_code for _ in range(10)} == {200}
    assert _me(client, "crm_wrong").status_code == 401


# -- Redis: shared, and its failure ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own on a free port, so that it can be killed."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if IN_CI:
                raise RuntimeError("redis-server is not installed")
            pytest.skip("redis-server is not installed")
        self.binary = binary
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [self.binary, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_two_processes_share_the_token_and_company_limits_through_redis(
    settings: Settings, db: RollbackDatabase, tenant: Tenant, private_redis: PrivateRedis
) -> None:
    """Two app instances stand for two server processes: each has its own limiter."""
    shared = {"redis_url": private_redis.url, "redis_key_prefix": uuid.uuid4().hex}
    first = _client(settings, db, rate_limit="4/day", **shared)
    second = _client(settings, db, rate_limit="4/day", **shared)
    token = tenant.tokens["read"]
    codes = [
        (first if i % 2 else second)
        .get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        .status_code
        for i in range(5)
    ]
    assert codes == [200, 200, 200, 200, 429]
    assert first.get("/readyz").json()["rate_limits"] == "shared"


def test_redis_killed_mid_traffic_degrades_to_per_process_limits(
    settings: Settings,
    db: RollbackDatabase,
    tenant: Tenant,
    private_redis: PrivateRedis,
    capfd: pytest.CaptureFixture[str],
) -> None:
    client = _client(
        settings,
        db,
        rate_limit="5/day",
        redis_url=private_redis.url,
        redis_key_prefix=uuid.uuid4().hex,
    )
    limiter = client.app.state.rate_limiter  # type: ignore[attr-defined]
    now = [1000.0]
    limiter.clock = lambda: now[0]
    token = tenant.tokens["read"]
    assert _me(client, token).status_code == 200
    assert client.get("/readyz").json()["rate_limits"] == "shared"

    private_redis.kill()
    codes = [_me(client, token).status_code for _ in range(6)]
    assert 500 not in codes
    assert codes[:5] == [200] * 5  # counted afresh in this process
    assert codes[5] == 429  # and still limited
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["rate_limits"] == "degraded"
    assert capfd.readouterr().err.count("rate_limit_storage_unavailable") == 1  # logged once

    private_redis.start()
    now[0] += ratelimit.RETRY_REDIS_AFTER  # the next request tries Redis again
    assert _me(client, tenant.tokens["write"]).status_code == 200
    assert client.get("/readyz").json()["rate_limits"] == "shared"


# -- tokens: expiry, last use, cap -----------------------------------------------------------


def _admin(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.tokens['admin']}"}


def test_a_token_with_an_expiry_stops_working_then(
    client: TestClient, session: Session, tenant: Tenant
) -> None:
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = client.post(
        "/api/v1/tokens", json={"scope": "read", "expires_at": soon}, headers=_admin(tenant)
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["expires_at"] is not None
    assert _me(client, created["token"]).status_code == 200
    token = session.scalar(select(ApiToken).where(ApiToken.id == uuid.UUID(created["id"])))
    assert token is not None
    token.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    session.commit()
    r = _me(client, created["token"])
    assert_problem(r, 401, "token_expired")
    assert "invalid_token" in r.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("expires_at", "code"),
    [
        ("2020-01-01T00:00:00Z", "expires_at_in_past"),
        ("9999-12-31T23:59:59-12:00", "expires_at_too_far"),
        ("2031-01-01", "validation_failed"),
    ],
)
def test_an_expiry_in_the_past_or_too_far_is_refused(
    client: TestClient, tenant: Tenant, expires_at: str, code: str
) -> None:
    r = client.post(
        "/api/v1/tokens",
        json={"scope": "read", "expires_at": expires_at},
        headers=_admin(tenant),
    )
    body = assert_problem(r, 422)
    assert body["errors"][0]["loc"] == ["body", "expires_at"]
    if code != "validation_failed":
        assert body["errors"][0]["code"] == code


def test_last_used_at_is_recorded_to_the_minute(settings: Settings, committed_db: Database) -> None:
    """On a committed database: the use is recorded after the answer, in a transaction of its
    own (the rolled-back harness nests it inside the request's and would discard it)."""
    with committed_db.session() as session:
        tenant = make_tenant(session, slug=f"lastuse-{uuid.uuid4().hex[:8]}")
        session.commit()
    client = TestClient(create_app(settings, database=committed_db))
    try:
        listed = client.get("/api/v1/tokens", headers=_admin(tenant)).json()["items"]
        read_id = next(t["id"] for t in listed if t["scope"] == "read")
        before = client.get(f"/api/v1/tokens/{read_id}", headers=_admin(tenant)).json()
        assert before["last_used_at"] is None
        assert _me(client, tenant.tokens["read"]).status_code == 200
        first = client.get(f"/api/v1/tokens/{read_id}", headers=_admin(tenant)).json()
        assert first["last_used_at"] is not None
        assert _me(client, tenant.tokens["read"]).status_code == 200
        again = client.get(f"/api/v1/tokens/{read_id}", headers=_admin(tenant)).json()
        assert again["last_used_at"] == first["last_used_at"]  # not rewritten within a minute
    finally:
        with committed_db.session() as session:
            session.execute(delete(Company).where(Company.id == tenant.company.id))
            session.commit()


def test_active_tokens_are_capped_per_company(
    settings: Settings, db: RollbackDatabase, session: Session, tenant: Tenant
) -> None:
    client = _client(settings, db, max_tokens_per_company=4)  # the tenant holds 3
    assert (
        client.post("/api/v1/tokens", json={"scope": "read"}, headers=_admin(tenant)).status_code
        == 201
    )
    r = client.post("/api/v1/tokens", json={"scope": "read"}, headers=_admin(tenant))
    body = assert_problem(r, 409, "token_limit_reached")
    assert "4" in body["detail"]
    # An expired token no longer counts.
    token = session.scalar(
        select(ApiToken).where(ApiToken.company_id == tenant.company.id, ApiToken.name == "read")
    )
    assert token is not None
    token.expires_at = datetime.now(UTC) - timedelta(minutes=1)
    session.commit()
    assert (
        client.post("/api/v1/tokens", json={"scope": "read"}, headers=_admin(tenant)).status_code
        == 201
    )


def test_each_demo_run_replaces_the_previous_demo_token(session: Session) -> None:
    first = ensure_demo(session)
    second = ensure_demo(session)
    assert first != second
    names = session.scalars(select(ApiToken.name).where(ApiToken.name == "demo")).all()
    assert names == ["demo"]


def test_a_write_records_its_token_use_with_its_change(client: TestClient, tenant: Tenant) -> None:
    write = {"Authorization": f"Bearer {tenant.tokens['write']}"}
    assert client.post("/api/v1/tags", json={"name": "Organic"}, headers=write).status_code == 201
    listed = client.get("/api/v1/tokens", headers=_admin(tenant)).json()["items"]
    used = {t["scope"]: t["last_used_at"] for t in listed}
    assert used["write"] is not None
    assert used["read"] is None
