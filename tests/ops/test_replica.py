"""A real streaming replica (CRM_DATABASE_REPLICA_URL): a primary and its replica started by
the test (initdb and pg_basebackup in temporary directories, as the database's system user,
on free ports). The overview, its exports, the summary and the lists read from the replica
(a row written on the primary shows there once replayed); a partner's own page, writes and the
event feed stay on the primary; when the replica stops, reads go to the primary and /readyz
says so."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.db.migrations import upgrade
from app.db.session import Database, build_engine
from app.main import create_app
from tests.conftest import IN_CI
from tests.factories import make_tenant
from tests.ops import engines
from tests.ops.engines import Cluster

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]


@pytest.fixture(scope="module")
def clusters() -> Iterator[tuple[Cluster, Cluster]]:
    try:
        with engines.streaming_pair() as pair:
            yield pair
    except engines.Unavailable as exc:
        if IN_CI:
            raise
        pytest.skip(str(exc))


def _eventually(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the replica never caught up"
        time.sleep(0.05)  # another process replays: polled


def test_reads_that_tolerate_lag_come_from_the_replica_and_fall_back_to_the_primary(
    clusters: tuple[Cluster, Cluster],
) -> None:
    primary, replica = clusters
    settings = Settings(
        database_url=primary.url(),
        database_replica_url=replica.url(),
        rate_limit_auth_failures="0",
        dispatch_inline=False,
        log_json=True,
    )
    engine = build_engine(settings.model_copy(update={"database_replica_url": None}))
    with engine.begin() as conn:
        upgrade(conn)
    with Database(engine).session() as s:
        tenant = make_tenant(s)
    engine.dispose()
    # Until the replica has replayed the migrations, the table is not there to count.
    _eventually(
        lambda: (
            bool(replica.sql("SELECT to_regclass('api_tokens') IS NOT NULL"))
            and replica.sql("SELECT count(*) FROM api_tokens") == len(tenant.tokens)
        )
    )

    headers = {"Authorization": f"Bearer {tenant.tokens['admin']}"}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:

        def get(path: str, **params: Any) -> Any:
            r = client.get(path, params=params, headers=headers)
            assert r.status_code == 200, r.text
            return r

        def overview_numbers() -> list[int]:
            return [row["number"] for row in get("/api/v1/crm/overview").json()["items"]]

        ready = get("/readyz").json()
        assert ready["replica"] == "ok"
        assert ready["status"] == "ready"

        replica.sql("SELECT pg_wal_replay_pause()")
        created = client.post(
            "/api/v1/partners",
            json={"name": "Replica Deli", "country": "DK", "customer_stage": "lead"},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        number = created.json()["number"]
        # The primary: the partner's own page and the event feed.
        assert get(f"/api/v1/partners/{number}").json()["name"] == "Replica Deli"
        events = get("/api/v1/events").json()["items"]
        assert "partner.created" in [e["type"] for e in events]
        # The replica, whose replay is paused: not there yet.
        assert overview_numbers() == []
        assert get("/api/v1/partners").json()["items"] == []
        assert get("/api/v1/crm/summary").json()["total"]["partners"] == 0
        lines = list(csv.reader(io.StringIO(get("/api/v1/crm/overview.csv").text)))
        assert len(lines) == 1  # the header alone

        replica.sql("SELECT pg_wal_replay_resume()")
        _eventually(lambda: overview_numbers() == [number])
        assert [p["number"] for p in get("/api/v1/partners").json()["items"]] == [number]
        assert get("/api/v1/crm/summary").json()["total"]["partners"] == 1

        replica.stop()
        assert overview_numbers() == [number]  # from the primary now
        assert [p["number"] for p in get("/api/v1/partners").json()["items"]] == [number]
        r = client.get("/readyz")
        assert r.status_code == 200
        assert r.json()["replica"] == "down"
        assert r.json()["status"] == "degraded"
