"""Tampered cursors: every list that takes ``cursor``, every sort it offers, a value of every bad
kind in each slot of the cursor's key. Each one is 422 ``invalid_cursor``, never a 500.

A cursor is urlsafe base64 of ``{"s": sort, "k": [value, tiebreak]}``. These tests build
cursors the app never hands out: integers past what the column holds, text with NUL or a lone
surrogate, decimals that are not finite or have more digits than NUMERIC(16, 2), datetimes
whose UTC instant falls outside the calendar, floats and the JSON constants Infinity and NaN.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import BigInteger, SmallInteger
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from app.accounting.repository import RUN_SORTING
from app.core.pagination import SortField, Sorting, sort_values
from app.crm.repository import OVERVIEW_SORTING
from app.models import SyncRun, Webhook
from app.partners.repository import PARTNER_SORTING, STAGE_HISTORY_SORTING
from app.sales_orders.repository import SALES_ORDER_SORTING
from app.tags.repository import TAG_SORTING
from app.tokens.repository import TOKEN_SORTING
from app.users.repository import USER_SORTING
from app.views.repository import VIEW_SORTING
from app.webhooks.repository import DELIVERY_SORTING, WEBHOOK_SORTING
from tests.conftest import Api, assert_problem
from tests.helpers import assert_loc, create_order, create_partner, create_tag, ok, walk

MAX_CURSOR = 1000  # the cursor parameter's maxLength: longer is a plain 422 before decoding


@dataclass(frozen=True)
class ListRoute:
    path: str  # as in the contract
    sorting: Sorting
    takes_sort: bool


# Every GET list that takes ``cursor``; test_every_cursor_route_is_covered keeps this complete.
ROUTES = [
    ListRoute("/api/v1/partners", PARTNER_SORTING, True),
    ListRoute("/api/v1/partners/{number}/stage-history", STAGE_HISTORY_SORTING, False),
    ListRoute("/api/v1/sales-orders", SALES_ORDER_SORTING, True),
    ListRoute("/api/v1/crm/overview", OVERVIEW_SORTING, True),
    ListRoute("/api/v1/tokens", TOKEN_SORTING, False),
    ListRoute("/api/v1/users", USER_SORTING, False),
    ListRoute("/api/v1/tags", TAG_SORTING, False),
    ListRoute("/api/v1/accounting/sync-runs", RUN_SORTING, False),
    ListRoute("/api/v1/webhooks", WEBHOOK_SORTING, False),
    ListRoute("/api/v1/webhooks/{webhook_id}/deliveries", DELIVERY_SORTING, False),
    ListRoute("/api/v1/crm/views", VIEW_SORTING, True),
]
# The event feed's cursor is a position, signed: tests/events/test_feed.py tampers with it.
OWN_CURSORS = {"/api/v1/events"}


def _sorts(route: ListRoute) -> list[str]:
    return sort_values(route.sorting) if route.takes_sort else [route.sorting.default]


def _field(route: ListRoute, sort: str) -> SortField:
    return route.sorting.fields[sort.removeprefix("-")]


# --- crafting cursors -----------------------------------------------------------------------

# The JSON tokens json.dumps never writes but json.loads reads: each one replaces a slot.
RAW_TOKENS = ["Infinity", "-Infinity", "NaN", "1e400", "-1e400", "1.5", "0.0", "1E2", "-0.0"]

GOOD: dict[type, Any] = {
    int: 1,
    str: "a",
    bool: False,
    Decimal: "1.00",
    date: "2024-01-01",
    datetime: "2024-01-01T00:00:00+00:00",
    uuid.UUID: "00000000-0000-4000-8000-000000000001",
}

FORTY_DIGITS = "1234567890" * 4


def _int_bits(field: SortField) -> int:
    sql_type = field.expression.type
    while isinstance(sql_type, TypeDecorator):
        sql_type = sql_type.impl_instance
    if isinstance(sql_type, SmallInteger):
        return 16
    if isinstance(sql_type, BigInteger):
        return 64
    return 32  # INTEGER


def bad_values(field: SortField) -> list[Any]:
    """JSON values a cursor could carry for ``field`` that no database row of it can hold."""
    kind = field.value_type
    common: list[Any] = [[1], {"a": 1}]
    if kind is int:
        bits = _int_bits(field)
        return [
            2 ** (bits - 1),
            -(2 ** (bits - 1)) - 1,
            2**31,
            -(2**31) - 1,
            2**63,
            -(2**63) - 1,
            2**64,
            10**40,
            -(10**40),
            "1",
            True,
            *common,
        ]
    if kind is str:
        return [
            "\u0000",
            "a\u0000b",
            "\ud800",
            "a\udfffb",
            "\udbff\udbff",
            "x" * 600,
            1,
            True,
            *common,
        ]
    if kind is Decimal:
        return [
            "Infinity",
            "-Infinity",
            "inf",
            "NaN",
            "-NaN",
            "sNaN",
            "sNaN123",
            "1e400",
            "-1E+400",
            "1e-400",
            FORTY_DIGITS,
            "-" + FORTY_DIGITS,
            "0." + "0" * 38 + "1",
            FORTY_DIGITS[:20] + "." + FORTY_DIGITS[:20],
            "100000000000000",  # 10**14: NUMERIC(16, 2) holds less
            "-100000000000000.00",
            "99999999999999.999",
            "1.001",
            "1.5e-3",
            "1E+2",
            " 1.00",
            "abc",
            "",
            "\u0000",
            "1\ud800",
            100,
            True,
            *common,
        ]
    if kind is date:
        return [
            "0000-01-01",
            "10000-01-01",
            "2024-02-30",
            "2024-13-01",
            "2024-01-01\u0000",
            "2024-01-01T00:00:00",
            "",
            20240101,
            True,
            *common,
        ]
    if kind is datetime:
        return [
            "0001-01-01T00:00:00+00:01",  # before year 1 in UTC
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59-00:01",  # after year 9999 in UTC
            "9999-12-31T23:59:59.999999-23:59",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00-25:00",
            "2024-01-01T25:00:00+00:00",
            "10000-01-01T00:00:00+00:00",
            "2024-01-01T00:00:00",  # naive
            "2024-01-01",
            "2024-01-01T00:00:00\u0000+00:00",
            "",
            1700000000,
            True,
            *common,
        ]
    if kind is uuid.UUID:
        return [
            "not-a-uuid",
            "00000000-0000-0000-0000-00000000000",
            "\u0000",
            "00000000-0000-4000-8000-00000000000\ud800",
            "",
            123,
            2**128,
            True,
            *common,
        ]
    if kind is bool:
        return [1, 0, "true", "false", "", *common]
    raise AssertionError(f"no bad values for sort value type {kind!r}")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_of(sort: str, value: Any, tiebreak: Any) -> str:
    return _b64(json.dumps({"s": sort, "k": [value, tiebreak]}).encode())


def raw_cursor(sort: str, value: str, tiebreak: str) -> str:
    """A cursor whose key holds the raw JSON tokens given (e.g. ``Infinity``)."""
    return _b64(f'{{"s":{json.dumps(sort)},"k":[{value},{tiebreak}]}}'.encode())


def tampered(route: ListRoute, sort: str) -> Iterator[tuple[str, str]]:
    """(description, cursor) for every bad value in each slot of the key of ``sort``."""
    field, tb = _field(route, sort), route.sorting.tiebreak
    good, good_tb = GOOD[field.value_type], GOOD[tb.value_type]
    for bad in bad_values(field):
        yield f"value={bad!r:.60}", cursor_of(sort, bad, good_tb)
    for bad in bad_values(tb):
        yield f"tiebreak={bad!r:.60}", cursor_of(sort, good, bad)
        if field.nullable:
            yield f"null value, tiebreak={bad!r:.60}", cursor_of(sort, None, bad)
    if not field.nullable:
        yield "null value of a non-null sort", cursor_of(sort, None, good_tb)
    yield "null tiebreak", cursor_of(sort, good, None)
    for token in RAW_TOKENS:
        yield f"value={token}", raw_cursor(sort, token, json.dumps(good_tb))
        yield f"tiebreak={token}", raw_cursor(sort, json.dumps(good), token)
    yield "truncated", cursor_of(sort, good, good_tb)[:-3]
    yield (
        "key of three",
        _b64(json.dumps({"s": sort, "k": [good, good_tb, good_tb]}).encode()),
    )
    yield "key as an object", _b64(json.dumps({"s": sort, "k": {"a": good, "b": 1}}).encode())
    yield "key as text", _b64(json.dumps({"s": sort, "k": "ab"}).encode())
    yield "deeply nested", _b64(b"[" * 700)
    yield "not UTF-8", _b64(b'{"s":"' + sort.encode() + b'","k":["\xff\xfe",1]}')


# --- data: at least one row in every list, so each statement meets a real row --------------


@pytest.fixture
def lists(api: Api, session: Session) -> dict[str, str]:
    """The concrete path of each route, with a row or two behind it."""
    create_tag(api, "Organic")
    partner = create_partner(api, customer_stage="lead", credit_limit="1000.00", tags=["Organic"])
    create_partner(api, name="Zulu Foods", customer_stage="active")
    create_order(api, partner["number"], delivery_date="2024-05-01")
    session.add(SyncRun(company_id=api.tenant.company.id, trigger="api", runner="test:1"))
    webhook = Webhook(
        company_id=api.tenant.company.id,
        id=uuid.uuid4(),
        url="https://hooks.example.com/x",
        event_types="[]",
        enabled=True,
        secret="sealed",  # never read by the lists
        position=0,
        failure_streak=0,
    )
    session.add(webhook)
    session.flush()
    return {
        route.path: route.path.replace("{number}", str(partner["number"])).replace(
            "{webhook_id}", str(webhook.id)
        )
        for route in ROUTES
    }


# --- the matrix -----------------------------------------------------------------------------

CASES = [
    pytest.param(route, name, id=f"{route.path}:{name}")
    for route in ROUTES
    for name in (route.sorting.fields if route.takes_sort else [route.sorting.default])
]


@pytest.mark.parametrize(("route", "name"), CASES)
def test_tampered_cursor_is_invalid_cursor(
    api: Api, lists: dict[str, str], route: ListRoute, name: str
) -> None:
    path = lists[route.path]
    name = name.removeprefix("-")
    sorts = [s for s in _sorts(route) if s.removeprefix("-") == name]
    assert sorts
    failures: list[str] = []
    checked = 0
    for sort in sorts:
        params: dict[str, Any] = {"limit": 1}
        if route.takes_sort:
            params["sort"] = sort
        # A well-formed cursor of this sort works: so a 422 below is the bad value's doing.
        control = api.get(
            path, params={**params, "cursor": cursor_of(sort, *_good_key(route, sort))}
        )
        assert control.status_code == 200, (sort, control.text)
        for what, cursor in tampered(route, sort):
            assert len(cursor) <= MAX_CURSOR, (what, len(cursor))
            r = api.get(path, params={**params, "cursor": cursor})
            checked += 1
            if r.status_code != 422 or r.json().get("code") != "invalid_cursor":
                failures.append(f"sort={sort} {what}: {r.status_code} {r.text[:200]}")
                continue
            body = assert_problem(r, 422, "invalid_cursor")
            assert_loc(body, "query", "cursor")
    assert not failures, f"{len(failures)} of {checked} tampered cursors:\n" + "\n".join(failures)


def _good_key(route: ListRoute, sort: str) -> tuple[Any, Any]:
    return GOOD[_field(route, sort).value_type], GOOD[route.sorting.tiebreak.value_type]


# --- the route table stays complete ---------------------------------------------------------


def test_every_cursor_route_is_covered(app: Any) -> None:
    schema = app.openapi()
    with_cursor = {}
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            if "cursor" in names and path not in OWN_CURSORS:
                assert method == "get", (method, path)
                with_cursor[path] = "sort" in names
    assert with_cursor == {r.path: r.takes_sort for r in ROUTES}


def test_sort_values_in_the_matrix_are_the_contract_sort_values(app: Any) -> None:
    schema = app.openapi()
    components = schema["components"]["schemas"]
    for route in ROUTES:
        if not route.takes_sort:
            continue
        (param,) = [
            p for p in schema["paths"][route.path]["get"]["parameters"] if p["name"] == "sort"
        ]
        refs = [s["$ref"] for s in param["schema"].get("anyOf", []) if "$ref" in s]
        assert len(refs) == 1, param
        enum = components[refs[0].rsplit("/", 1)[1]]["enum"]
        assert sorted(enum) == sorted(sort_values(route.sorting)), route.path


# --- handed-out cursors still work everywhere -----------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=[r.path for r in ROUTES])
def test_handed_out_cursors_walk_every_sort(
    api: Api, lists: dict[str, str], route: ListRoute
) -> None:
    path = lists[route.path]
    for sort in _sorts(route):
        params = {"sort": sort} if route.takes_sort else {}
        everything = ok(api.get(path, params={**params, "limit": 500}))["items"]
        assert walk(api, path, limit=1, **params) == everything, sort


def test_overview_csv_takes_no_cursor(api: Api, lists: dict[str, str]) -> None:
    """The CSV export streams every row: a cursor, tampered or not, is no parameter of it
    (an unknown query parameter is 422, never silently ignored)."""
    r = api.get("/api/v1/crm/overview.csv", params={"cursor": raw_cursor("number", "1e400", "NaN")})
    body = assert_problem(r, 422, "unknown_query_parameter")
    assert body["errors"][0]["loc"] == ["query", "cursor"]
