"""Isolation and scopes by construction: walk the app's route table, so a new route is covered
without anyone remembering. Every API route answers 401 without a token and 403 with too small
a scope; with another company's token on this company's objects it answers 404 (collections
show none of them) and changes nothing."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.logging import configure_logging
from app.models import SyncRun
from app.models.enums import Scope
from tests.conftest import AppFor, RollbackDatabase, assert_problem
from tests.factories import Tenant, make_tag, make_tenant

ORDER = {
    "partner_number": 1,
    "currency": "DKK",
    "lines": [{"description": "Rye bread", "quantity": "2", "unit_price": "10.00"}],
}
# A valid body for every route that takes one; a new route without one fails the walk.
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/partners"): {"name": "Other", "country": "DK"},
    ("PATCH", "/api/v1/partners/{number}"): {"name": "Renamed"},
    ("POST", "/api/v1/partners/bulk/customer-stage"): {"customer_stage": "lost", "numbers": [1]},
    ("POST", "/api/v1/partners/bulk/apply-dormancy"): {"dry_run": True},
    ("POST", "/api/v1/tags"): {"name": "Fresh"},
    ("POST", "/api/v1/users"): {"name": "New", "email": "new@example.com"},
    ("POST", "/api/v1/tokens"): {"name": "t", "scope": "read"},
    ("PATCH", "/api/v1/company"): {"name": "Renamed ApS"},
    ("POST", "/api/v1/sales-orders"): ORDER,
    ("PATCH", "/api/v1/sales-orders/{number}"): {"reference": "changed"},
    ("PUT", "/api/v1/accounting/connection"): {
        "provider": "e-conomic",
        "base_url": "https://accounting.example.com",
        "app_secret_token": "app",
        "agreement_grant_token": "grant",
    },
    ("POST", "/api/v1/webhooks"): {"url": "https://hooks.example.com/crm"},
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): {"description": "changed"},
    ("POST", "/api/v1/crm/views"): {"name": "Danish leads", "filters": {"country": "DK"}},
    ("PATCH", "/api/v1/crm/views/{view_id}"): {"name": "Renamed"},
    ("POST", "/api/v1/accounting/balances"): {
        "balances": [{"accounting_ref": "R1", "balance": "1.00"}],
        "as_of": "2026-01-01T00:00:00Z",
    },
}
# Routes whose body is a file, not JSON: (media type, bytes). Another company's import of
# partner 3 (A's only) must find nothing.
RAW_BODIES: dict[tuple[str, str], tuple[str, bytes]] = {
    ("POST", "/api/v1/partners/import"): ("text/csv", b"number,name\r\n3,Taken over\r\n"),
}
# Routes that act on the caller's own company, never on an object named in the path.
OWN_COMPANY = {"/api/v1/company", "/api/v1/me"}


def _needed_scope(route: APIRoute) -> Scope:
    names = {d.call.__name__ for d in route.dependant.dependencies if d.call is not None}
    for scope in (Scope.admin, Scope.write, Scope.read):
        if f"require_{scope.value}" in names:
            return scope
    raise AssertionError(f"{route.path_format} has no scope dependency")


def _flat(routes: list[Any]) -> list[Any]:
    out = []
    for route in routes:
        included = getattr(route, "original_router", None)  # an included router
        out.extend(_flat(included.routes) if included is not None else [route])
    return out


def _routes(app: Any) -> list[tuple[str, APIRoute]]:
    out = []
    for route in _flat(app.routes):
        if isinstance(route, APIRoute) and route.path_format.startswith("/api/"):
            out.extend((method, route) for method in sorted(route.methods))
    # Every operation of the contract is walked: the walk cannot silently miss routes.
    contract = {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/api/")
        for method in item
    }
    assert {(m, r.path_format) for m, r in out} == contract
    return out


@pytest.fixture
def world(
    app_for: AppFor, settings: Settings, db: RollbackDatabase, session: Session
) -> dict[str, Any]:
    """Company A with one object of every kind; company B with its own admin token."""
    a = make_tenant(session, slug="alpha")
    b = make_tenant(session, slug="beta")
    secret = settings.model_copy(update={"secret_key": "route-table-secret-0123456789"})
    client = TestClient(app_for(secret, db), raise_server_exceptions=False)
    h = {"Authorization": f"Bearer {a.tokens['admin']}"}
    make_tag(session, a, "Wholesale")
    # Three partners and orders, so A's number 3 exists in A only (B makes at most one).
    for _ in range(3):
        r = client.post(
            "/api/v1/partners",
            json={"name": "Alpha Only Partner 7f3", "country": "DK", "tags": ["Wholesale"]},
            headers=h,
        )
        assert r.status_code == 201
        assert client.post("/api/v1/sales-orders", json=ORDER, headers=h).status_code == 201
    assert (
        client.put(
            "/api/v1/accounting/connection",
            headers=h,
            json=BODIES[("PUT", "/api/v1/accounting/connection")],
        ).status_code
        == 200
    )
    run = SyncRun(company_id=a.company.id, trigger="api", runner="elsewhere:1", status="failed")
    session.add(run)
    session.commit()
    webhook = client.post(
        "/api/v1/webhooks", headers=h, json=BODIES[("POST", "/api/v1/webhooks")]
    ).json()
    delivery = client.post(f"/api/v1/webhooks/{webhook['id']}/test", headers=h).json()
    tokens = client.get("/api/v1/tokens", headers=h).json()["items"]
    view = client.post(
        "/api/v1/crm/views", headers=h, json={"name": "Alpha view", "shared": True}
    ).json()
    return {
        "client": client,
        "a": a,
        "b": b,
        "params": {
            "number": "3",
            "name": "Wholesale",
            "user_id": str(a.admin.id),
            "token_id": tokens[0]["id"],
            "run_id": str(run.id),
            "webhook_id": webhook["id"],
            "delivery_id": delivery["id"],
            "view_id": view["id"],
        },
        "session": session,
    }


def _fingerprint(session: Session, tenant: Tenant) -> str:
    """Every row of the company, hashed: any change by the other company shows."""
    digest = hashlib.sha256()
    for table in (
        "companies",
        "users",
        "api_tokens",
        "tags",
        "partners",
        "partner_tags",
        "partner_locations",
        "stage_changes",
        "sales_orders",
        "sales_order_lines",
        "accounting_connections",
        "accounting_sync_runs",
        "idempotency_keys",
        "events",
        "webhooks",
        "webhook_deliveries",
        "saved_views",
    ):
        column = "id" if table == "companies" else "company_id"
        value = (
            tenant.company.id
            if session.get_bind().dialect.name == "postgresql"
            else tenant.company.id.hex
        )
        rows = session.execute(
            text(f"SELECT * FROM {table} WHERE {column} = :c"),
            {"c": value},
        ).all()
        digest.update(json.dumps(sorted(map(repr, rows))).encode())
    return digest.hexdigest()


def _call(world: dict[str, Any], method: str, route: APIRoute, token: str | None) -> Any:
    path = route.path_format.format(**world["params"])
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if (method, route.path_format) in RAW_BODIES:
        media_type, content = RAW_BODIES[(method, route.path_format)]
        headers["Content-Type"] = media_type
        return world["client"].request(method, path, headers=headers, content=content)
    body = BODIES.get((method, route.path_format))
    return world["client"].request(method, path, headers=headers, json=body)


def test_every_route_has_a_sample_body_when_it_takes_one(world: dict[str, Any]) -> None:
    for method, route in _routes(world["client"].app):
        if route.body_field is not None:
            assert (method, route.path_format) in BODIES, (
                f"add a sample body for {method} {route.path_format}"
            )


def test_every_route_answers_401_without_a_token(world: dict[str, Any]) -> None:
    for method, route in _routes(world["client"].app):
        r = _call(world, method, route, None)
        assert_problem(r, 401, "missing_token")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_every_route_answers_403_to_too_small_a_scope(world: dict[str, Any]) -> None:
    checked = 0
    for method, route in _routes(world["client"].app):
        needed = _needed_scope(route)
        if method == "GET":
            assert needed in (Scope.read, Scope.admin), f"GET {route.path_format} needs {needed}"
        else:
            assert needed in (Scope.write, Scope.admin), (
                f"{method} {route.path_format} needs {needed}"
            )
        smaller = [s for s in Scope if not s.allows(needed)]
        for scope in smaller:
            before = _fingerprint(world["session"], world["a"])
            r = _call(world, method, route, world["a"].tokens[scope.value])
            assert_problem(r, 403, "insufficient_scope")
            assert _fingerprint(world["session"], world["a"]) == before, (method, route.path_format)
            checked += 1
    assert checked > 20


def test_another_companys_token_finds_nothing_and_changes_nothing(world: dict[str, Any]) -> None:
    b_token = world["b"].tokens["admin"]
    for method, route in _routes(world["client"].app):
        before = _fingerprint(world["session"], world["a"])
        r = _call(world, method, route, b_token)
        if "{" in route.path_format:
            assert_problem(r, 404)
        else:
            assert r.status_code < 500, (method, route.path_format, r.text)
            if r.status_code == 200 and r.headers.get("content-type", "").startswith(
                ("application/json", "text/csv")
            ):
                text_ = r.text
                assert str(world["a"].company.id) not in text_, (method, route.path_format)
                assert "Alpha Only Partner 7f3" not in text_, (method, route.path_format)
        if route.path_format not in OWN_COMPANY or method == "GET":
            assert _fingerprint(world["session"], world["a"]) == before, (method, route.path_format)


def test_no_token_reaches_any_log_line(world: dict[str, Any], capfd: Any) -> None:
    """Every route, with every token and without: the secrets never appear in the logs."""
    secrets = [*world["a"].tokens.values(), *world["b"].tokens.values()]
    configure_logging("DEBUG", json=True)  # log lines go to this test's captured stderr
    capfd.readouterr()
    for method, route in _routes(world["client"].app):
        for token in (world["a"].tokens["admin"], world["b"].tokens["read"], None, "crm_bogus"):
            _call(world, method, route, token)
    out, err = capfd.readouterr()
    logs = out + err
    assert '"event": "request"' in logs  # the access log was captured
    for secret in secrets:
        assert secret not in logs
        assert secret.removeprefix("crm_") not in logs
