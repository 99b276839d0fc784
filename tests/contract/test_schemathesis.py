"""Property-based contract test: the app in process (ASGI) against the committed contract.

Schemathesis generates requests for every operation of ``openapi/openapi.yaml`` (the file
clients read, not the app's live schema) and runs its default checks on every response: no
5xx, status code and content type declared, body matching the declared schema, headers,
negative data rejected, authentication enforced, and so on.

Two default checks run in a narrowed form (see DATA_DEPENDENT_REJECTIONS below): a
schema-valid request may still be refused for reasons that depend on stored data (an unknown
owner, a stale ETag), and a body over the size limit is refused with the declared 413.

Nothing is excluded. ``/metrics`` answers ``text/plain`` (Prometheus) and is declared so;
``/healthz`` and ``/readyz`` need no token, which the checks accept because those
operations declare no security requirement.

Every example runs inside the test's rolled-back transaction (conftest's ``app`` fixture), so
whatever the generated requests create or delete disappears afterwards.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.parameters import ParameterLocation
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.etags import IF_MATCH_PATTERN
from app.sales_orders import service as sales_orders
from app.sales_orders.schemas import LineIn, SalesOrderCreate
from tests.conftest import AppFor, RollbackDatabase
from tests.factories import Tenant, make_partner, make_tag, make_tenant, make_user

# Minutes on each database: `make test` runs it on PostgreSQL, CI on both, `make fuzz` on both
# with many more examples.
pytestmark = pytest.mark.slow

CONTRACT = Path(__file__).resolve().parents[2] / "openapi" / "openapi.yaml"
# Examples per operation (and sequences for the stateful test); `make fuzz` raises it.
FUZZ_EXAMPLES = int(os.environ.get("CRM_FUZZ_EXAMPLES", "15"))


@pytest.fixture
def app(app_for: AppFor, settings: Settings, db: RollbackDatabase) -> Any:
    """The harness' app without the per-token and per-company request limits: a thousand
    examples a minute on one token would otherwise be answered 429 from then on, and explore
    nothing. tests/ops and tests/auth test the limits."""
    # Long polls answer at once: a generated `wait=30` would hold every example 30 s.
    unlimited = settings.model_copy(
        update={
            "rate_limit": "0",
            "rate_limit_company": "0",
            "event_max_wait": 0,
            "secret_key": "contract-test-secret-key-0123456789",  # webhooks store secrets
        }
    )
    return app_for(unlimited, db)


def seed(session: Session, tenant: Tenant) -> Tenant:
    """A tag, a few partners (numbers 1-3) and a sales order (number 1), so that GETs by
    number find something."""
    make_tag(session, tenant, "Wholesale")
    owner = make_user(session, tenant.company, name="Mette Sørensen")
    make_partner(session, tenant, name="Nordic Deli A/S", country="DK", tags=["Wholesale"])
    make_partner(
        session,
        tenant,
        name="Hamburg Feinkost GmbH",
        country="DE",
        customer_stage="active",
        credit_limit="1000.00",
        owner_id=owner.id,
    )
    make_partner(session, tenant, name="Fjord Seafood AS", country="NO", customer_stage="lead")
    sales_orders.create(
        session=session,
        principal=tenant.principal,
        data=SalesOrderCreate(
            partner_number=2,
            delivery_date=date.today() + timedelta(days=7),
            lines=[LineIn(description="Rye bread 1 kg", quantity="10", unit_price="18.50")],
        ),
    )
    return tenant


@pytest.fixture
def seeded(session: Session, tenant: Tenant) -> Tenant:
    return seed(session, tenant)


class _InProcess:
    """Forwards to the app of the running test.

    The schema is loaded at import time from the committed file, while each test gets a fresh
    app bound to its own rolled-back transaction and a fresh tenant. Schemathesis also sends
    requests of its own (the ``ignored_auth`` check repeats them without the token), and those
    must reach the same in-process app.
    """

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.app is not None, "the `in_process` fixture sets the app"
        await self.app(scope, receive, send)


CURRENT = _InProcess()

# Parametrized at collection time: one pytest item per operation, each with fresh
# function-scoped fixtures (its own transaction and seed data). The lazy form,
# `schemathesis.pytest.from_fixture`, cannot run here: schemathesis 4.32's LazySchema writes
# `request.node._nodeid`, which pytest 9.2 no longer has (AttributeError before any request).
schema = schemathesis.openapi.from_path(CONTRACT)
schema.app = CURRENT
# How long one in-process request may take before it counts as hung. Schemathesis' default,
# 10 s, is a timing assert in disguise: on a shared 2-core machine under CI a single example
# once took longer (a 404 of `POST /webhooks/{id}/test`, 12 ms when replayed). Speed is
# measured in bench/; here a request only has to finish, and one that hangs still fails.
schema.config.update(request_timeout=120)


# The token travels as auth, not as a fixed header on every call: schemathesis then knows it
# is not generated data, leaves it out when a negative case removes or mangles the
# Authorization header on purpose, and sends it everywhere else. Some cases are generated at
# collection time, before any tenant exists, so the provider writes a placeholder and the test
# puts the running tenant's admin token in its place just before sending.
TOKEN_PLACEHOLDER = "Bearer <admin token of the running test>"


@schema.auth(refresh_interval=None)
class AdminToken:
    def get(self, case: Case, context: Any) -> str:
        return TOKEN_PLACEHOLDER

    def set(self, case: Case, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": data}


# Answers to schema-valid requests that depend on data the server holds, or on limits no
# JSON Schema can state, so the contract cannot promise them:
# - a generated If-Match matches the current ETag only by chance (412 etag_mismatch);
# - a generated cursor is not one the server handed out (422 invalid_cursor);
# - a generated UUID, number or tag name almost never names an existing user, owner, tag or
#   partner (422 unknown_*, partners_not_found);
# - a generated Idempotency-Key repeats across examples with another body (422
#   idempotency_key_reused, the documented answer);
# - whether an exchange rate is required or must be 1 depends on the company's base currency,
#   whether a connection needs its tokens on whether one is stored, and whether an order is over
#   the credit limit on the partner's balance and the company's enforcement setting;
# - whether a base_url is an allowed destination depends on the deployment's outbound settings
#   (plain http, private addresses) and on what its host name resolves to;
# - the body size limit (413, declared) applies to the bytes, which a schema cannot bound;
# - an order's total is the sum of its lines, which a schema cannot bound either, and "at most
#   one location is primary" is a rule across list items that a schema cannot state.
# - a partner import's body is a file (a string, for the schema): what its rows say, and
#   whether it is a readable workbook at all, no schema can state (422 import_invalid,
#   unreadable_file).
# Only these exact (status, problem code) pairs are forgiven; any other rejection of
# schema-valid data, e.g. a plain validation_failed, still fails the run.
DATA_DEPENDENT_REJECTIONS = {
    (412, "etag_mismatch"),
    (413, "payload_too_large"),
    (422, "invalid_cursor"),
    (422, "unknown_owner"),
    (422, "unknown_user"),
    (422, "unknown_tag"),
    (422, "unknown_partner"),
    (422, "partners_not_found"),
    (422, "idempotency_key_reused"),
    (422, "exchange_rate_required"),
    (422, "invalid_exchange_rate"),
    (422, "credentials_required"),
    (422, "destination_not_allowed"),
    (422, "credit_limit_exceeded"),
    (422, "amount_out_of_range"),
    (422, "several_primary_locations"),
    (422, "import_invalid"),
    (422, "unreadable_file"),
}
# Field-level rules no schema can state: an item given twice in a list (uniqueItems cannot
# compare by a key, or names case-insensitively), and instants judged against the present: an
# as_of that lies in the future, a token's expires_at in the past or more than ten years ahead.
UNSTATABLE_FIELD_RULES = {
    "duplicate_item",
    "as_of_in_future",
    "expires_at_in_past",
    "expires_at_too_far",
    "datetime_out_of_range",  # a date-time near year 1 or 9999 whose offset leaves the range
}


def positive_data_acceptance_by_data(ctx: Any, response: Any, case: Case) -> bool | None:
    """schemathesis' ``positive_data_acceptance``, minus DATA_DEPENDENT_REJECTIONS and the
    UNSTATABLE_FIELD_RULES."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        body = _problem(response)
        if (response.status_code, body.get("code")) in DATA_DEPENDENT_REJECTIONS:
            return None
        errors = body.get("errors") or []
        if (
            response.status_code == 422
            and errors
            and all(e.get("code") in UNSTATABLE_FIELD_RULES for e in errors)
        ):
            return None
        if _sent_a_malformed_if_match(response, case):
            return None
        raise


def _sent_a_malformed_if_match(response: Any, case: Case) -> bool:
    """A 400 ``invalid_if_match`` to an ``If-Match`` the contract's pattern refuses: not valid
    data. schemathesis' coverage phase draws no value for a pattern of quoted entity tags and
    seeds its negative one (``0``) into cases it then labels positive."""
    sent = (case.headers or {}).get("If-Match")
    return (
        (response.status_code, _problem(response).get("code")) == (400, "invalid_if_match")
        and isinstance(sent, str)
        and re.search(IF_MATCH_PATTERN, sent) is None
    )


def negative_data_rejection_or_too_large(ctx: Any, response: Any, case: Case) -> bool | None:
    """schemathesis' ``negative_data_rejection``, also counting the declared 413 (the body is
    over the size limit) as a rejection: the check's default list leaves 413 out; and not
    counting a query that is valid data as sent (see ``_query_valid_as_sent``)."""
    try:
        return negative_data_rejection(ctx, response, case)
    except AcceptedNegativeData:
        if (response.status_code, _problem(response).get("code")) == (413, "payload_too_large"):
            return None
        if _query_valid_as_sent(response, case):
            return None
        raise


def _query_valid_as_sent(response: Any, case: Case) -> bool:
    """Whether a case negative only in its query sent a query that is valid data.

    schemathesis (4.32.5) has this guard itself, but reads a parameter as the text sent only when
    its schema's top-level ``type`` is string; FastAPI declares an optional parameter as
    ``anyOf: [..., {type: null}]``. So ``?tag=false``, generated as the boolean false, is judged
    as a boolean although the server receives the tag name "false" (found at 1,000 examples:
    ``GET /api/v1/partners?tag=false``, ``/crm/summary?q=false``). This is the same guard, with
    the text sent for every parameter the server reads as text or as a list of texts (others,
    which the server parses, are judged as generated, as schemathesis does); an undeclared
    parameter, a missing required one or a repeated single value still fails the check."""
    meta = case.meta
    if meta is None:
        return False
    negative = [loc for loc, info in meta.components.items() if info.mode.is_negative]
    if negative != [ParameterLocation.QUERY]:
        return False
    parameters = case.operation.get_parameter_set(ParameterLocation.QUERY)
    properties = parameters.schema.get("properties", {})
    sent = parse_qs(urlsplit(str(response.request.url)).query, keep_blank_values=True)
    query: dict[str, Any] = {}
    generated = case.query or {}
    for name, texts in sent.items():
        kind = _read_as(properties.get(name, {}))
        if kind == "list":
            query[name] = texts
        elif kind == "text" and len(texts) == 1:
            query[name] = texts[0]
        elif kind is None and name in properties and name in generated:
            query[name] = generated[name]  # parsed by the server: judged as generated, as there
        else:
            return False
    return bool(parameters.get_strict_validator().is_valid(query))


def _read_as(schema: dict[str, Any]) -> str | None:
    """How the server takes a parameter as sent: "text", a "list" of texts, or None (parsed)."""
    for branch in [schema, *schema.get("anyOf", [])]:
        if branch.get("type") == "string":
            return "text"
        if branch.get("type") == "array" and branch.get("items", {}).get("type") == "string":
            return "list"
    return None


def _problem(response: Any) -> dict[str, Any]:
    if not response.headers.get("content-type", [""])[0].startswith("application/problem+json"):
        return {}
    body = response.json()
    return body if isinstance(body, dict) else {}


@pytest.fixture
def in_process(app: Any, seeded: Tenant) -> Iterator[Tenant]:
    CURRENT.app = app
    yield seeded
    CURRENT.app = None


# 15 generated examples per operation on top of the coverage phase's fixed cases: when every
# check passes (nothing stops an operation early) the file takes about a minute per database;
# 25 took about 100 s.
@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_honours_its_contract(case: Case, in_process: Tenant) -> None:
    if (case.headers or {}).get("Authorization") == TOKEN_PLACEHOLDER:
        case.headers["Authorization"] = f"Bearer {in_process.tokens['admin']}"
    case.call_and_validate(
        excluded_checks=[positive_data_acceptance, negative_data_rejection],
        additional_checks=[positive_data_acceptance_by_data, negative_data_rejection_or_too_large],
    )


# Stateful sequences: schemathesis follows the contract's OpenAPI links (create a partner, then
# read, change, delete it or read its history; create an order, then deliver, invoice or cancel
# it; tags, users and tokens likewise) and runs the same checks on every step.
#
# Each sequence runs in a company of its own, seeded alike and with a fresh admin token: what an
# earlier sequence created, used up or limited cannot change what a later one sees (the partner
# numbers it gets, a duplicate tag name, the token cap). Generation then depends on the sequence
# alone, so hypothesis explores at random, and replays a failure to shrink it to a short one.
def test_linked_operations_in_sequence(session: Session, in_process: Tenant) -> None:
    class Sequences(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            tenant = seed(session, make_tenant(session))
            self.token = f"Bearer {tenant.tokens['admin']}"

        def before_call(self, case: Case) -> None:
            if (case.headers or {}).get("Authorization") == TOKEN_PLACEHOLDER:
                case.headers = {**(case.headers or {}), "Authorization": self.token}

        def validate_response(self, response: Any, case: Case, **kwargs: Any) -> None:
            case.validate_response(
                response,
                excluded_checks=[positive_data_acceptance, negative_data_rejection],
                additional_checks=[
                    positive_data_acceptance_by_data,
                    negative_data_rejection_or_too_large,
                ],
            )

    Sequences.run(
        settings=settings(
            max_examples=FUZZ_EXAMPLES,
            stateful_step_count=6,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
