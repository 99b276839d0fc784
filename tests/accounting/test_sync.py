"""POST /api/v1/accounting/sync and the sync runs: balances land on the matching partners, the
counts are right, a failure anywhere stores nothing, a repeat changes nothing, one run at a time,
and abandoned runs are failed."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.accounting import repository as accounting_repository
from app.accounting.providers import economic as economic_module
from app.core.config import Settings
from app.main import create_app
from app.models import SyncRun
from tests.accounting.fake_economic import HANG, FakeEconomic, Fault, customer
from tests.accounting.helpers import (
    OVERVIEW,
    RUN_FIELDS,
    RUNS,
    SYNC,
    balances,
    connect,
    create_partner,
    get_partner,
    ok,
    start_sync,
    sync_failed,
    sync_ok,
)
from tests.conftest import Api, assert_problem
from tests.factories import make_partner


def iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def crowd(count: int, first: int = 10_000) -> list[dict[str, Any]]:
    return [customer(n, Decimal(n) / 100) for n in range(first, first + count)]


@pytest.fixture
def connected(api: Api, economic: FakeEconomic) -> FakeEconomic:
    connect(api, economic)
    return economic


# -- a successful refresh ---------------------------------------------------------------------


def test_a_sync_stores_balances_on_matching_partners(api: Api, connected: FakeEconomic) -> None:
    a = create_partner(api, name="A", accounting_ref="101", credit_limit="10000.00")
    b = create_partner(api, name="B", accounting_ref="102")
    c = create_partner(api, name="C", accounting_ref="103")
    d = create_partner(api, name="D", accounting_ref="104")
    not_remote = create_partner(api, name="E", accounting_ref="555")
    no_ref = create_partner(api, name="F")
    leading_zero = create_partner(api, name="G", accounting_ref="0101")
    connected.set_customers(
        [
            customer(101, "6259.20"),
            customer(102, "0.10"),
            customer(103, "-50.00"),
            customer(104, "7.005"),
            customer(999, "10.00"),
        ]
    )

    before = datetime.now(UTC)
    r = api.post(SYNC)
    started = ok(r, 202)
    assert set(started) == RUN_FIELDS
    assert started["status"] == "running"
    assert started["trigger"] == "api"
    assert started["finished_at"] is None
    assert started["error"] is None
    assert r.headers["location"] == f"{RUNS}/{started['id']}"

    run = ok(api.get(r.headers["location"]))
    after = datetime.now(UTC)
    assert run["id"] == started["id"]
    assert run["status"] == "succeeded"
    assert run["error"] is None
    assert (run["fetched"], run["updated"], run["unchanged"], run["unmatched"]) == (5, 4, 0, 1)
    assert before - timedelta(seconds=1) <= iso(run["started_at"]) <= iso(run["finished_at"])
    assert iso(run["finished_at"]) <= after + timedelta(seconds=1)

    expected = {
        a["number"]: "6259.20",
        b["number"]: "0.10",
        c["number"]: "-50.00",
        d["number"]: "7.01",
    }
    for number, balance in expected.items():
        got = get_partner(api, number)
        assert got["debtor_balance"] == balance
        synced = iso(got["debtor_balance_synced_at"])
        assert before - timedelta(seconds=1) <= synced <= after + timedelta(seconds=1)
        assert got["credit_limit_exceeded"] is False
    for partner in (not_remote, no_ref, leading_zero):
        got = get_partner(api, partner["number"])
        assert got["debtor_balance"] is None
        assert got["debtor_balance_synced_at"] is None

    rows = {row["number"]: row for row in ok(api.get(OVERVIEW, params={"limit": 500}))["items"]}
    for number, balance in expected.items():
        assert rows[number]["debtor_balance"] == balance
        assert rows[number]["debtor_balance_synced_at"] is not None
    assert rows[no_ref["number"]]["debtor_balance"] is None


def test_a_repeated_sync_gives_identical_balances(api: Api, connected: FakeEconomic) -> None:
    partners = [create_partner(api, name=f"P{n}", accounting_ref=str(n)) for n in (1, 2, 3)]
    numbers = [p["number"] for p in partners]
    connected.set_customers([customer(1, "100.00"), customer(2, "0"), customer(3, "-3.30")])

    first = sync_ok(api)
    assert (first["updated"], first["unchanged"]) == (3, 0)
    after_first = balances(api, numbers)

    second = sync_ok(api)
    assert (second["fetched"], second["updated"], second["unchanged"], second["unmatched"]) == (
        3,
        0,
        3,
        0,
    )
    after_second = balances(api, numbers)
    assert {n: v[0] for n, v in after_second.items()} == {n: v[0] for n, v in after_first.items()}
    assert {n: v[2] for n, v in after_second.items()} == {n: v[2] for n, v in after_first.items()}

    connected.set_customers([customer(1, "100.00"), customer(2, "12.34"), customer(3, "-3.30")])
    third = sync_ok(api)
    assert (third["updated"], third["unchanged"]) == (1, 2)
    assert get_partner(api, numbers[1])["debtor_balance"] == "12.34"


def test_a_repeated_sync_does_not_bump_unchanged_partners(
    api: Api, connected: FakeEconomic
) -> None:
    p = create_partner(api, accounting_ref="1")
    connected.set_customers([customer(1, "100.00")])
    sync_ok(api)
    first = api.get(f"/api/v1/partners/{p['number']}")
    sync_ok(api)
    second = api.get(f"/api/v1/partners/{p['number']}")
    assert second.json()["updated_at"] == first.json()["updated_at"]


def test_thousands_of_customers_across_pages(
    api: Api, connected: FakeEconomic, session: Session
) -> None:
    remote = crowd(3500)
    connected.set_customers(remote)
    picked = remote[::70]  # 50 partners spread over all 4 pages
    numbers = [
        make_partner(
            session,
            api.tenant,
            name=f"Crowd {c['customerNumber']}",
            accounting_ref=str(c["customerNumber"]),
        ).number
        for c in picked
    ]
    run = sync_ok(api)
    assert (run["fetched"], run["updated"], run["unchanged"], run["unmatched"]) == (
        3500,
        50,
        0,
        3450,
    )
    # Every page once, in order, and nothing else: the work is bounded by four requests (the
    # app's read timeout is generous, so a slow machine cannot add a retry; time is not measured).
    asked = [r.query["skippages"] for r in connected.customer_requests()]
    assert asked == ["0", "1", "2", "3"]
    for number, c in zip(numbers, picked, strict=True):
        assert get_partner(api, number)["debtor_balance"] == f"{c['balance']:.2f}"


def test_unknown_customers_are_counted_not_errors(api: Api, connected: FakeEconomic) -> None:
    connected.set_customers(crowd(25))
    run = sync_ok(api)
    assert (run["fetched"], run["updated"], run["unchanged"], run["unmatched"]) == (25, 0, 0, 25)


def test_runs_are_listed_newest_first_and_read_one_by_one(
    api: Api, connected: FakeEconomic
) -> None:
    connected.set_customers(crowd(3))
    ids = [sync_ok(api)["id"] for _ in range(3)]
    body = ok(api.get(RUNS, params={"include_total": "true"}))
    assert [r["id"] for r in body["items"]] == list(reversed(ids))
    assert body["total"] == 3
    for item in body["items"]:
        assert set(item) == RUN_FIELDS
        assert item["status"] == "succeeded"
    page = ok(api.get(RUNS, params={"limit": 2}))
    assert [r["id"] for r in page["items"]] == list(reversed(ids))[:2]
    rest = ok(api.get(RUNS, params={"limit": 2, "cursor": page["next_cursor"]}))
    assert [r["id"] for r in rest["items"]] == [ids[0]]
    assert rest["next_cursor"] is None
    assert ok(api.get(f"{RUNS}/{ids[1]}"))["id"] == ids[1]


def test_an_unknown_run_is_404_and_a_bad_id_422(api: Api) -> None:
    assert_problem(api.get(f"{RUNS}/{uuid.uuid4()}"), 404, "sync_run_not_found")
    assert_problem(api.get(f"{RUNS}/not-a-uuid"), 422)
    assert_problem(api.get(RUNS, params={"limit": 0}), 422)


def test_a_disabled_connection_does_not_sync(api: Api, connected: FakeEconomic) -> None:
    connect(api, connected, enabled=False)
    assert_problem(api.post(SYNC), 409, "accounting_not_connected")
    assert ok(api.get(RUNS))["items"] == []
    assert connected.requests == []


# -- failures store nothing -------------------------------------------------------------------

# Each fault: the run's error code, and how to inject it on a page (returns the Fault).
FAULTS: dict[str, tuple[str, Any]] = {
    "401": ("invalid_credentials", lambda f, page: f.add_fault("status", status=401, page=page)),
    "400": (
        "upstream_rejected_request",
        lambda f, page: f.add_fault("status", status=400, page=page),
    ),
    "5xx-forever": ("upstream_error", lambda f, page: f.add_fault("status", status=503, page=page)),
    "429-forever": (
        "rate_limited",
        lambda f, page: f.add_fault("status", status=429, page=page, headers={"Retry-After": "1"}),
    ),
    "hang": ("upstream_timeout", lambda f, page: f.add_fault("delay", seconds=HANG, page=page)),
    "stalled-body": (
        "upstream_timeout",
        lambda f, page: f.add_fault("stall_body", seconds=HANG, page=page),
    ),
    "malformed-json": ("malformed_response", lambda f, page: f.add_fault("malformed", page=page)),
    "not-an-object": ("malformed_response", lambda f, page: f.add_fault("not_object", page=page)),
    "bad-customer": (
        "malformed_response",
        lambda f, page: f.add_fault(
            "customers", page=page, items=[customer(1, "1.00"), {"customerNumber": 2}]
        ),
    ),
    "foreign-next-page": (
        "foreign_next_page",
        lambda f, page: f.add_fault(
            "next_page", page=page, url="http://localhost:9/customers?skippages=9&pagesize=1000"
        ),
    ),
    "redirect": (
        "unexpected_redirect",
        lambda f, page: f.add_fault("redirect", status=302, page=page, url="http://localhost:9/"),
    ),
}
# Faults that are retried: the faulty page is asked for once per attempt.
RETRIED = {"5xx-forever", "429-forever", "hang", "stalled-body"}
# Deliberate hangs: only these runs use the app with the short read timeout (which ends them).
HANGS = {"hang", "stalled-body"}


def _collapsed(pages: list[str]) -> list[str]:
    """The pages asked for, a page asked again right away (a retry) counted once."""
    return [p for i, p in enumerate(pages) if i == 0 or pages[i - 1] != p]


def _stored(api: Api, numbers: list[int]) -> dict[int, tuple[Any, ...]]:
    return balances(api, numbers)


@pytest.fixture
def synced_once(api: Api, connected: FakeEconomic) -> dict[str, Any]:
    """Partners on page 1 and page 3 of 3 with balances from a first, successful sync; the
    fake then holds new balances for all of them."""
    remote = crowd(2001)  # three pages: 1000, 1000 and 1
    first_page, last_page = remote[0], remote[-1]
    a = create_partner(
        api, name="A", accounting_ref=str(first_page["customerNumber"]), credit_limit="1000.00"
    )
    b = create_partner(
        api, name="B", accounting_ref=str(last_page["customerNumber"]), credit_limit="1000.00"
    )
    connected.set_customers(remote)
    sync_ok(api)
    numbers = [a["number"], b["number"]]
    before = _stored(api, numbers)
    assert before[a["number"]][0] == f"{first_page['balance']:.2f}"
    assert before[b["number"]][0] == f"{last_page['balance']:.2f}"
    assert before[b["number"]][2] is False
    changed = [customer(c["customerNumber"], c["balance"] + 5000) for c in remote]
    connected.set_customers(changed)
    return {"numbers": numbers, "before": before}


@pytest.mark.parametrize(
    ("fault", "page"),
    [(fault, 2) for fault in FAULTS] + [("401", 0), ("5xx-forever", 0), ("hang", 1)],
    ids=[f"{fault}-page-3-of-3" for fault in FAULTS]
    + ["401-page-1-of-3", "5xx-forever-page-1-of-3", "hang-page-2-of-3"],
)
def test_a_failing_sync_stores_no_balance(
    request: pytest.FixtureRequest,
    api: Api,
    connected: FakeEconomic,
    synced_once: dict[str, Any],
    accounting_settings: Settings,
    fault: str,
    page: int,
) -> None:
    code, inject = FAULTS[fault]
    runner: Api = request.getfixturevalue("impatient_api") if fault in HANGS else api
    earlier = len(connected.customer_requests())  # synced_once's run
    injected: Fault = inject(connected, page)
    run = sync_failed(runner, code)
    assert run["updated"] == 0
    # The failure ended the run promptly, shown by what the fake saw rather than by a clock:
    # the pages before the faulty one, then the faulty one exactly once, or once per attempt
    # when the fault is retried, and nothing after it.
    tries = accounting_settings.accounting_retry_attempts if fault in RETRIED else 1
    assert injected.used == tries
    asked = [r.query["skippages"] for r in connected.customer_requests()[earlier:]]
    expected = [str(n) for n in range(page)] + [str(page)] * tries
    if fault in HANGS:
        # Every attempt at the hanging page was given up on by the read timeout: the fake was
        # still hanging on each when the run ended (none waited out).
        assert injected.completed == 0
        # The pages before it were read with the short timeout too: on a very slow machine one
        # of them may have been retried (and then answered), which changes nothing above.
        assert _collapsed(asked) == _collapsed(expected)
        assert asked[-tries:] == [str(page)] * tries
    else:
        assert asked == expected
    assert _stored(api, synced_once["numbers"]) == synced_once["before"]
    # The run after the failure (fault gone) stores the new balances.
    connected.clear_faults()
    run = sync_ok(api)
    assert run["updated"] == 2
    after = _stored(api, synced_once["numbers"])
    assert all(after[n][2] is True for n in synced_once["numbers"])  # now over 1000.00


def test_a_401_is_tried_once(api: Api, connected: FakeEconomic) -> None:
    connected.app_secret_token = "another-app-secret"
    run = sync_failed(api, "invalid_credentials")
    assert len(connected.requests) == 1
    assert "credentials" in run["error"]["message"]


def test_a_5xx_forever_is_tried_exactly_the_configured_attempts(
    api: Api, connected: FakeEconomic, accounting_settings: Settings
) -> None:
    connected.add_fault("status", status=500)
    sync_failed(api, "upstream_error")
    assert len(connected.requests) == accounting_settings.accounting_retry_attempts == 2


def test_a_short_5xx_burst_still_succeeds(api: Api, connected: FakeEconomic) -> None:
    p = create_partner(api, accounting_ref="1")
    connected.set_customers([customer(1, "42.00")])
    connected.add_fault("status", status=502, times=1)
    sync_ok(api)
    assert get_partner(api, p["number"])["debtor_balance"] == "42.00"
    assert len(connected.requests) == 2


def test_a_crash_while_storing_stores_nothing(
    api: Api, connected: FakeEconomic, synced_once: dict[str, Any], monkeypatch: Any
) -> None:
    real = accounting_repository.AccountingRepository.write_balances

    def write_then_crash(self: Any, rows: Any, synced_at: Any) -> None:
        real(self, rows, synced_at)  # the UPDATE has run inside the transaction...
        raise RuntimeError("disk on fire")  # ...and then something breaks

    monkeypatch.setattr(
        accounting_repository.AccountingRepository, "write_balances", write_then_crash
    )
    run = sync_failed(api, "internal_error")
    assert "disk on fire" not in run["error"]["message"]
    assert _stored(api, synced_once["numbers"]) == synced_once["before"]


def test_a_crash_in_the_provider_fails_the_run(
    api: Api, connected: FakeEconomic, synced_once: dict[str, Any], monkeypatch: Any
) -> None:
    def boom(item: Any) -> Any:
        raise KeyError("surprise")

    monkeypatch.setattr(economic_module.EconomicProvider, "_record", staticmethod(boom))
    sync_failed(api, "internal_error")
    assert _stored(api, synced_once["numbers"]) == synced_once["before"]


def test_a_balance_too_large_to_store_fails_the_run_cleanly(
    api: Api, connected: FakeEconomic, synced_once: dict[str, Any]
) -> None:
    """NUMERIC(16, 2) holds up to 99,999,999,999,999.99: a larger balance from upstream must
    fail the run with a stable code (not a crash) and store nothing."""
    remote = crowd(2001)
    remote[0] = customer(remote[0]["customerNumber"], "100000000000000.00")
    connected.set_customers(remote)
    _, run = start_sync(api)
    assert run["status"] == "failed", run
    assert run["error"]["code"] != "internal_error", run
    assert _stored(api, synced_once["numbers"]) == synced_once["before"]


# -- the run's duration is bounded ------------------------------------------------------------


@pytest.fixture
def short_run_api(db: Any, api: Api, accounting_settings: Settings) -> Iterator[Any]:
    """``short_run_api(seconds)``: ``api``'s company on an app whose runs may last that long
    (its read timeout stays generous: only the run's deadline can end these runs early)."""
    with contextlib.ExitStack() as stack:

        def make(run_timeout: float) -> Api:
            settings = accounting_settings.model_copy(
                update={"accounting_run_timeout": run_timeout}
            )
            app = create_app(settings, database=db)
            client = stack.enter_context(TestClient(app, raise_server_exceptions=False))
            return Api(client, api.tenant)

        yield make


@pytest.fixture
def deadlines(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every deadline a run gives its provider (``EconomicProvider.balances``), in order."""
    given: list[float] = []
    real = economic_module.EconomicProvider.balances

    def record(self: Any, *, deadline: float | None = None) -> Any:
        assert deadline is not None
        given.append(deadline)
        return real(self, deadline=deadline)

    monkeypatch.setattr(economic_module.EconomicProvider, "balances", record)
    return given


def test_a_run_longer_than_the_run_timeout_fails(
    short_run_api: Any, connected: FakeEconomic, synced_once: dict[str, Any], deadlines: list[float]
) -> None:
    run_timeout = 0.6
    short = short_run_api(run_timeout)
    # 0.3 s a page: the first two pages alone take the whole run timeout, all three 0.9 s.
    delays = [connected.add_fault("delay", seconds=0.3, page=page) for page in (0, 1, 2)]
    earlier = len(connected.customer_requests())
    began = time.monotonic()
    sync_failed(short, "run_timeout")
    ended = time.monotonic()
    # The provider was given the run's deadline: the run timeout after the run started (some
    # moment between began and ended, however slow the machine)...
    (deadline,) = deadlines
    assert began + run_timeout <= deadline <= ended + run_timeout
    # ...and kept to it: the second page cannot have come before the deadline, so the third
    # was never asked for, nor was any page retried (a run timeout is not retried). (Normally
    # the run asks for pages 0 and 1; a very slow machine may reach the deadline sooner.)
    asked = [r.query["skippages"] for r in connected.customer_requests()[earlier:]]
    assert asked == ["0", "1"][: len(asked)], asked
    assert delays[2].used == 0
    assert _stored(short, synced_once["numbers"]) == synced_once["before"]


def test_an_answer_that_drips_slowly_cannot_stretch_the_run(
    short_run_api: Any, connected: FakeEconomic, synced_once: dict[str, Any], deadlines: list[float]
) -> None:
    """Every byte comes within the read timeout, yet the answer would take a minute: the run
    must end on accounting_run_timeout (2 s), not when the server is done (no wall-clock
    assertion: the server tells whether it got to the end of its body first)."""
    short = short_run_api(2.0)  # ample for the run to reach its first request on a slow machine
    drip = connected.add_fault("drip", seconds=0.1, total=HANG, page=0)
    _, run = start_sync(short)
    assert drip.used == 1  # the run met the dripping answer, and did not ask again
    assert drip.completed == 0, "the run waited for the whole dripping answer"
    assert connected.drips_finished == 0
    assert len(deadlines) == 1
    assert run["status"] == "failed"
    # Only the run's deadline can have ended it: the read timeout is far above 0.1 s a byte.
    assert run["error"]["code"] == "run_timeout"
    assert _stored(short, synced_once["numbers"]) == synced_once["before"]


# -- one run at a time, and abandoned runs ----------------------------------------------------


def _running(session: Session, api: Api, runner: str, heartbeat_age: float = 0) -> uuid.UUID:
    now = datetime.now(UTC)
    run = SyncRun(
        company_id=api.tenant.company.id,
        trigger="api",
        runner=runner,
        started_at=now - timedelta(seconds=heartbeat_age + 1),
        heartbeat_at=now - timedelta(seconds=heartbeat_age),
        status="running",
    )
    session.add(run)
    session.commit()
    return run.id


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _here(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}"


def test_409_while_a_run_is_running(api: Api, connected: FakeEconomic, session: Session) -> None:
    running = _running(session, api, _here(os.getpid()))
    r = api.post(SYNC)
    assert_problem(r, 409, "sync_already_running")
    assert connected.requests == []
    body = ok(api.get(RUNS))
    assert [(i["id"], i["status"]) for i in body["items"]] == [(str(running), "running")]


def test_409_while_another_machine_runs_one_with_a_fresh_heartbeat(
    api: Api, connected: FakeEconomic, session: Session
) -> None:
    _running(session, api, "another-host.example:4242", heartbeat_age=5)
    assert_problem(api.post(SYNC), 409, "sync_already_running")


def test_a_run_whose_process_died_is_marked_abandoned(
    api: Api, connected: FakeEconomic, session: Session
) -> None:
    p = create_partner(api, accounting_ref="1")
    connected.set_customers([customer(1, "1.00")])
    dead = _running(session, api, _here(_dead_pid()))
    run = sync_ok(api)
    assert run["id"] != str(dead)
    old = ok(api.get(f"{RUNS}/{dead}"))
    assert old["status"] == "failed"
    assert old["error"]["code"] == "run_abandoned"
    assert old["finished_at"] is not None
    assert get_partner(api, p["number"])["debtor_balance"] == "1.00"


@pytest.mark.parametrize("runner", ["this-host", "another-host"])
def test_a_run_with_a_stale_heartbeat_is_marked_abandoned(
    api: Api, connected: FakeEconomic, session: Session, runner: str, accounting_settings: Settings
) -> None:
    who = _here(os.getpid()) if runner == "this-host" else "another-host.example:4242"
    stale = _running(
        session, api, who, heartbeat_age=accounting_settings.accounting_heartbeat_timeout + 30
    )
    sync_ok(api)
    old = ok(api.get(f"{RUNS}/{stale}"))
    assert (old["status"], old["error"]["code"]) == ("failed", "run_abandoned")


def test_runs_of_another_company_do_not_block(
    api: Api, other_api: Api, connected: FakeEconomic, session: Session
) -> None:
    _running(session, other_api, _here(os.getpid()))
    sync_ok(api)
