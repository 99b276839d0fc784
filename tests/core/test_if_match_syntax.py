"""A malformed ``If-Match`` is a client error naming the header (400 ``invalid_if_match``), never
a 412 "changed since you read it". Well-formed (RFC 9110): ``*``, or a comma-separated list of
entity tags, ``"..."`` or weak ``W/"..."``, with optional whitespace and empty elements. The
contract states the same grammar and declares the 400 on every operation taking the header."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from app.core.errors import BadRequest, PreconditionFailed
from app.core.etags import IF_MATCH_PATTERN, check_if_match
from tests.conftest import Api, assert_problem
from tests.helpers import COMPANY, PARTNERS, create_partner

MALFORMED = [
    "",
    " ",
    "abc",
    "3",
    '"3',
    '3"',
    '"3""4"',
    '"3" "4"',
    '*, "3"',
    "**",
    'W/ "3"',
    'w/"3"',
    "'3'",
    '"a"b',
    ",",
    '"\x7f"',
]
CURRENT = '"7"'
WELL_FORMED_MATCHING = ["*", " * ", CURRENT, f'"1", {CURRENT}', f", {CURRENT} ,", f'"1",,{CURRENT}']
WELL_FORMED_NOT_MATCHING = ['"1"', f"W/{CURRENT}", '""', '"1", W/"2"', '"a,b"', '"\xe9"']


@pytest.mark.parametrize("value", MALFORMED)
def test_check_if_match_refuses_malformed_values_with_400(value: str) -> None:
    with pytest.raises(BadRequest) as caught:
        check_if_match(value, CURRENT)
    error = caught.value
    assert (error.status, error.code) == (400, "invalid_if_match")
    assert [list(e.loc) for e in error.errors] == [["header", "If-Match"]]


@pytest.mark.parametrize("value", WELL_FORMED_MATCHING)
def test_well_formed_matching_values_pass(value: str) -> None:
    check_if_match(value, CURRENT)


@pytest.mark.parametrize("value", WELL_FORMED_NOT_MATCHING)
def test_well_formed_other_values_are_412(value: str) -> None:
    with pytest.raises(PreconditionFailed):
        check_if_match(value, CURRENT)


def test_no_header_is_unconditional() -> None:
    check_if_match(None, CURRENT)


@pytest.mark.parametrize(
    ("value", "well_formed"),
    [(v, False) for v in MALFORMED]
    + [(v, True) for v in WELL_FORMED_MATCHING + WELL_FORMED_NOT_MATCHING],
)
def test_the_contract_pattern_is_the_grammar_the_server_applies(
    value: str, well_formed: bool
) -> None:
    assert bool(re.search(IF_MATCH_PATTERN, value)) is well_formed


def test_the_grammar_check_is_fast_on_hostile_input() -> None:
    for hostile in (" ," * 500, '"a",' * 200 + " " * 199 + "x", "," * 999 + "x", '"' + "a" * 999):
        started = time.perf_counter()
        with pytest.raises(BadRequest):
            check_if_match(hostile, CURRENT)
        assert time.perf_counter() - started < 0.05


# --- over HTTP ----------------------------------------------------------------------------------


def _routes(api: Api) -> list[tuple[str, str, dict[str, Any] | None]]:
    partner = create_partner(api)
    order = {
        "partner_number": partner["number"],
        "lines": [{"description": "Rye bread", "quantity": "2", "unit_price": "10.00"}],
    }
    r = api.post("/api/v1/sales-orders", json=order)
    assert r.status_code == 201, r.text
    view = api.post("/api/v1/crm/views", json={"name": "Mine"})
    assert view.status_code == 201, view.text
    view_path = f"/api/v1/crm/views/{view.json()['id']}"
    return [
        ("PATCH", f"{PARTNERS}/{partner['number']}", {"name": "Renamed"}),
        ("DELETE", f"{PARTNERS}/{partner['number']}", None),
        ("PATCH", f"/api/v1/sales-orders/{r.json()['number']}", {"reference": "changed"}),
        ("PATCH", COMPANY, {"name": "Renamed ApS"}),
        ("PATCH", view_path, {"name": "Renamed"}),
        ("DELETE", view_path, None),
    ]


@pytest.mark.parametrize("value", ["abc", "", '"unterminated', '*, "1"'])
def test_a_malformed_if_match_is_400_naming_the_header_and_changes_nothing(
    api: Api, value: str
) -> None:
    for method, path, body in _routes(api):
        before = api.get(path)
        r = api.request(method, path, json=body, headers={"If-Match": value})
        problem = assert_problem(r, 400, "invalid_if_match")
        assert problem["errors"] == [
            {
                "loc": ["header", "If-Match"],
                "message": "must be * or a list of quoted entity tags",
                "code": "invalid_if_match",
            }
        ]
        assert "If-Match" in problem["detail"]
        after = api.get(path)
        assert (after.status_code, after.headers.get("etag")) == (
            before.status_code,
            before.headers.get("etag"),
        ), (method, path)


def test_a_well_formed_stale_if_match_is_still_412(api: Api) -> None:
    for method, path, body in _routes(api):
        r = api.request(method, path, json=body, headers={"If-Match": '"0", W/"x"'})
        assert_problem(r, 412, "etag_mismatch")


def test_a_list_naming_the_current_etag_succeeds(api: Api) -> None:
    partner = create_partner(api)
    path = f"{PARTNERS}/{partner['number']}"
    etag = api.get(path).headers["etag"]
    r = api.patch(path, json={"name": "Renamed"}, headers={"If-Match": f' "0" ,, {etag} '})
    assert r.status_code == 200, r.text


def test_the_contract_declares_400_and_the_grammar_where_if_match_is_taken(api: Api) -> None:
    contract = api.client.app.openapi()  # type: ignore[attr-defined]
    taking = []
    for path, item in contract["paths"].items():
        for method, operation in item.items():
            headers = [
                p
                for p in operation.get("parameters", [])
                if p["in"] == "header" and p["name"] == "If-Match"
            ]
            if not headers:
                continue
            taking.append((method, path))
            assert "invalid_if_match" in operation["responses"]["400"]["description"]
            schema = headers[0]["schema"]
            assert (schema["type"], schema["pattern"]) == ("string", IF_MATCH_PATTERN)
            assert "anyOf" not in schema  # a header is absent, never null
    assert sorted(taking) == [
        ("delete", "/api/v1/crm/views/{view_id}"),
        ("delete", "/api/v1/partners/{number}"),
        ("patch", "/api/v1/company"),
        ("patch", "/api/v1/crm/views/{view_id}"),
        ("patch", "/api/v1/partners/{number}"),
        ("patch", "/api/v1/sales-orders/{number}"),
    ]
