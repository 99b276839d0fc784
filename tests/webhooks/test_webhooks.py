"""Webhooks against a real local receiver: signatures the receiver's own check verifies, the
retry schedule, 410 and exhausted retries disabling an endpoint, rotation overlap, filters,
test events, redelivery, bad URLs, and secrets shown once and never logged."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from app.core.config import Settings
from app.db.base import utcnow
from app.main import create_app
from app.models import Webhook
from app.webhooks.dispatcher import Dispatcher
from app.worker import Job, Jobs
from tests.conftest import Api, AppFor, RollbackDatabase, assert_problem
from tests.factories import Tenant, make_tenant
from tests.helpers import create_partner
from tests.webhooks.receiver import Receiver, receiver

HOOKS = "/api/v1/webhooks"
SECRET_KEY = "webhook-test-secret-key-0123456789"


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "secret_key": SECRET_KEY,
            "outbound_allow_http": True,  # the receiver listens on http://127.0.0.1
            "outbound_allow_private": True,
            "webhook_retry_schedule": "0,0,0",  # 4 attempts, no waiting
            "webhook_timeout": 2.0,
            "webhook_disable_after": 2,
            "dispatch_concurrency": 1,  # the test's one connection is not shared by threads
        }
    )


@pytest.fixture
def hapi(
    app_for: AppFor, hook_settings: Settings, db: RollbackDatabase, tenant: Tenant
) -> Iterator[Api]:
    with TestClient(app_for(hook_settings, db), raise_server_exceptions=False) as c:
        yield Api(c, tenant)


@pytest.fixture
def dispatcher(db: RollbackDatabase, hook_settings: Settings) -> Iterator[Dispatcher]:
    d = Dispatcher(db, hook_settings)
    yield d
    d.close()


@pytest.fixture
def rx() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def register(api: Api, url: str, **fields: Any) -> dict[str, Any]:
    r = api.post(HOOKS, json={"url": url, **fields})
    assert r.status_code == 201, r.text
    return r.json()


def deliveries(api: Api, webhook_id: str, **params: Any) -> list[dict[str, Any]]:
    r = api.get(f"{HOOKS}/{webhook_id}/deliveries", params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def verify(secret: str, received: Any) -> dict[str, Any]:
    return Verifier(secret).verify(received.body, received.headers)


# --- signing and the envelope ----------------------------------------------------------------


def test_a_change_is_posted_signed_and_the_receivers_own_check_verifies_it(
    hapi: Api, dispatcher: Dispatcher, rx: Receiver
) -> None:
    hook = register(hapi, rx.url)
    assert hook["secret"].startswith("whsec_")
    create_partner(hapi, name="Signed Foods", customer_stage="lead")
    assert dispatcher.drain() == 2
    assert len(rx.received) == 2
    feed = hapi.get("/api/v1/events").json()["items"]
    by_id = {e["id"]: e for e in feed}
    for got in rx.received:
        assert got.path == "/hooks/crm"
        assert got.headers["content-type"] == "application/json"
        envelope = verify(hook["secret"], got)
        assert envelope == by_id[got.headers["webhook-id"]]
        assert int(got.headers["webhook-timestamp"]) > 0
        assert got.headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):
        Verifier("whsec_" + "QUJD" * 8).verify(rx.received[0].body, rx.received[0].headers)
    log = deliveries(hapi, hook["id"])
    assert {d["status"] for d in log} == {"succeeded"}
    assert {d["attempts"] for d in log} == {1}
    assert all(d["delivered_at"] for d in log)


def test_a_new_endpoint_receives_only_what_happens_after_it_is_registered(
    hapi: Api, dispatcher: Dispatcher, rx: Receiver
) -> None:
    create_partner(hapi, name="Before", customer_stage="lead")
    register(hapi, rx.url)
    create_partner(hapi, name="After")
    dispatcher.drain()
    assert [json.loads(b)["data"]["name"] for b in rx.bodies()] == ["After"]


# --- retries and disabling ---------------------------------------------------------------------


def test_500_500_200_is_delivered_on_the_third_attempt(
    hapi: Api, dispatcher: Dispatcher, rx: Receiver
) -> None:
    hook = register(hapi, rx.url)
    rx.answer(500, 500, 200)
    create_partner(hapi)
    dispatcher.drain()
    assert len(rx.received) == 3
    assert len({r.headers["webhook-id"] for r in rx.received}) == 1  # one event, three tries
    (entry,) = deliveries(hapi, hook["id"])
    assert (entry["status"], entry["attempts"], entry["last_status_code"]) == ("succeeded", 3, 200)
    assert entry["last_error"] is None


def test_a_companys_backlog_does_not_hold_back_anothers_events(
    hapi: Api, session: Session, dispatcher: Dispatcher, rx: Receiver
) -> None:
    """A round shares its capacity between the companies with due deliveries, each claimed
    in a statement of its own: ten due in one company do not push back another's one."""
    busy = hapi
    quiet = Api(hapi.client, make_tenant(session))
    register(busy, rx.url)
    register(quiet, rx.url)
    for n in range(10):
        create_partner(busy, name=f"Busy {n}")
    assert dispatcher.fan_out() == 10
    create_partner(quiet, name="Quiet")
    assert dispatcher.fan_out() == 1  # due after all ten of the other company
    first = dispatcher.claim(4)
    by_company = Counter(item.company_id for item in first)
    assert by_company == {busy.tenant.company.id: 3, quiet.tenant.company.id: 1}
    rest = dispatcher.claim(20)  # the first four are leased: not claimable again
    assert Counter(item.company_id for item in rest) == {busy.tenant.company.id: 7}
    assert not {i.id for i in first} & {i.id for i in rest}


def test_the_retry_schedule_spaces_the_attempts(
    hapi: Api, db: RollbackDatabase, hook_settings: Settings, rx: Receiver
) -> None:
    spaced = Dispatcher(db, hook_settings.model_copy(update={"webhook_retry_schedule": "300"}))
    try:
        hook = register(hapi, rx.url)
        rx.answer(500)
        create_partner(hapi)
        spaced.drain()
        assert len(rx.received) == 1  # the second attempt is due in 5 minutes, not now
        (entry,) = deliveries(hapi, hook["id"])
        assert entry["status"] == "pending"
        assert entry["attempts"] == 1
        assert entry["last_status_code"] == 500
        due = entry["next_attempt_at"]
        assert due > (utcnow() + timedelta(seconds=290)).isoformat().replace("+00:00", "Z")
    finally:
        spaced.close()


def test_410_disables_the_endpoint_at_once(hapi: Api, dispatcher: Dispatcher, rx: Receiver) -> None:
    hook = register(hapi, rx.url)
    rx.answer(410)
    create_partner(hapi)
    dispatcher.drain()
    assert len(rx.received) == 1
    read = hapi.get(f"{HOOKS}/{hook['id']}").json()
    assert read["enabled"] is False
    assert "410" in read["disabled_reason"]
    create_partner(hapi)
    dispatcher.drain()
    assert len(rx.received) == 1  # nothing more is sent to a disabled endpoint
    # Enabled again: a fresh start from then on.
    r = hapi.patch(f"{HOOKS}/{hook['id']}", json={"enabled": True})
    assert r.json()["disabled_reason"] is None
    assert r.json()["enabled"] is True
    create_partner(hapi, name="Back")
    dispatcher.drain()
    assert json.loads(rx.received[-1].body)["data"]["name"] == "Back"


def test_events_that_exhaust_their_retries_disable_the_endpoint_with_a_reason(
    hapi: Api, dispatcher: Dispatcher, rx: Receiver
) -> None:
    hook = register(hapi, rx.url)
    rx.default = 503
    create_partner(hapi)  # event 1: 4 attempts, failed
    dispatcher.drain()
    assert len(rx.received) == 4
    assert hapi.get(f"{HOOKS}/{hook['id']}").json()["enabled"] is True  # one in a row so far
    create_partner(hapi)  # event 2: 4 attempts, failed: 2 in a row
    dispatcher.drain()
    assert len(rx.received) == 8
    read = hapi.get(f"{HOOKS}/{hook['id']}").json()
    assert read["enabled"] is False
    assert "2 events in a row" in read["disabled_reason"]
    failed = deliveries(hapi, hook["id"], status="failed")
    assert len(failed) == 2
    assert {d["attempts"] for d in failed} == {4}
    assert {d["last_status_code"] for d in failed} == {503}
    assert deliveries(hapi, hook["id"], status="pending") == []


def test_a_success_between_failures_resets_the_streak(
    hapi: Api, dispatcher: Dispatcher, rx: Receiver
) -> None:
    hook = register(hapi, rx.url)
    rx.answer(503, 503, 503, 503, 200, 503, 503, 503, 503)
    for _ in range(3):
        create_partner(hapi)
        dispatcher.drain()
    assert hapi.get(f"{HOOKS}/{hook['id']}").json()["enabled"] is True


def test_a_receiver_slower_than_the_timeout_is_a_failed_attempt(
    hapi: Api, db: RollbackDatabase, hook_settings: Settings, rx: Receiver
) -> None:
    quick = Dispatcher(
        db, hook_settings.model_copy(update={"webhook_timeout": 0.3, "webhook_retry_schedule": ""})
    )
    try:
        hook = register(hapi, rx.url)
        rx.answer(-1.5)
        create_partner(hapi)
        quick.drain()
        (entry,) = deliveries(hapi, hook["id"])
        assert entry["status"] == "failed"
        assert entry["attempts"] == 1
        assert entry["last_status_code"] is None
        assert "No answer within" in entry["last_error"]
    finally:
        quick.close()


def test_an_unreachable_receiver_is_a_failed_attempt(hapi: Api, dispatcher: Dispatcher) -> None:
    with receiver() as gone:
        url = gone.url
    hook = register(hapi, url)  # nothing listens there any more
    create_partner(hapi)
    dispatcher.drain()
    (entry,) = deliveries(hapi, hook["id"])
    assert entry["status"] == "failed"
    assert entry["attempts"] == 4
    assert entry["last_error"] == "The receiver could not be reached."


# --- secrets -------------------------------------------------------------------------------------


def test_the_secret_is_shown_once_and_not_cached(hapi: Api, rx: Receiver) -> None:
    r = hapi.post(HOOKS, json={"url": rx.url})
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["location"] == f"{HOOKS}/{r.json()['id']}"
    secret = r.json()["secret"]
    for path in (f"{HOOKS}/{r.json()['id']}", HOOKS):
        assert secret not in hapi.get(path).text
        assert "secret" not in hapi.get(f"{HOOKS}/{r.json()['id']}").json()


def test_rotation_signs_with_both_secrets_for_24_hours(
    hapi: Api, dispatcher: Dispatcher, rx: Receiver, session: Session
) -> None:
    hook = register(hapi, rx.url)
    r = hapi.post(f"{HOOKS}/{hook['id']}/rotate-secret")
    assert r.status_code == 200, r.text
    new = r.json()["secret"]
    assert new != hook["secret"]
    assert new.startswith("whsec_")
    create_partner(hapi)
    dispatcher.drain()
    got = rx.received[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    verify(hook["secret"], got)  # receivers still on the old secret
    verify(new, got)  # and those already on the new one
    session.execute(
        update(Webhook)
        .where(Webhook.id == uuid.UUID(hook["id"]))
        .values(previous_secret_expires_at=utcnow() - timedelta(seconds=1))
    )
    create_partner(hapi)
    dispatcher.drain()
    got = rx.received[-1]
    assert len(got.headers["webhook-signature"].split(" ")) == 1
    verify(new, got)
    with pytest.raises(WebhookVerificationError):
        verify(hook["secret"], got)


def test_no_secret_reaches_a_log_line(
    hapi: Api, dispatcher: Dispatcher, rx: Receiver, capfd: Any
) -> None:
    hook = register(hapi, rx.url)
    rotated = hapi.post(f"{HOOKS}/{hook['id']}/rotate-secret").json()["secret"]
    rx.answer(500)
    create_partner(hapi)
    dispatcher.drain()
    out, err = capfd.readouterr()
    for secret in (hook["secret"], rotated):
        body = secret.removeprefix("whsec_")
        assert body not in out
        assert body not in err


def test_without_a_server_secret_key_no_webhook_can_be_stored(
    settings: Settings, db: RollbackDatabase, tenant: Tenant, rx: Receiver
) -> None:
    keyless = settings.model_copy(
        update={"outbound_allow_http": True, "outbound_allow_private": True}
    )
    with TestClient(create_app(keyless, database=db), raise_server_exceptions=False) as c:
        api = Api(c, tenant)
        assert_problem(api.post(HOOKS, json={"url": rx.url}), 409, "secret_key_not_configured")
        assert api.get(HOOKS).json()["items"] == []


# --- filters, test events, redelivery -------------------------------------------------------


def test_event_types_filter_what_an_endpoint_receives(
    hapi: Api, dispatcher: Dispatcher, rx: Receiver
) -> None:
    hook = register(hapi, rx.url, event_types=["partner.deleted"])
    assert hook["event_types"] == ["partner.deleted"]
    partner = create_partner(hapi, customer_stage="lead")
    assert hapi.delete(f"/api/v1/partners/{partner['number']}").status_code == 204
    dispatcher.drain()
    assert [json.loads(b)["type"] for b in rx.bodies()] == ["partner.deleted"]


def test_a_test_event_ignores_the_filter_and_stays_out_of_the_feed(
    hapi: Api, dispatcher: Dispatcher, rx: Receiver
) -> None:
    hook = register(hapi, rx.url, event_types=["partner.deleted"])
    r = hapi.post(f"{HOOKS}/{hook['id']}/test")
    assert r.status_code == 202, r.text
    assert r.json()["event_type"] == "webhook.test"
    assert r.json()["status"] == "pending"
    dispatcher.drain()
    (got,) = rx.received
    envelope = verify(hook["secret"], got)
    assert envelope["type"] == "webhook.test"
    assert envelope["data"] == {}
    assert envelope["company"] == hapi.tenant.company.slug
    assert hapi.get("/api/v1/events").json()["items"] == []


def test_redeliver_sends_the_same_event_again(
    hapi: Api, dispatcher: Dispatcher, rx: Receiver
) -> None:
    hook = register(hapi, rx.url)
    create_partner(hapi)
    dispatcher.drain()
    (entry,) = deliveries(hapi, hook["id"])
    r = hapi.post(f"{HOOKS}/{hook['id']}/deliveries/{entry['id']}/redeliver")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    dispatcher.drain()
    assert len(rx.received) == 2
    assert rx.received[0].body == rx.received[1].body
    assert rx.received[0].headers["webhook-id"] == rx.received[1].headers["webhook-id"]
    (entry,) = deliveries(hapi, hook["id"])
    assert entry["status"] == "succeeded"


def test_unknown_webhook_or_delivery_is_404(hapi: Api, rx: Receiver) -> None:
    hook = register(hapi, rx.url)
    missing = "00000000-0000-4000-8000-000000000000"
    assert_problem(hapi.get(f"{HOOKS}/{missing}"), 404, "webhook_not_found")
    assert_problem(
        hapi.post(f"{HOOKS}/{hook['id']}/deliveries/{missing}/redeliver"), 404, "delivery_not_found"
    )


def test_a_disabled_endpoint_takes_no_test_event(hapi: Api, rx: Receiver) -> None:
    hook = register(hapi, rx.url, enabled=False)
    assert_problem(hapi.post(f"{HOOKS}/{hook['id']}/test"), 409, "webhook_disabled")


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://hooks.example.com", "event_types": ["partner.nope"]}, "event_types"),
        ({"url": "https://hooks.example.com", "event_types": ["webhook.test"]}, "event_types"),
        ({"url": "https://hooks.example.com", "secret": "mine"}, "secret"),
        ({}, "url"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(hapi: Api, body: dict[str, Any], field: str) -> None:
    problem = assert_problem(hapi.post(HOOKS, json=body), 422)
    assert any(e["loc"][:2] == ["body", field] for e in problem["errors"]), problem
    assert hapi.get(HOOKS).json()["items"] == []


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",  # plain http, not allowed here
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://169.254.169.254/latest",
        "https://localhost/x",
        "https://2130706433/x",
    ],
)
def test_destinations_the_server_does_not_allow_are_422(
    settings: Settings, db: RollbackDatabase, tenant: Tenant, url: str
) -> None:
    strict = settings.model_copy(update={"secret_key": SECRET_KEY})
    with TestClient(create_app(strict, database=db), raise_server_exceptions=False) as c:
        api = Api(c, tenant)
        problem = assert_problem(api.post(HOOKS, json={"url": url}), 422)
        assert problem["errors"][0]["loc"] == ["body", "url"]
        assert problem["errors"][0]["code"] in (
            "destination_not_allowed",
            "string_pattern_mismatch",
        )


def test_write_scope_cannot_manage_webhooks(hapi: Api, rx: Receiver) -> None:
    assert_problem(hapi.as_("write").post(HOOKS, json={"url": rx.url}), 403)
    assert_problem(hapi.as_("write").get(HOOKS), 403)


def test_patch_and_delete(hapi: Api, rx: Receiver) -> None:
    hook = register(hapi, rx.url, description="first")
    r = hapi.patch(
        f"{HOOKS}/{hook['id']}", json={"description": None, "event_types": ["partner.created"]}
    )
    assert r.status_code == 200, r.text
    assert r.json()["description"] is None
    assert r.json()["event_types"] == ["partner.created"]
    assert_problem(hapi.patch(f"{HOOKS}/{hook['id']}", json={"url": None}), 422)
    assert_problem(
        hapi.patch(f"{HOOKS}/{hook['id']}", json={"url": "ftp://hooks.example.com/"}), 422
    )
    assert hapi.delete(f"{HOOKS}/{hook['id']}").status_code == 204
    assert_problem(hapi.get(f"{HOOKS}/{hook['id']}"), 404)


# --- the scheduled jobs ----------------------------------------------------------------------------


def test_a_job_runs_once_per_interval_whichever_process_asks(
    db: RollbackDatabase, hook_settings: Settings
) -> None:
    runs: list[str] = []
    first, second = Jobs(db, hook_settings), Jobs(db, hook_settings)
    job = Job("test_job", 3600, lambda: runs.append("ran"))
    first.jobs = second.jobs = [job]
    assert first.run_due() == ["test_job"]
    assert second.run_due() == []
    assert first.run_due() == []
    assert runs == ["ran"]
