"""Strict query strings, by construction: walk the app's route table, so a new route (or a
new parameter of an old one) is covered without anyone remembering. On every API route an
unknown query parameter is 422 ``unknown_query_parameter`` and a single-value one given twice
is 422 ``repeated_query_parameter``, each naming the parameter; list filters still repeat."""

from __future__ import annotations

import re
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from app.core.errors import AppError, problem_response
from app.core.query import (
    MAX_LISTED,
    REPEATED,
    UNKNOWN,
    declared_query_parameters,
    strict_query,
)
from tests.conftest import Api, assert_problem

# Values for repeatable parameters whose items are not an enum.
REPEATABLE_VALUES = {"tag": ["Organic", "Fresh"]}


def _flat(routes: list[Any]) -> list[Any]:
    out = []
    for route in routes:
        included = getattr(route, "original_router", None)  # an included router
        out.extend(_flat(included.routes) if included is not None else [route])
    return out


def _is_list(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "array" or any(_is_list(s) for s in schema.get("anyOf", []))


def _contract_query(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p["schema"] for p in operation.get("parameters", []) if p["in"] == "query"}


def _operations(app: Any) -> list[tuple[str, APIRoute, dict[str, dict[str, Any]]]]:
    """(method, route, its query parameters' schemas in the contract) for every API route."""
    paths = app.openapi()["paths"]
    out = []
    for route in _flat(app.routes):
        if isinstance(route, APIRoute) and route.path_format.startswith("/api/"):
            for method in sorted(route.methods):
                operation = paths[route.path_format][method.lower()]
                out.append((method, route, _contract_query(operation)))
    contract = {(m.upper(), p) for p, item in paths.items() if p.startswith("/api/") for m in item}
    assert {(m, r.path_format) for m, r, _ in out} == contract
    return out


def _path(route: APIRoute) -> str:
    # The check runs before the path parameters are read: any value reaches it.
    return re.sub(r"\{[^}]+\}", "1", route.path_format)


def _request(api: Api, method: str, route: APIRoute, query: list[tuple[str, str]]) -> Any:
    return api.request(method, _path(route), params=query)


def test_the_check_reads_exactly_the_parameters_the_contract_declares(api: Api) -> None:
    for method, route, params in _operations(api.client.app):
        expected = {name: _is_list(schema) for name, schema in params.items()}
        assert declared_query_parameters(route.dependant) == expected, (method, route.path_format)


def test_every_route_rejects_an_unknown_query_parameter(api: Api) -> None:
    for method, route, _ in _operations(api.client.app):
        r = _request(api, method, route, [("serach", "x")])
        body = assert_problem(r, 422, UNKNOWN)
        assert [(e["loc"], e["code"]) for e in body["errors"]] == [
            (["query", "serach"], UNKNOWN)
        ], (method, route.path_format)
        assert "serach" in body["detail"]


def test_every_single_value_query_parameter_given_twice_is_rejected(api: Api) -> None:
    checked = 0
    for method, route, params in _operations(api.client.app):
        for name, schema in params.items():
            if _is_list(schema):
                continue
            r = _request(api, method, route, [(name, "1"), (name, "2")])
            body = assert_problem(r, 422, REPEATED)
            assert [(e["loc"], e["code"]) for e in body["errors"]] == [
                (["query", name], REPEATED)
            ], (method, route.path_format, name)
            checked += 1
    assert checked > 30


def test_every_list_parameter_still_repeats(api: Api) -> None:
    for name in REPEATABLE_VALUES["tag"]:
        assert api.post("/api/v1/tags", json={"name": name}).status_code == 201
    components = api.client.app.openapi()["components"]["schemas"]
    checked = 0
    for method, route, params in _operations(api.client.app):
        for name, schema in params.items():
            if not _is_list(schema):
                continue
            items = next(s for s in [schema, *schema.get("anyOf", [])] if "items" in s)["items"]
            if "$ref" in items:
                items = components[items["$ref"].rsplit("/", 1)[-1]]
            values = items.get("enum", REPEATABLE_VALUES.get(name))
            assert values, f"add sample values for {name}"
            r = _request(api, method, route, [(name, v) for v in values[:2]])
            assert r.status_code == 200, (method, route.path_format, name, r.text)
            checked += 1
    assert checked >= 7  # customer_stage and tag on four routes, status on one


def test_a_misspelt_filter_no_longer_answers_every_partner(api: Api) -> None:
    api.post("/api/v1/partners", json={"name": "Nordic Deli", "country": "DK"})
    r = api.get("/api/v1/partners", params={"serach": "nothing like it"})
    body = assert_problem(r, 422, UNKNOWN)
    assert "q" in body["errors"][0]["message"]  # the names it does take
    assert api.get("/api/v1/partners", params={"q": "nothing like it"}).json()["items"] == []


def test_the_last_value_does_not_win(api: Api) -> None:
    for query in ("limit=5&limit=10", "sort=name&sort=-name", "q=a&q=b"):
        r = api.get(f"/api/v1/partners?{query}")
        name = query.split("=")[0]
        body = assert_problem(r, 422, REPEATED)
        assert body["errors"][0]["loc"] == ["query", name]


def test_every_problem_of_the_query_string_is_named(api: Api) -> None:
    r = api.get("/api/v1/crm/overview?limit=1&serach=x&limit=2&tag=A&tag=B&Limit=3")
    body = assert_problem(r, 422, REPEATED)  # the first one named
    assert [(e["loc"], e["code"]) for e in body["errors"]] == [
        (["query", "limit"], REPEATED),
        (["query", "serach"], UNKNOWN),
        (["query", "Limit"], UNKNOWN),  # names are case-sensitive
    ]
    assert "(and 2 more)" in body["detail"]


def test_a_flood_of_junk_names_is_counted_not_all_listed(api: Api) -> None:
    r = api.get("/api/v1/tags", params=[(f"junk{i}", "") for i in range(100)])
    body = assert_problem(r, 422, UNKNOWN)
    assert len(body["errors"]) == MAX_LISTED
    assert "(and 99 more)" in body["detail"]


def test_a_rejected_query_string_changes_nothing(api: Api) -> None:
    number = api.post("/api/v1/partners", json={"name": "Keep", "country": "DK"}).json()["number"]
    assert_problem(api.delete(f"/api/v1/partners/{number}", params={"force": "1"}), 422, UNKNOWN)
    assert api.get(f"/api/v1/partners/{number}").status_code == 200
    r = api.post("/api/v1/partners?dry_run=true", json={"name": "New", "country": "DK"})
    assert_problem(r, 422, UNKNOWN)
    assert len(api.get("/api/v1/partners").json()["items"]) == 1


def test_the_token_is_checked_first(api: Api) -> None:
    r = api.client.get("/api/v1/partners?serach=x")
    assert_problem(r, 401, "missing_token")


class CountingLimiter:
    in_memory = True  # counted on the event loop, as without Redis

    def __init__(self) -> None:
        self.hits = 0

    def check_auth_failures(self, client: str) -> None:
        pass

    def auth_failed(self, client: str) -> None:
        pass

    def hit(self, *, token: str, company: str) -> None:
        self.hits += 1


def test_the_token_is_checked_once_per_request(api: Api) -> None:
    limiter = CountingLimiter()
    api.client.app.state.rate_limiter = limiter
    assert api.get("/api/v1/crm/overview", params={"tag": ["A", "B"]}).status_code == 200
    assert api.post("/api/v1/tags", json={"name": "Once"}).status_code == 201
    assert limiter.hits == 2  # one rate-limit hit each, though the check needs the token too


def test_operations_outside_the_api_are_not_checked(api: Api) -> None:
    assert api.client.get("/healthz?probe=1").status_code == 200


# --- the mechanism, on its own: nested dependencies, query models, aliases ------------------


class Window(BaseModel):
    since: str | None = None
    kinds: list[str] = Field(default_factory=list)


CALLS: list[str] = []


def _principal() -> str:
    CALLS.append("principal")
    return "someone"


def _page(limit: int = 10, cursor: str | None = None) -> tuple[int, str | None]:
    return limit, cursor


def _listing(
    page: Annotated[tuple[int, str | None], Depends(_page)],
    window: Annotated[Window, Query()],
    sort: Annotated[str | None, Query(alias="order-by")] = None,
) -> dict[str, Any]:
    return {"page": list(page), "window": window.model_dump(), "sort": sort}


def _items(
    who: Annotated[str, Depends(_principal)],
    listing: Annotated[dict[str, Any], Depends(_listing)],
    tags: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    return {**listing, "tags": tags}


@pytest.fixture
def toy() -> TestClient:
    """An app of one route, its query parameters in nested dependencies and a query model."""
    app = FastAPI()
    app.add_exception_handler(AppError, lambda request, exc: problem_response(exc))  # type: ignore[arg-type]
    app.get("/items", dependencies=[strict_query(after=_principal)])(_items)
    CALLS.clear()
    return TestClient(app)


def test_nested_dependencies_query_models_and_aliases_are_read(toy: TestClient) -> None:
    client = toy
    route = next(r for r in client.app.routes if isinstance(r, APIRoute))
    assert declared_query_parameters(route.dependant) == {
        "limit": False,
        "cursor": False,
        "since": False,
        "kinds": True,
        "order-by": False,
        "tags": True,
    }
    r = client.get("/items?limit=2&kinds=a&kinds=b&order-by=x&tags=t&tags=u&since=s")
    assert r.status_code == 200, r.text
    assert r.json()["window"] == {"since": "s", "kinds": ["a", "b"]}
    assert CALLS == ["principal"]  # ``after`` ran once: shared with the route's own use
    for query, code, name in [
        ("sort=x", UNKNOWN, "sort"),  # the alias is the name
        ("since=a&since=b", REPEATED, "since"),
        ("order-by=a&order-by=b", REPEATED, "order-by"),
    ]:
        body = assert_problem(client.get(f"/items?{query}"), 422, code)
        assert body["errors"][0]["loc"] == ["query", name]
