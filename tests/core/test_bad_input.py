"""Bad input: every case answers a 4xx problem+json naming the field, and stores nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Api, assert_problem
from tests.helpers import (
    COMPANY,
    PARTNERS,
    TAGS,
    TOKENS,
    USERS,
    assert_loc,
    create_partner,
    create_tag,
    get_partner,
    partner_count,
)

VALID = {"name": "Nordic Deli A/S", "country": "DK"}


@pytest.fixture
def existing(api: Api) -> dict[str, Any]:
    """One partner, so 'nothing stored' and 'nothing changed' can both be checked."""
    create_tag(api, "Organic")
    return create_partner(
        api, name="Existing", tags=["Organic"], locations=[{"name": "HQ", "country": "DK"}]
    )


def _assert_nothing_stored(api: Api, existing: dict[str, Any]) -> None:
    assert partner_count(api) == 1
    assert get_partner(api, existing["number"]) == existing


# (extra fields merged into a valid body, loc of the field that must be named)
BAD_FIELDS: list[tuple[str, dict[str, Any], tuple[Any, ...]]] = [
    # unknown fields
    ("unknown_field", {"nickname": "Deli"}, ("body", "nickname")),
    (
        "unknown_location_field",
        {"locations": [{"country": "DK", "floor": 3}]},
        ("body", "locations", 0, "floor"),
    ),
    ("owner_written_as_name", {"owner": "Admin"}, ("body", "owner")),
    # read-only fields
    ("read_only_debtor_balance", {"debtor_balance": "1.00"}, ("body", "debtor_balance")),
    ("read_only_uninvoiced_total", {"uninvoiced_total": "1.00"}, ("body", "uninvoiced_total")),
    (
        "read_only_credit_limit_exceeded",
        {"credit_limit_exceeded": False},
        ("body", "credit_limit_exceeded"),
    ),
    (
        "read_only_latest_sales_delivery_date",
        {"latest_sales_delivery_date": "2024-01-01"},
        ("body", "latest_sales_delivery_date"),
    ),
    (
        "read_only_debtor_balance_synced_at",
        {"debtor_balance_synced_at": "2024-01-01T00:00:00Z"},
        ("body", "debtor_balance_synced_at"),
    ),
    ("read_only_number", {"number": 1}, ("body", "number")),
    (
        "read_only_location_id",
        {"locations": [{"country": "DK", "id": "x"}]},
        ("body", "locations", 0, "id"),
    ),
    # wrong types
    ("name_number", {"name": 123}, ("body", "name")),
    ("name_list", {"name": ["Deli"]}, ("body", "name")),
    ("name_object", {"name": {"da": "Deli"}}, ("body", "name")),
    ("country_number", {"country": 45}, ("body", "country")),
    ("vat_id_number", {"vat_id": 12345678}, ("body", "vat_id")),
    ("phone_bool", {"phone": True}, ("body", "phone")),
    ("tags_string", {"tags": "Organic"}, ("body", "tags")),
    ("tags_numbers", {"tags": [1]}, ("body", "tags", 0)),
    ("tags_null_item", {"tags": [None]}, ("body", "tags", 0)),
    ("locations_object", {"locations": {"country": "DK"}}, ("body", "locations")),
    ("locations_strings", {"locations": ["DK"]}, ("body", "locations", 0)),
    (
        "location_without_country",
        {"locations": [{"name": "HQ"}]},
        ("body", "locations", 0, "country"),
    ),
    (
        "location_is_primary_string",
        {"locations": [{"country": "DK", "is_primary": "maybe"}]},
        ("body", "locations", 0, "is_primary"),
    ),
    ("credit_limit_bool", {"credit_limit": True}, ("body", "credit_limit")),
    ("credit_limit_object", {"credit_limit": {"amount": 1}}, ("body", "credit_limit")),
    ("credit_limit_word", {"credit_limit": "lots"}, ("body", "credit_limit")),
    ("owner_id_not_uuid", {"owner_id": "not-a-uuid"}, ("body", "owner_id")),
    ("owner_id_number", {"owner_id": 5}, ("body", "owner_id")),
    ("customer_stage_unknown", {"customer_stage": "customer"}, ("body", "customer_stage")),
    ("customer_stage_wrong_case", {"customer_stage": "Active"}, ("body", "customer_stage")),
    ("customer_stage_number", {"customer_stage": 1}, ("body", "customer_stage")),
    ("email_invalid", {"email": "not-an-email"}, ("body", "email")),
    ("website_invalid", {"website": "not a url"}, ("body", "website")),
    ("website_javascript", {"website": "javascript:alert(1)"}, ("body", "website")),
    # missing or empty required fields
    ("name_missing", {"name": None}, ("body", "name")),
    ("name_empty", {"name": ""}, ("body", "name")),
    ("name_blank", {"name": "   "}, ("body", "name")),
    ("country_missing", {"country": None}, ("body", "country")),
    # over-long strings
    ("name_201_chars", {"name": "x" * 201}, ("body", "name")),
    ("vat_id_51_chars", {"vat_id": "x" * 51}, ("body", "vat_id")),
    ("phone_51_chars", {"phone": "1" * 51}, ("body", "phone")),
    (
        "email_too_long",
        {"email": "a" * 64 + "@" + ("b" * 60 + ".") * 4 + "example"},
        ("body", "email"),
    ),
    ("accounting_ref_51_chars", {"accounting_ref": "1" * 51}, ("body", "accounting_ref")),
    ("accounting_ref_empty", {"accounting_ref": ""}, ("body", "accounting_ref")),
    (
        "location_city_101_chars",
        {"locations": [{"country": "DK", "city": "x" * 101}]},
        ("body", "locations", 0, "city"),
    ),
    (
        "location_address_501_chars",
        {"locations": [{"country": "DK", "address": "x" * 501}]},
        ("body", "locations", 0, "address"),
    ),
    (
        "location_postal_code_21_chars",
        {"locations": [{"country": "DK", "postal_code": "1" * 21}]},
        ("body", "locations", 0, "postal_code"),
    ),
    ("too_many_tags", {"tags": [f"t{i}" for i in range(51)]}, ("body", "tags")),
    ("too_many_locations", {"locations": [{"country": "DK"}] * 51}, ("body", "locations")),
    # countries and currencies
    ("country_XX", {"country": "XX"}, ("body", "country")),
    ("country_lowercase", {"country": "dk"}, ("body", "country")),
    ("country_alpha3", {"country": "DNK"}, ("body", "country")),
    ("country_empty", {"country": ""}, ("body", "country")),
    (
        "location_country_XX",
        {"locations": [{"country": "XX"}]},
        ("body", "locations", 0, "country"),
    ),
    ("currency_ABC", {"currency": "ABC"}, ("body", "currency")),
    ("currency_lowercase", {"currency": "dkk"}, ("body", "currency")),
    ("currency_too_long", {"currency": "EURO"}, ("body", "currency")),
    ("currency_number", {"currency": 208}, ("body", "currency")),
    # money
    ("credit_limit_3_decimals_string", {"credit_limit": "1.234"}, ("body", "credit_limit")),
    ("credit_limit_3_decimals_number", {"credit_limit": 1.234}, ("body", "credit_limit")),
    ("credit_limit_negative_string", {"credit_limit": "-1.00"}, ("body", "credit_limit")),
    ("credit_limit_negative_number", {"credit_limit": -1}, ("body", "credit_limit")),
    ("credit_limit_negative_cent", {"credit_limit": -0.01}, ("body", "credit_limit")),
    ("credit_limit_exponent", {"credit_limit": "1e3"}, ("body", "credit_limit")),
    ("credit_limit_nan", {"credit_limit": "NaN"}, ("body", "credit_limit")),
    ("credit_limit_infinity", {"credit_limit": "Infinity"}, ("body", "credit_limit")),
    (
        "credit_limit_too_large_string",
        {"credit_limit": "100000000000000.00"},
        ("body", "credit_limit"),
    ),
    ("credit_limit_too_large_number", {"credit_limit": 1e20}, ("body", "credit_limit")),
    ("credit_limit_comma", {"credit_limit": "1,50"}, ("body", "credit_limit")),
    # NUL bytes
    ("nul_in_name", {"name": "Nordic\x00Deli"}, ("body", "name")),
    ("nul_in_vat_id", {"vat_id": "DK\x001"}, ("body", "vat_id")),
    ("nul_in_accounting_ref", {"accounting_ref": "\x00"}, ("body", "accounting_ref")),
    (
        "nul_in_location_city",
        {"locations": [{"country": "DK", "city": "Aar\x00hus"}]},
        ("body", "locations", 0, "city"),
    ),
    ("nul_in_tag", {"tags": ["Organic\x00"]}, ("body", "tags", 0)),
]


@pytest.mark.parametrize(
    ("extra", "loc"), [(e, loc) for _, e, loc in BAD_FIELDS], ids=[i for i, _, _ in BAD_FIELDS]
)
def test_bad_field_on_create_is_422_and_stores_nothing(
    api: Api, existing: dict[str, Any], extra: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    body = {**VALID, **extra}
    body = {k: v for k, v in body.items() if v is not None or k not in ("name", "country")}
    body = assert_problem(api.post(PARTNERS, json=body), 422)
    assert_loc(body, *loc)
    _assert_nothing_stored(api, existing)


PATCH_BAD_FIELDS = [
    (i, e, loc) for i, e, loc in BAD_FIELDS if i not in ("name_missing", "country_missing")
]


@pytest.mark.parametrize(
    ("extra", "loc"),
    [(e, loc) for _, e, loc in PATCH_BAD_FIELDS],
    ids=[i for i, _, _ in PATCH_BAD_FIELDS],
)
def test_bad_field_on_patch_is_422_and_changes_nothing(
    api: Api, existing: dict[str, Any], extra: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    r = api.patch(f"{PARTNERS}/{existing['number']}", json={"name": "Changed", **extra})
    body = assert_problem(r, 422)
    assert_loc(body, *loc)
    _assert_nothing_stored(api, existing)


def test_several_bad_fields_are_all_named(api: Api, existing: dict[str, Any]) -> None:
    r = api.post(PARTNERS, json={"name": "", "country": "XX", "currency": "ABC", "x": 1})
    body = assert_problem(r, 422)
    for field in ("name", "country", "currency", "x"):
        assert_loc(body, "body", field)
    _assert_nothing_stored(api, existing)


def test_problem_errors_carry_loc_message_and_code(api: Api) -> None:
    body = assert_problem(api.post(PARTNERS, json={"name": "x" * 201, "country": "DK"}), 422)
    assert body["errors"], body
    for error in body["errors"]:
        assert isinstance(error["loc"], list)
        assert isinstance(error["message"], str)
        assert error["message"]
        assert isinstance(error["code"], str)
        assert error["code"]


def test_name_of_200_characters_is_accepted(api: Api) -> None:
    assert create_partner(api, name="x" * 200)["name"] == "x" * 200


@pytest.mark.parametrize(
    ("amount", "shown"),
    [("1.23", "1.23"), (1.23, "1.23"), ("1.2", "1.20"), (0, "0.00")],
)
def test_money_with_at_most_two_decimals_is_accepted(api: Api, amount: object, shown: str) -> None:
    p = create_partner(api, credit_limit=amount)
    assert p["credit_limit"] == shown
    assert get_partner(api, p["number"])["credit_limit"] == shown


def test_largest_credit_limit_round_trips_exactly(api: Api) -> None:
    p = create_partner(api, credit_limit="99999999999999.99")
    assert get_partner(api, p["number"])["credit_limit"] == "99999999999999.99"


def test_money_number_with_float_noise_is_read_as_cents(api: Api) -> None:
    # 0.1 + 0.2 arrives as 0.30000000000000004: two decimals are meant.
    assert create_partner(api, credit_limit=0.1 + 0.2)["credit_limit"] == "0.30"


def test_lone_surrogate_in_name_is_422(api: Api, existing: dict[str, Any]) -> None:
    raw = b'{"name": "Bad \\ud800 text", "country": "DK"}'
    r = api.post(PARTNERS, content=raw, headers={"Content-Type": "application/json"})
    body = assert_problem(r, 422)
    assert_loc(body, "body", "name")
    _assert_nothing_stored(api, existing)


OTHER_BODIES: list[tuple[str, str, dict[str, Any], tuple[Any, ...]]] = [
    ("POST", USERS, {"name": "Nul\x00User", "email": "nul@acme.example"}, ("body", "name")),
    ("POST", USERS, {"name": "x" * 201, "email": "long@acme.example"}, ("body", "name")),
    ("POST", USERS, {"name": "U", "email": "u@acme.example", "admin": True}, ("body", "admin")),
    ("POST", TAGS, {"name": "Tag\x00"}, ("body", "name")),
    ("POST", TOKENS, {"name": "t\x00", "scope": "read"}, ("body", "name")),
    ("POST", TOKENS, {"name": "t", "scope": "read", "secret": "mine"}, ("body", "secret")),
    ("POST", TOKENS, {"name": "t" * 101, "scope": "read"}, ("body", "name")),
    ("PATCH", COMPANY, {"name": "Acme\x00"}, ("body", "name")),
    ("PATCH", COMPANY, {"name": "Acme", "vat": "x"}, ("body", "vat")),
]


@pytest.mark.parametrize(
    ("method", "path", "payload", "loc"),
    OTHER_BODIES,
    ids=[f"{m} {p} {'.'.join(map(str, loc))}" for m, p, _, loc in OTHER_BODIES],
)
def test_bad_field_in_other_bodies_is_422_and_stores_nothing(
    api: Api, method: str, path: str, payload: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    lists = (USERS, TAGS, TOKENS)
    before = {p: api.get(p, params={"limit": 500}).json()["items"] for p in lists}
    company = api.get(COMPANY).json()
    body = assert_problem(api.request(method, path, json=payload), 422)
    assert_loc(body, *loc)
    assert {p: api.get(p, params={"limit": 500}).json()["items"] for p in lists} == before
    assert api.get(COMPANY).json() == company


# --- query parameters ---------------------------------------------------------------------


def test_nul_byte_in_q_is_422(api: Api, existing: dict[str, Any]) -> None:
    body = assert_problem(api.get(PARTNERS, params={"q": "Exi\x00sting"}), 422)
    assert_loc(body, "query", "q")


def test_percent_encoded_nul_in_q_is_422(api: Api, existing: dict[str, Any]) -> None:
    body = assert_problem(api.get(f"{PARTNERS}?q=a%00b"), 422)
    assert_loc(body, "query", "q")


def test_q_longer_than_200_characters_is_422(api: Api) -> None:
    body = assert_problem(api.get(PARTNERS, params={"q": "x" * 201}), 422)
    assert_loc(body, "query", "q")


def test_nul_byte_in_tag_filter_is_422(api: Api) -> None:
    body = assert_problem(api.get(PARTNERS, params={"tag": "Org\x00anic"}), 422)
    assert_loc(body, "query", "tag")


def test_nul_byte_in_cursor_is_422(api: Api) -> None:
    body = assert_problem(api.get(PARTNERS, params={"cursor": "abc\x00def"}), 422)
    assert_loc(body, "query", "cursor")


def test_invalid_utf8_in_q_is_no_server_error_and_matches_nothing(
    api: Api, existing: dict[str, Any]
) -> None:
    r = api.get(f"{PARTNERS}?q=%ff%fe")
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        assert r.json()["items"] == []
    else:
        assert r.headers["content-type"].startswith("application/problem+json")


# --- malformed bodies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b'{"name": "Deli", "country": "DK"', b"{name: 'Deli'}", b"not json at all", b'{"a":1}}'],
)
def test_malformed_json_is_422_and_stores_nothing(
    api: Api, existing: dict[str, Any], raw: bytes
) -> None:
    r = api.post(PARTNERS, content=raw, headers={"Content-Type": "application/json"})
    body = assert_problem(r, 422)
    assert_loc(body, "body")
    _assert_nothing_stored(api, existing)


def test_malformed_json_on_patch_is_422_and_changes_nothing(
    api: Api, existing: dict[str, Any]
) -> None:
    r = api.patch(
        f"{PARTNERS}/{existing['number']}",
        content=b'{"name": ',
        headers={"Content-Type": "application/json"},
    )
    body = assert_problem(r, 422)
    assert_loc(body, "body")
    _assert_nothing_stored(api, existing)


@pytest.mark.parametrize("payload", [[], [VALID], "Deli", 42, None, True])
def test_json_that_is_not_an_object_is_422(
    api: Api, existing: dict[str, Any], payload: object
) -> None:
    r = api.post(
        PARTNERS, content=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    body = assert_problem(r, 422)
    assert_loc(body, "body")
    _assert_nothing_stored(api, existing)


def test_json_array_on_patch_is_422(api: Api, existing: dict[str, Any]) -> None:
    r = api.patch(f"{PARTNERS}/{existing['number']}", json=[{"name": "Changed"}])
    body = assert_problem(r, 422)
    assert_loc(body, "body")
    _assert_nothing_stored(api, existing)


def test_empty_body_is_422(api: Api, existing: dict[str, Any]) -> None:
    r = api.post(PARTNERS, content=b"", headers={"Content-Type": "application/json"})
    body = assert_problem(r, 422)
    assert_loc(body, "body")
    _assert_nothing_stored(api, existing)


def test_non_json_content_type_is_4xx(api: Api, existing: dict[str, Any]) -> None:
    r = api.post(
        PARTNERS,
        content=b"name=Deli&country=DK",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code in (415, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    _assert_nothing_stored(api, existing)


def _big_body(size: int) -> bytes:
    return json.dumps({"name": "Deli", "country": "DK", "vat_id": "x" * size}).encode()


def test_body_of_several_megabytes_is_413(api: Api, existing: dict[str, Any]) -> None:
    r = api.post(
        PARTNERS, content=_big_body(5_000_000), headers={"Content-Type": "application/json"}
    )
    assert_problem(r, 413, "payload_too_large")
    _assert_nothing_stored(api, existing)


def test_body_of_several_megabytes_on_patch_is_413(api: Api, existing: dict[str, Any]) -> None:
    r = api.patch(
        f"{PARTNERS}/{existing['number']}",
        content=_big_body(3_000_000),
        headers={"Content-Type": "application/json"},
    )
    assert_problem(r, 413, "payload_too_large")
    _assert_nothing_stored(api, existing)


def test_streamed_body_of_several_megabytes_without_length_is_413(
    api: Api, existing: dict[str, Any]
) -> None:
    data = _big_body(3_000_000)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]

    r = api.post(PARTNERS, content=chunks(), headers={"Content-Type": "application/json"})
    assert_problem(r, 413, "payload_too_large")
    _assert_nothing_stored(api, existing)


def test_big_tag_body_is_413(api: Api) -> None:
    r = api.post(
        TAGS,
        content=json.dumps({"name": "x" * 3_000_000}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert_problem(r, 413, "payload_too_large")


# --- path numbers -------------------------------------------------------------------------

BAD_NUMBERS = ["0", "-1", str(2**40), str(2**31), "abc", "1.5", "1e3", "%20"]


@pytest.mark.parametrize("number", BAD_NUMBERS)
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_bad_partner_number_in_path_is_422(
    api: Api, existing: dict[str, Any], method: str, number: str
) -> None:
    kwargs: dict[str, Any] = {"json": {"name": "Changed"}} if method == "PATCH" else {}
    r = api.request(method, f"{PARTNERS}/{number}", **kwargs)
    body = assert_problem(r, 422)
    assert_loc(body, "path", "number")
    _assert_nothing_stored(api, existing)


@pytest.mark.parametrize("number", BAD_NUMBERS)
def test_bad_partner_number_in_stage_history_path_is_422(api: Api, number: str) -> None:
    body = assert_problem(api.get(f"{PARTNERS}/{number}/stage-history"), 422)
    assert_loc(body, "path", "number")


def test_largest_partner_number_in_path_is_404(api: Api) -> None:
    assert_problem(api.get(f"{PARTNERS}/{2**31 - 1}"), 404)


def test_nul_in_tag_path_is_4xx(api: Api) -> None:
    create_tag(api, "ab")
    r = api.get(f"{TAGS}/a%00b")
    assert r.status_code in (404, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert api.delete(f"{TAGS}/a%00b").status_code in (404, 422)
    assert api.get(f"{TAGS}/ab").status_code == 200


def test_tag_path_longer_than_50_is_4xx(api: Api) -> None:
    r = api.get(f"{TAGS}/{'x' * 51}")
    assert r.status_code in (404, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
