"""Dispatchers and schedulers side by side on one committed database, against a real local
receiver: a ``crm worker`` killed with SIGKILL in the middle of its deliveries loses none of
them (another worker attempts them again once their lease ends); two dispatchers (threads
with engines of their own, and two ``crm worker`` processes) share the work and never have one
event in flight twice at once; an attempt ends at the webhook timeout however slowly the
receiver trickles its answer, so it never outlives its lease; a scheduled job runs once per
interval however many schedulers ask at the same moment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, func, select, update

from app.core.config import Settings
from app.db.base import utcnow
from app.db.session import Database, build_engine
from app.main import create_app
from app.models import Company, Event, ScheduledJob, WebhookDelivery
from app.webhooks.dispatcher import Dispatcher
from app.worker import Job, Jobs
from tests.conftest import Api
from tests.factories import Tenant, make_tenant
from tests.helpers import walk
from tests.webhooks.receiver import Receiver, receiver

CRM = str(Path(sys.executable).with_name("crm"))
ROOT = Path(__file__).resolve().parents[2]
HOOKS = "/api/v1/webhooks"
PARTNERS = "/api/v1/partners"
SECRET_KEY = "webhook-worker-test-secret-key-0123"
WAIT = 30.0  # seconds; reached only when something hangs


# --- the company, the app and the receiver ---------------------------------------------------


def _patient(settings: Settings) -> Settings:
    """The committed database's lock waits (see ``committed_db``) and the webhook settings."""
    return settings.model_copy(
        update={
            "db_lock_timeout_ms": 60_000,
            "sqlite_busy_timeout_ms": 60_000,
            "secret_key": SECRET_KEY,
            "outbound_allow_http": True,  # the receiver listens on http://127.0.0.1
            "outbound_allow_private": True,
            "webhook_retry_schedule": "0,0,0",
            "webhook_timeout": 2.0,
            "dispatch_concurrency": 4,
            "rate_limit": "0",
            "rate_limit_company": "0",
        }
    )


@pytest.fixture
def wsettings(settings: Settings) -> Settings:
    return _patient(settings)


@pytest.fixture
def other_db(wsettings: Settings) -> Iterator[Database]:
    """A second engine on the committed database: another process's connections."""
    database = Database(build_engine(wsettings))
    yield database
    database.dispose()


@pytest.fixture
def wtenant(committed_db: Database) -> Iterator[Tenant]:
    with committed_db.session() as s:
        tenant = make_tenant(s, slug=f"hooks-{uuid.uuid4().hex[:8]}")
        s.commit()
    yield tenant
    with committed_db.session() as s:  # webhooks, deliveries, events, partners: cascaded
        s.execute(delete(Company).where(Company.id == tenant.company.id))
        s.commit()


@pytest.fixture
def wapi(wsettings: Settings, committed_db: Database, wtenant: Tenant) -> Iterator[Api]:
    with TestClient(
        create_app(wsettings, database=committed_db), raise_server_exceptions=False
    ) as c:
        yield Api(c, wtenant)


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def make_partners(api: Api, count: int) -> list[int]:
    numbers = []
    for i in range(count):
        r = api.post(PARTNERS, json={"name": f"Worker test {i}", "country": "DK"})
        assert r.status_code == 201, r.text
        numbers.append(r.json()["number"])
    return numbers


def register(api: Api, url: str) -> str:
    r = api.post(HOOKS, json={"url": url})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def change_all_stages(api: Api, numbers: list[int], stage: str = "lead") -> None:
    """One bulk change: two events per partner (``partner.stage_changed`` and
    ``partner.updated``), committed at once."""
    r = api.post(
        f"{PARTNERS}/bulk/customer-stage", json={"customer_stage": stage, "numbers": numbers}
    )
    assert r.status_code == 200, r.text


def event_ids(db: Database, tenant: Tenant, after_seq: int) -> set[str]:
    with db.session(write=False) as s:
        return set(
            s.scalars(
                select(Event.id).where(Event.company_id == tenant.company.id, Event.seq > after_seq)
            )
        )


def last_seq(db: Database, tenant: Tenant) -> int:
    with db.session(write=False) as s:
        return int(
            s.scalar(
                select(func.coalesce(func.max(Event.seq), 0)).where(
                    Event.company_id == tenant.company.id
                )
            )
            or 0
        )


def statuses(db: Database, webhook_id: str) -> Counter[str]:
    with db.session(write=False) as s:
        rows = s.execute(
            select(WebhookDelivery.status, func.count())
            .where(WebhookDelivery.webhook_id == uuid.UUID(webhook_id))
            .group_by(WebhookDelivery.status)
        ).all()
    return Counter({status: int(n) for status, n in rows})


def wait_until_delivered(
    db: Database, webhook_id: str, expected: int, *, timeout: float, why: Any = ""
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        now = statuses(db, webhook_id)
        if now["succeeded"] == expected:
            return
        assert time.monotonic() < deadline, f"not all delivered in {timeout} s: {now} {why}"
        time.sleep(0.05)


def assert_log_all_succeeded(
    api: Api, db: Database, webhook_id: str, ids: set[str]
) -> list[dict[str, Any]]:
    """The delivery log: one entry per event, every one succeeded; none left pending or still
    claimed in the table."""
    log = walk(api, f"{HOOKS}/{webhook_id}/deliveries", limit=100)
    assert {d["event_id"] for d in log} == ids
    assert len(log) == len(ids)
    assert {d["status"] for d in log} == {"succeeded"}, Counter(d["status"] for d in log)
    assert {d["last_status_code"] for d in log} == {200}
    assert all(d["delivered_at"] and d["next_attempt_at"] is None for d in log)
    with db.session(write=False) as s:
        open_ = s.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(
                WebhookDelivery.webhook_id == uuid.UUID(webhook_id),
                (WebhookDelivery.status == "pending") | WebhookDelivery.claim.is_not(None),
            )
        )
    assert open_ == 0
    return log


# --- crm worker processes ---------------------------------------------------------------------


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        # This checkout's app, whatever the environment's editable install points at.
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
        "CRM_DATABASE_URL": settings.database_url,
        "CRM_SECRET_KEY": SECRET_KEY,
        "CRM_OUTBOUND_ALLOW_HTTP": "true",
        "CRM_OUTBOUND_ALLOW_PRIVATE": "true",
        "CRM_WEBHOOK_TIMEOUT": "2",
        "CRM_WEBHOOK_RETRY_SCHEDULE": "0,0,0",
        "CRM_DISPATCH_INTERVAL": "0.1",
        "CRM_DISPATCH_CONCURRENCY": "4",
        "CRM_LOG_LEVEL": "INFO",
        "CRM_LOG_JSON": "true",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [CRM, "worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def log_events(log: Path) -> list[dict[str, Any]]:
    lines = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def wait_started(proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WAIT
    while not any(e.get("event") == "worker_started" for e in log_events(log)):
        assert proc.poll() is None, f"the worker exited: {log.read_text()[-2000:]}"
        assert time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.05)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM: the worker finishes the attempts under way and exits; its exit status."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


# --- 1. kill -9 in the middle of deliveries ---------------------------------------------------


@pytest.mark.postgres_only
def test_a_worker_killed_mid_delivery_loses_nothing(
    wsettings: Settings,
    committed_db: Database,
    wapi: Api,
    wtenant: Tenant,
    rx: Receiver,
    tmp_path: Path,
) -> None:
    numbers = make_partners(wapi, 10)
    before = last_seq(committed_db, wtenant)
    webhook_id = register(wapi, rx.url)
    change_all_stages(wapi, numbers)
    ids = event_ids(committed_db, wtenant, before)
    assert len(ids) == 20
    # The first worker's first round (4 at a time) hangs longer than its timeout.
    rx.answer(-3, -3, -3, -3)
    began = time.monotonic()
    first = start_worker(wsettings, tmp_path / "first.log")
    try:
        assert rx.wait_for(lambda r: r.in_flight >= 1, timeout=WAIT), (
            "the first worker never sent anything: " + (tmp_path / "first.log").read_text()[-2000:]
        )
        kill9(first)
        with rx.lock:
            in_flight_at_kill = {i for i, n in rx.in_flight_by_id.items() if n}
            rx.script.clear()  # from now on every answer is a quick 200
        assert in_flight_at_kill
    finally:
        stop(first)
    # Whatever the killed worker had claimed is pending under its lease (timeout 2 s + 2 s);
    # the rest is due now.
    assert statuses(committed_db, webhook_id)["pending"] == len(ids)
    second = start_worker(wsettings, tmp_path / "second.log")
    try:
        wait_until_delivered(
            committed_db,
            webhook_id,
            len(ids),
            timeout=WAIT,
            why=(tmp_path / "second.log").read_text()[-2000:],
        )
    finally:
        assert stop(second) == 0, (tmp_path / "second.log").read_text()[-2000:]
    took = time.monotonic() - began
    received = Counter(rx.ids())
    assert set(received) == ids, "every event reached the receiver"
    for identifier in in_flight_at_kill:  # sent again after the lease, by the second worker
        assert received[identifier] >= 2, identifier
    assert max(rx.most_in_flight_by_id.values()) == 1, "one event in flight twice at once"
    log = assert_log_all_succeeded(wapi, committed_db, webhook_id, ids)
    assert all(d["attempts"] >= 1 for d in log)
    assert took < WAIT


# --- 2. two dispatchers on one database -------------------------------------------------------


def test_two_dispatchers_share_the_work_and_never_send_one_event_twice_at_once(
    wsettings: Settings,
    committed_db: Database,
    other_db: Database,
    wapi: Api,
    wtenant: Tenant,
    rx: Receiver,
) -> None:
    numbers = make_partners(wapi, 30)
    before = last_seq(committed_db, wtenant)
    webhook_id = register(wapi, rx.url)
    change_all_stages(wapi, numbers)
    ids = event_ids(committed_db, wtenant, before)
    assert len(ids) == 60
    rx.delay = 0.05  # every answer takes 50 ms; none fails, so nothing is retried
    # A generous timeout: a slow answer on a busy machine must not turn into a retry here.
    quick = wsettings.model_copy(update={"webhook_timeout": 10.0})
    dispatchers = [Dispatcher(committed_db, quick), Dispatcher(other_db, quick)]
    attempts = [0, 0]
    errors: list[BaseException] = []
    done = threading.Event()
    start = threading.Barrier(2)

    def loop(index: int) -> None:
        try:
            start.wait(timeout=WAIT)
            while not done.is_set():
                made = dispatchers[index].run_once()
                attempts[index] += made
                if not made:
                    done.wait(0.02)
        except BaseException as exc:
            errors.append(exc)
            done.set()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + WAIT
        while not errors and statuses(committed_db, webhook_id)["succeeded"] < len(ids):
            assert time.monotonic() < deadline, statuses(committed_db, webhook_id)
            time.sleep(0.02)
    finally:
        done.set()
        for t in threads:
            t.join(timeout=WAIT)
        for d in dispatchers:
            d.close()
    assert not errors, errors
    received = Counter(rx.ids())
    assert set(received) == ids
    assert set(received.values()) == {1}, "every event received exactly once"
    assert set(rx.most_in_flight_by_id.values()) == {1}, "no event in flight twice at once"
    assert sum(attempts) == len(ids), attempts
    assert all(attempts), f"both dispatchers did some of the work: {attempts}"
    entries = assert_log_all_succeeded(wapi, committed_db, webhook_id, ids)
    assert {d["attempts"] for d in entries} == {1}


@pytest.mark.postgres_only
def test_two_worker_processes_share_the_work_and_never_send_one_event_twice_at_once(
    wsettings: Settings,
    committed_db: Database,
    wapi: Api,
    wtenant: Tenant,
    rx: Receiver,
    tmp_path: Path,
) -> None:
    numbers = make_partners(wapi, 30)
    before = last_seq(committed_db, wtenant)
    webhook_id = register(wapi, rx.url)
    rx.delay = 0.05
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    workers = [start_worker(wsettings, log) for log in logs]
    try:
        for proc, log in zip(workers, logs, strict=True):
            wait_started(proc, log)
        change_all_stages(wapi, numbers)  # both are polling when the events commit
        ids = event_ids(committed_db, wtenant, before)
        assert len(ids) == 60
        wait_until_delivered(committed_db, webhook_id, len(ids), timeout=WAIT)
    finally:
        codes = [stop(proc) for proc in workers]
    assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]
    received = Counter(rx.ids())
    assert set(received) == ids
    assert set(received.values()) == {1}, "every event received exactly once"
    assert set(rx.most_in_flight_by_id.values()) == {1}, "no event in flight twice at once"
    # Who sent what: each worker logs its attempts.
    per_worker = [
        [e["delivery_id"] for e in log_events(log) if e.get("event") == "webhook_attempt"]
        for log in logs
    ]
    assert sum(len(p) for p in per_worker) == len(ids), [len(p) for p in per_worker]
    assert not set(per_worker[0]) & set(per_worker[1])
    assert all(per_worker), f"both workers did some of the work: {[len(p) for p in per_worker]}"
    entries = assert_log_all_succeeded(wapi, committed_db, webhook_id, ids)
    assert {d["attempts"] for d in entries} == {1}


# The lease assumes an attempt ends within the timeout (plus a margin), but httpx's timeout
# bounds each read, not the exchange: an answer that trickles in, each piece within the
# timeout, must still end the attempt at the timeout, or it outlives its lease and another
# dispatcher sends the same event while it is still in flight.
def test_an_answer_slower_than_the_lease_is_not_sent_again_while_still_in_flight(
    wsettings: Settings,
    committed_db: Database,
    other_db: Database,
    wapi: Api,
    wtenant: Tenant,
    rx: Receiver,
) -> None:
    numbers = make_partners(wapi, 1)
    register(wapi, rx.url)
    change_all_stages(wapi, numbers)
    # A header line every 0.25 s (each read far within the timeout), 5 s in all.
    rx.drip_lines, rx.drip_gap = 20, 0.25
    quick = wsettings.model_copy(update={"webhook_timeout": 1.5})  # the lease: 3 s
    first, second = Dispatcher(committed_db, quick), Dispatcher(other_db, quick)
    try:
        sending = threading.Thread(target=first.run_once)
        sending.start()
        assert rx.wait_for(lambda r: r.in_flight >= 1, timeout=WAIT)
        rx.drip_lines = 0  # what comes next is answered at once
        time.sleep(3.5)  # past the lease: the first attempt has (or should have) given up
        assert second.run_once() >= 1  # the lease ended: the event is due again
        sending.join(timeout=WAIT)
    finally:
        first.close()
        second.close()
    assert set(rx.most_in_flight_by_id.values()) == {1}, "one event in flight twice at once"


def test_an_attempt_ends_at_the_timeout_even_while_a_read_is_waiting(
    wsettings: Settings, committed_db: Database, wapi: Api, wtenant: Tenant, rx: Receiver
) -> None:
    numbers = make_partners(wapi, 1)
    register(wapi, rx.url)
    change_all_stages(wapi, numbers)
    # The status line at once, then a header line every 1.8 s: each read is answered within
    # the 2 s timeout, and one is waiting when the deadline comes. Ending it then takes
    # more than closing the client (a waiting read does not notice), or the attempt lasts
    # until that read's own timeout: up to twice the timeout, the whole lease.
    rx.drip_lines, rx.drip_gap = 3, 1.8
    timeout = 2.0
    quick = wsettings.model_copy(update={"webhook_timeout": timeout})
    dispatcher = Dispatcher(committed_db, quick)
    try:
        dispatcher.fan_out()
        (item,) = dispatcher.claim(1)
        began = time.monotonic()
        outcome = dispatcher.send(item)
        took = time.monotonic() - began
    finally:
        dispatcher.close()
    assert outcome.status_code is None
    assert outcome.error == f"No answer within {timeout:g} seconds."
    assert took < 1.5 * timeout, f"the attempt took {took:.2f} s with a {timeout:g} s timeout"


# --- 3. scheduled jobs ---------------------------------------------------------------------------


def test_a_scheduled_job_runs_once_per_interval_however_many_ask_at_once(
    wsettings: Settings, committed_db: Database, other_db: Database
) -> None:
    name = f"test_job_{uuid.uuid4().hex[:12]}"
    runs: list[str] = []

    def work() -> None:
        runs.append(threading.current_thread().name)
        time.sleep(0.01)  # the other scheduler keeps asking while this one runs

    job = Job(name, 3600, work)
    schedulers = [Jobs(committed_db, wsettings), Jobs(other_db, wsettings)]
    for scheduler in schedulers:
        scheduler.jobs = [job]
    rounds, calls = 4, 25
    try:
        for round_ in range(rounds):
            if round_:  # the interval has passed: due again (the first round makes the row)
                with committed_db.session() as s:
                    s.execute(
                        update(ScheduledJob)
                        .where(ScheduledJob.name == name)
                        .values(next_run_at=utcnow() - timedelta(seconds=1))
                    )
                    s.commit()
            ran: list[list[str]] = [[], []]
            errors: list[BaseException] = []
            start = threading.Barrier(2)

            def ask(
                index: int,
                ran: list[list[str]] = ran,
                start: Any = start,
                errors: list[BaseException] = errors,
            ) -> None:
                try:
                    start.wait(timeout=WAIT)
                    for _ in range(calls):
                        ran[index].extend(schedulers[index].run_due())
                except BaseException as exc:
                    errors.append(exc)

            threads = [
                threading.Thread(target=ask, args=(i,), name=f"scheduler-{i}") for i in range(2)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=WAIT)
            assert not errors, errors
            assert ran[0] + ran[1] == [name], f"round {round_}: {ran}"
            assert len(runs) == round_ + 1, runs
    finally:
        with committed_db.session() as s:
            s.execute(delete(ScheduledJob).where(ScheduledJob.name == name))
            s.commit()
