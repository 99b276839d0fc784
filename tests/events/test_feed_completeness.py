"""The feed under concurrent writers: a consumer that polls throughout and then reads to the end
sees every committed event of the company exactly once, in ``seq`` (commit) order, and each
partner's ``partner.stage_changed`` events retell its stage history; and a long poll answers
as soon as an event commits.

Writers create partners and sales orders and change stages (PATCH and the bulk endpoint) with
real commits (``committed_db``): in several processes on PostgreSQL (a forkserver pool, each worker
with an app and an engine of its own), in several threads on either database. The consumer
reads ``GET /api/v1/events`` with random page sizes, long polling when it has caught up.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select

from app.core.config import Settings
from app.db.session import Database
from app.main import create_app
from app.models import Company, Event, SalesOrder, SalesOrderLine
from tests.conftest import Api
from tests.factories import Tenant, make_tenant
from tests.helpers import walk

EVENTS = "/api/v1/events"
PARTNERS = "/api/v1/partners"
BULK = "/api/v1/partners/bulk/customer-stage"
ORDERS = "/api/v1/sales-orders"
STAGES = ("lead", "potential", "active", "inactive", "lost")

WRITERS = 3
OPS = 20  # per writer and round
SHARED = 6  # partners made before the writers start, that every writer changes
ROUNDS = 3
WAIT = 120  # seconds; reached only when something hangs


# --- the company ------------------------------------------------------------------------------


def _remove_company(db: Database, company_id: uuid.UUID) -> None:
    with db.session() as s:
        s.execute(delete(SalesOrderLine).where(SalesOrderLine.company_id == company_id))
        s.execute(delete(SalesOrder).where(SalesOrder.company_id == company_id))
        s.execute(delete(Company).where(Company.id == company_id))
        s.commit()


@pytest.fixture
def feed_tenant(committed_db: Database) -> Iterator[Tenant]:
    with committed_db.session() as s:
        tenant = make_tenant(s, slug=f"feed-{uuid.uuid4().hex[:8]}")
        s.commit()
    yield tenant
    _remove_company(committed_db, tenant.company.id)


def _fast(settings: Settings, **more: Any) -> Settings:
    """The test's settings without rate limits (the consumer polls often), polling quickly."""
    return settings.model_copy(
        update={"rate_limit": "0", "rate_limit_company": "0", "event_poll_interval": 0.05, **more}
    )


# --- the writers ------------------------------------------------------------------------------


def write_ops(client: Any, *, seed: int, ops: int, shared: int) -> dict[str, Any]:
    """``ops`` random writes through the API (``client`` carries the token); returns the
    statuses, the unexpected answers and what was created."""
    rng = random.Random(seed)
    mine: list[int] = []
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    orders: list[int] = []
    for i in range(ops):
        known = [*range(1, shared + 1), *mine]
        roll = rng.random()
        if roll < 0.2:
            r = client.post(
                PARTNERS,
                json={
                    "name": f"Writer {seed} #{i}",
                    "country": "DK",
                    "customer_stage": rng.choice(STAGES),
                },
            )
            if r.status_code == 201:
                mine.append(r.json()["number"])
        elif roll < 0.45:
            r = client.post(
                ORDERS,
                json={
                    "partner_number": rng.choice(known),
                    "delivery_date": f"2026-12-{rng.randint(1, 28):02d}",
                    "lines": [{"description": "Rye", "quantity": "2", "unit_price": "10.00"}],
                },
            )
            if r.status_code == 201:
                orders.append(r.json()["number"])
        elif roll < 0.75:
            r = client.patch(
                f"{PARTNERS}/{rng.choice(known)}", json={"customer_stage": rng.choice(STAGES)}
            )
        else:
            r = client.post(
                BULK,
                json={
                    "customer_stage": rng.choice(STAGES),
                    "numbers": rng.sample(known, min(3, len(known))),
                },
            )
        statuses[r.status_code] += 1
        if r.status_code not in (200, 201):
            errors.append(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text}")
    return {"statuses": dict(statuses), "errors": errors, "partners": mine, "orders": orders}


# A pool's worker: an app on an engine of its own, made on its first task.
_worker: dict[str, Any] = {}


def _init_worker(database_url: str, barrier: Any) -> None:
    _worker.update(database_url=database_url, barrier=barrier)


def _write_in_process(token: str, seed: int, ops: int, shared: int) -> dict[str, Any]:
    if "app" not in _worker:
        settings = Settings(
            database_url=_worker["database_url"],
            log_level="WARNING",
            rate_limit="0",
            rate_limit_company="0",
            rate_limit_auth_failures="0",
            db_lock_timeout_ms=60_000,
        )
        _worker["app"] = create_app(settings)
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(_worker["app"], raise_server_exceptions=False, headers=headers) as client:
        client.get("/readyz")  # connected before the start
        # Every writer holds the barrier until all are ready: the tasks run in as many
        # different processes, and start writing at once.
        _worker["barrier"].wait(timeout=WAIT)
        return write_ops(client, seed=seed, ops=ops, shared=shared)


@pytest.fixture(scope="module")
def writer_pool(settings: Settings) -> Iterator[Any]:
    # Forkserver: fresh processes (nothing inherited from this threaded one, like spawn), forked
    # from a server that imported the app once, instead of once per writer.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    barrier = ctx.Barrier(WRITERS)
    pool = ctx.Pool(WRITERS, initializer=_init_worker, initargs=(settings.database_url, barrier))
    try:
        yield pool
    finally:
        pool.close()
        pool.join()


# --- the consumer -----------------------------------------------------------------------------


class Consumer:
    """Follows the feed with ``next_cursor``; fails at once on an event handed out twice."""

    def __init__(self, api: Api, seed: int) -> None:
        self.api = api
        self.rng = random.Random(seed)
        self.cursor: str | None = None
        self.items: list[dict[str, Any]] = []
        self.seen: set[str] = set()
        self.polls = 0

    def poll(self, *, limit: int, wait: int = 0) -> int:
        params: dict[str, Any] = {"limit": limit, "wait": wait}
        if self.cursor is not None:
            params["cursor"] = self.cursor
        r = self.api.get(EVENTS, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["next_cursor"], body
        assert len(body["items"]) <= limit
        for item in body["items"]:
            assert item["id"] not in self.seen, (
                f"event {item['id']} ({item['type']} {item['data'].get('number')}) handed out "
                f"twice; poll {self.polls}"
            )
            self.seen.add(item["id"])
            self.items.append(item)
        self.cursor = body["next_cursor"]
        self.polls += 1
        return len(body["items"])

    def follow(self, writing: Callable[[], bool]) -> int:
        """Polls while ``writing()``: random page sizes, a long poll once caught up. Returns
        the events read while writers were still running."""
        got = 1
        during = 0
        while writing():
            got = self.poll(limit=self.rng.choice([1, 2, 3, 7, 50]), wait=0 if got else 1)
            during += got
        return during

    def drain(self) -> None:
        while self.poll(limit=self.rng.choice([1, 5, 100])):
            pass


# --- the checks -------------------------------------------------------------------------------


def _history(api: Api, number: int) -> list[tuple[Any, ...]]:
    """The partner's stage history, oldest first (the endpoint lists the newest first)."""
    rows = walk(api, f"{PARTNERS}/{number}/stage-history", limit=500)
    return [
        (h["previous_stage"], h["stage"], h["reason"], (h["changed_by"] or {}).get("id"))
        for h in reversed(rows)
    ]


def check_feed(
    committed_db: Database, api: Api, consumer: Consumer, results: list[dict[str, Any]]
) -> None:
    errors = [e for result in results for e in result["errors"]]
    assert errors == [], errors[:5]

    company_id = api.tenant.company.id
    with committed_db.session(write=False) as s:
        rows = s.execute(
            select(Event.seq, Event.id, Event.type)
            .where(Event.company_id == company_id)
            .order_by(Event.seq)
        ).all()
    table = [row.id for row in rows]
    seq_of = {row.id: row.seq for row in rows}
    fed = [e["id"] for e in consumer.items]

    # Exactly once: the per-poll check already refused a repeat.
    assert len(fed) == len(set(fed))
    missing = [(row.seq, row.type) for row in rows if row.id not in consumer.seen]
    assert missing == [], (
        f"{len(missing)} committed events never handed out (seq, type): {missing[:10]}"
    )
    extra = [e for e in consumer.items if e["id"] not in seq_of]
    assert extra == [], f"events handed out that the table does not hold: {extra[:3]}"
    # Commit order: never an event before one with a lower seq.
    if fed != table:
        at = next(i for i, (a, b) in enumerate(zip(fed, table, strict=True)) if a != b)
        raise AssertionError(
            f"feed position {at}: seq {seq_of[fed[at]]} handed out where seq {seq_of[table[at]]} "
            f"belongs; feed seqs around it: {[seq_of[i] for i in fed[max(0, at - 3) : at + 4]]}"
        )
    # And no number was skipped (a rolled-back transaction takes its numbers back).
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))

    # What the writers did is all there.
    created = SHARED + sum(len(r["partners"]) for r in results)
    orders = sum(len(r["orders"]) for r in results)
    kinds = Counter(e["type"] for e in consumer.items)
    assert kinds["partner.created"] == created, kinds
    assert kinds["sales_order.created"] == orders, kinds

    # Each partner's stage changes, in feed order, are its stage history.
    fed_changes: dict[int, list[tuple[Any, ...]]] = {}
    for e in consumer.items:
        if e["type"] == "partner.stage_changed":
            d = e["data"]
            fed_changes.setdefault(d["number"], []).append(
                (d["previous_stage"], d["stage"], d["reason"], (d["changed_by"] or {}).get("id"))
            )
    partners = walk(api, PARTNERS, limit=500)
    assert sorted(p["number"] for p in partners) == list(range(1, created + 1))
    assert set(fed_changes) <= {p["number"] for p in partners}
    for partner in partners:
        number = partner["number"]
        history = _history(api, number)
        assert fed_changes.get(number, []) == history, f"partner {number}"
        assert history, f"partner {number} has no stage history"
        assert history[-1][1] == partner["customer_stage"], f"partner {number}"


def make_shared_partners(api: Api) -> None:
    for i in range(SHARED):
        r = api.post(
            PARTNERS, json={"name": f"Shared {i}", "country": "DK", "customer_stage": "lead"}
        )
        assert r.status_code == 201, r.text


# --- the tests --------------------------------------------------------------------------------


@pytest.mark.postgres_only
@pytest.mark.parametrize("round_", range(ROUNDS))
def test_writer_processes_and_a_polling_consumer_see_every_event_once_in_order(
    settings: Settings,
    committed_db: Database,
    feed_tenant: Tenant,
    writer_pool: Any,
    round_: int,
) -> None:
    app = create_app(_fast(settings), database=committed_db)
    with TestClient(app, raise_server_exceptions=False) as c:
        writer, reader = Api(c, feed_tenant, "write"), Api(c, feed_tenant, "read")
        make_shared_partners(writer)
        consumer = Consumer(reader, seed=round_)
        consumer.poll(limit=2)  # the consumer is under way before the writers
        pending = [
            writer_pool.apply_async(
                _write_in_process,
                (feed_tenant.tokens["write"], 100 * round_ + k, OPS, SHARED),
            )
            for k in range(WRITERS)
        ]
        deadline = time.monotonic() + WAIT
        during = consumer.follow(
            lambda: not all(p.ready() for p in pending) and time.monotonic() < deadline
        )
        results = [p.get(timeout=WAIT) for p in pending]
        consumer.drain()
        assert during > 0, "the consumer read nothing while the writers ran"
        check_feed(committed_db, reader, consumer, results)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_writer_threads_and_a_polling_consumer_see_every_event_once_in_order(
    settings: Settings, committed_db: Database, feed_tenant: Tenant, round_: int
) -> None:
    app = create_app(_fast(settings), database=committed_db)
    start = threading.Barrier(WRITERS)

    def write(k: int) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {feed_tenant.tokens['write']}"}
        with TestClient(app, raise_server_exceptions=False, headers=headers) as client:
            start.wait(timeout=WAIT)
            return write_ops(client, seed=100 * round_ + k, ops=OPS, shared=SHARED)

    with TestClient(app, raise_server_exceptions=False) as c:
        writer, reader = Api(c, feed_tenant, "write"), Api(c, feed_tenant, "read")
        make_shared_partners(writer)
        consumer = Consumer(reader, seed=round_)
        consumer.poll(limit=2)
        with ThreadPoolExecutor(WRITERS) as pool:
            pending = [pool.submit(write, k) for k in range(WRITERS)]
            deadline = time.monotonic() + WAIT
            during = consumer.follow(
                lambda: not all(p.done() for p in pending) and time.monotonic() < deadline
            )
            results = [p.result(timeout=WAIT) for p in pending]
        consumer.drain()
        assert during > 0, "the consumer read nothing while the writers ran"
        check_feed(committed_db, reader, consumer, results)


def test_a_long_poll_answers_as_soon_as_an_event_commits(
    settings: Settings, committed_db: Database, feed_tenant: Tenant
) -> None:
    app = create_app(_fast(settings, event_poll_interval=0.1), database=committed_db)
    answer: dict[str, Any] = {}
    polling = threading.Event()

    with TestClient(app, raise_server_exceptions=False) as c:
        end = Api(c, feed_tenant, "read").get(EVENTS).json()["next_cursor"]

        def long_poll() -> None:
            with TestClient(app, raise_server_exceptions=False) as own:
                reader = Api(own, feed_tenant, "read")
                polling.set()
                began = time.monotonic()
                r = reader.get(EVENTS, params={"cursor": end, "wait": 20})
                answer.update(response=r, took=time.monotonic() - began)

        poller = threading.Thread(target=long_poll)
        poller.start()
        assert polling.wait(timeout=30)
        time.sleep(0.5)
        r = Api(c, feed_tenant, "write").post(
            PARTNERS, json={"name": "Wakes The Poll", "country": "DK"}
        )
        assert r.status_code == 201, r.text
        poller.join(timeout=30)
        assert not poller.is_alive(), "the long poll never answered"

    response, took = answer["response"], answer["took"]
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [e["type"] for e in items] == ["partner.created"]
    assert items[0]["data"]["number"] == r.json()["number"]
    assert took >= 0.4, "the poll answered before the partner was created"
    assert took < 10, f"the long poll took {took:.1f} s: it did not answer early"
