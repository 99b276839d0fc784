"""Partners: create, read, update, delete, numbers, locations, tags, owner, stage history."""

from __future__ import annotations

import pytest

from tests.conftest import Api, assert_problem
from tests.helpers import (
    PARTNERS,
    assert_loc,
    create_partner,
    create_tag,
    create_token,
    create_user,
    get_partner,
    ok,
    partner_count,
    with_token,
)

READ_ONLY_FIELDS = {
    "debtor_balance": "100.00",
    "uninvoiced_total": "0.00",
    "latest_sales_delivery_date": "2024-01-01",
    "credit_limit_exceeded": True,
    "debtor_balance_synced_at": "2024-01-01T00:00:00Z",
}


# --- create -------------------------------------------------------------------------------


def test_create_partner_answers_201_with_location_and_etag(api: Api) -> None:
    r = api.post(PARTNERS, json={"name": "Nordic Deli A/S", "country": "DK"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["location"].endswith(f"/api/v1/partners/{body['number']}")
    assert r.headers.get("etag")
    assert body["name"] == "Nordic Deli A/S"
    assert body["country"] == "DK"
    assert body["id"]
    assert body["created_at"].endswith("Z")
    assert body["updated_at"].endswith("Z")


def test_create_partner_location_header_leads_to_the_created_partner(api: Api) -> None:
    r = api.post(PARTNERS, json={"name": "Fjord Fisk", "country": "NO"})
    assert r.status_code == 201, r.text
    followed = api.get(r.headers["location"])
    assert followed.status_code == 200, followed.text
    assert followed.json() == r.json()


def test_create_partner_etag_matches_the_etag_of_a_later_get(api: Api) -> None:
    r = api.post(PARTNERS, json={"name": "Fjord Fisk", "country": "NO"})
    assert r.status_code == 201, r.text
    got = api.get(f"{PARTNERS}/{r.json()['number']}")
    assert got.headers["etag"] == r.headers["etag"]


def test_create_partner_stores_every_writable_field(api: Api) -> None:
    owner = create_user(api, name="Karen Sales")
    create_tag(api, "Wholesale")
    sent = {
        "name": "Nordic Deli A/S",
        "country": "DK",
        "vat_id": "DK12345678",
        "currency": "EUR",
        "email": "orders@nordicdeli.example",
        "phone": "+45 11 22 33 44",
        "website": "https://nordicdeli.example/",
        "owner_id": owner["id"],
        "tags": ["Wholesale"],
        "customer_stage": "potential",
        "credit_limit": "25000.50",
        "accounting_ref": "10042",
        "locations": [
            {
                "name": "HQ",
                "address": "Gade 1",
                "postal_code": "8000",
                "city": "Aarhus",
                "country": "DK",
                "is_primary": True,
            }
        ],
    }
    created = create_partner(api, **sent)
    body = get_partner(api, created["number"])
    for key in (
        "name",
        "country",
        "vat_id",
        "currency",
        "email",
        "phone",
        "website",
        "tags",
        "customer_stage",
        "credit_limit",
        "accounting_ref",
    ):
        assert body[key] == sent[key], key
    assert body["owner"] == {"id": owner["id"], "name": "Karen Sales"}
    assert len(body["locations"]) == 1
    loc = body["locations"][0]
    assert {
        k: loc[k] for k in ("name", "address", "postal_code", "city", "country", "is_primary")
    } == sent["locations"][0]
    assert loc["id"]


def test_partner_numbers_start_at_1_per_company(api: Api, other_api: Api) -> None:
    assert create_partner(api)["number"] == 1
    assert create_partner(api)["number"] == 2
    assert create_partner(other_api)["number"] == 1


def test_partner_numbers_increase_with_each_create(api: Api) -> None:
    got = [create_partner(api, name=f"Partner {i}")["number"] for i in range(5)]
    assert got == [1, 2, 3, 4, 5]


def test_partner_number_is_never_reused_after_delete(api: Api) -> None:
    create_partner(api)
    second = create_partner(api)
    assert api.delete(f"{PARTNERS}/{second['number']}").status_code == 204
    third = create_partner(api)
    assert third["number"] == 3
    assert api.delete(f"{PARTNERS}/{third['number']}").status_code == 204
    assert api.delete(f"{PARTNERS}/1").status_code == 204
    assert create_partner(api)["number"] == 4


def test_partner_number_cannot_be_set_on_create(api: Api) -> None:
    r = api.post(PARTNERS, json={"name": "X", "country": "DK", "number": 77})
    body = assert_problem(r, 422)
    assert_loc(body, "body", "number")
    assert partner_count(api) == 0
    assert api.get(f"{PARTNERS}/77").status_code == 404


def test_partner_number_cannot_be_changed_by_patch(api: Api) -> None:
    p = create_partner(api)
    r = api.patch(f"{PARTNERS}/{p['number']}", json={"number": 99})
    body = assert_problem(r, 422)
    assert_loc(body, "body", "number")
    assert get_partner(api, p["number"])["number"] == p["number"]
    assert api.get(f"{PARTNERS}/99").status_code == 404


def test_partner_number_cannot_be_changed_even_with_other_fields(api: Api) -> None:
    p = create_partner(api, name="Before")
    r = api.patch(f"{PARTNERS}/{p['number']}", json={"name": "After", "number": 5})
    assert_problem(r, 422)
    assert get_partner(api, p["number"])["name"] == "Before"


# --- get ----------------------------------------------------------------------------------


def test_get_partner_returns_the_partner(api: Api) -> None:
    p = create_partner(api, name="Smørrebrød & Co", country="DK")
    r = api.get(f"{PARTNERS}/{p['number']}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == p


def test_get_unknown_partner_is_404(api: Api) -> None:
    assert_problem(api.get(f"{PARTNERS}/12345"), 404, "partner_not_found")


# --- update -------------------------------------------------------------------------------


def test_patch_changes_only_the_fields_sent(api: Api) -> None:
    p = create_partner(
        api,
        name="Nordic",
        vat_id="DK1",
        email="a@nordic.example",
        phone="111",
        credit_limit="100.00",
        customer_stage="lead",
        accounting_ref="R1",
    )
    r = api.patch(f"{PARTNERS}/{p['number']}", json={"phone": "222"})
    assert r.status_code == 200, r.text
    after = get_partner(api, p["number"])
    assert after["phone"] == "222"
    for key in (
        "name",
        "country",
        "vat_id",
        "email",
        "credit_limit",
        "customer_stage",
        "accounting_ref",
        "currency",
        "tags",
        "locations",
        "owner",
        "created_at",
    ):
        assert after[key] == p[key], key


def test_patch_answers_the_updated_partner_with_etag(api: Api) -> None:
    p = create_partner(api)
    r = api.patch(f"{PARTNERS}/{p['number']}", json={"name": "Renamed"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Renamed"
    assert r.headers.get("etag")
    assert api.get(f"{PARTNERS}/{p['number']}").headers["etag"] == r.headers["etag"]


def test_patch_with_null_clears_an_optional_field(api: Api) -> None:
    p = create_partner(api, vat_id="DK1", email="a@b.example", credit_limit="5.00")
    r = api.patch(
        f"{PARTNERS}/{p['number']}", json={"vat_id": None, "email": None, "credit_limit": None}
    )
    assert r.status_code == 200, r.text
    after = get_partner(api, p["number"])
    assert after["vat_id"] is None
    assert after["email"] is None
    assert after["credit_limit"] is None


@pytest.mark.parametrize("field", ["name", "country", "currency", "tags", "locations"])
def test_patch_null_for_a_required_field_is_422(api: Api, field: str) -> None:
    p = create_partner(api)
    body = assert_problem(api.patch(f"{PARTNERS}/{p['number']}", json={field: None}), 422)
    assert_loc(body, "body", field)
    assert get_partner(api, p["number"]) == p


def test_patch_with_empty_body_changes_nothing(api: Api) -> None:
    p = create_partner(api)
    r = api.patch(f"{PARTNERS}/{p['number']}", json={})
    assert r.status_code == 200, r.text
    assert get_partner(api, p["number"]) == p


def test_patch_updates_updated_at_but_not_created_at(api: Api) -> None:
    p = create_partner(api)
    r = api.patch(f"{PARTNERS}/{p['number']}", json={"name": "New name"})
    assert r.status_code == 200
    after = r.json()
    assert after["created_at"] == p["created_at"]
    assert after["updated_at"] > p["updated_at"]


def test_patch_tags_replaces_the_whole_list(api: Api) -> None:
    for name in ("Organic", "Export", "Wholesale"):
        create_tag(api, name)
    p = create_partner(api, tags=["Organic", "Export"])
    r = api.patch(f"{PARTNERS}/{p['number']}", json={"tags": ["Wholesale"]})
    assert r.status_code == 200, r.text
    assert get_partner(api, p["number"])["tags"] == ["Wholesale"]


def test_patch_tags_with_empty_list_removes_every_tag(api: Api) -> None:
    create_tag(api, "Organic")
    p = create_partner(api, tags=["Organic"])
    assert api.patch(f"{PARTNERS}/{p['number']}", json={"tags": []}).status_code == 200
    assert get_partner(api, p["number"])["tags"] == []


def test_patch_without_tags_keeps_the_tags(api: Api) -> None:
    create_tag(api, "Organic")
    p = create_partner(api, tags=["Organic"])
    assert api.patch(f"{PARTNERS}/{p['number']}", json={"name": "Other"}).status_code == 200
    assert get_partner(api, p["number"])["tags"] == ["Organic"]


def test_patch_locations_replaces_the_whole_list(api: Api) -> None:
    p = create_partner(
        api,
        locations=[
            {"name": "A", "country": "DK"},
            {"name": "B", "country": "SE"},
            {"name": "C", "country": "NO"},
        ],
    )
    r = api.patch(f"{PARTNERS}/{p['number']}", json={"locations": [{"name": "D", "country": "DE"}]})
    assert r.status_code == 200, r.text
    locations = get_partner(api, p["number"])["locations"]
    assert [(loc["name"], loc["country"], loc["is_primary"]) for loc in locations] == [
        ("D", "DE", True)
    ]


def test_patch_locations_with_empty_list_removes_every_location(api: Api) -> None:
    p = create_partner(api, locations=[{"name": "A", "country": "DK"}])
    assert api.patch(f"{PARTNERS}/{p['number']}", json={"locations": []}).status_code == 200
    assert get_partner(api, p["number"])["locations"] == []


def test_patch_without_locations_keeps_the_locations(api: Api) -> None:
    p = create_partner(api, locations=[{"name": "A", "country": "DK"}])
    assert api.patch(f"{PARTNERS}/{p['number']}", json={"phone": "1"}).status_code == 200
    assert get_partner(api, p["number"])["locations"] == p["locations"]


def test_patch_unknown_partner_is_404(api: Api) -> None:
    assert_problem(api.patch(f"{PARTNERS}/404", json={"name": "x"}), 404, "partner_not_found")


# --- currency -----------------------------------------------------------------------------


def test_currency_defaults_to_company_base_currency(api: Api) -> None:
    assert create_partner(api)["currency"] == "DKK"


def test_currency_can_be_set_explicitly(api: Api) -> None:
    p = create_partner(api, currency="EUR")
    assert get_partner(api, p["number"])["currency"] == "EUR"


def test_currency_can_be_changed_by_patch(api: Api) -> None:
    p = create_partner(api)
    assert api.patch(f"{PARTNERS}/{p['number']}", json={"currency": "SEK"}).status_code == 200
    assert get_partner(api, p["number"])["currency"] == "SEK"


# --- locations ----------------------------------------------------------------------------


def test_first_location_becomes_primary_when_none_is_marked(api: Api) -> None:
    p = create_partner(
        api, locations=[{"name": "A", "country": "DK"}, {"name": "B", "country": "SE"}]
    )
    assert [(loc["name"], loc["is_primary"]) for loc in p["locations"]] == [
        ("A", True),
        ("B", False),
    ]


def test_marked_location_is_the_only_primary(api: Api) -> None:
    p = create_partner(
        api,
        locations=[
            {"name": "A", "country": "DK"},
            {"name": "B", "country": "SE", "is_primary": True},
            {"name": "C", "country": "NO"},
        ],
    )
    assert [(loc["name"], loc["is_primary"]) for loc in p["locations"]] == [
        ("A", False),
        ("B", True),
        ("C", False),
    ]


def test_locations_keep_the_order_sent(api: Api) -> None:
    names = ["Z", "A", "M", "B"]
    p = create_partner(api, locations=[{"name": n, "country": "DK"} for n in names])
    assert [loc["name"] for loc in get_partner(api, p["number"])["locations"]] == names


def test_partner_without_locations_has_empty_list(api: Api) -> None:
    assert create_partner(api)["locations"] == []


def test_two_primary_locations_on_create_is_422_and_stores_nothing(api: Api) -> None:
    r = api.post(
        PARTNERS,
        json={
            "name": "Two HQs",
            "country": "DK",
            "locations": [
                {"name": "A", "country": "DK", "is_primary": True},
                {"name": "B", "country": "SE", "is_primary": True},
            ],
        },
    )
    body = assert_problem(r, 422, "several_primary_locations")
    assert_loc(body, "body", "locations")
    assert partner_count(api) == 0


def test_two_primary_locations_on_patch_is_422_and_changes_nothing(api: Api) -> None:
    p = create_partner(api, locations=[{"name": "A", "country": "DK"}])
    r = api.patch(
        f"{PARTNERS}/{p['number']}",
        json={
            "name": "Changed",
            "locations": [
                {"name": "X", "country": "DK", "is_primary": True},
                {"name": "Y", "country": "SE", "is_primary": True},
            ],
        },
    )
    assert_problem(r, 422, "several_primary_locations")
    assert get_partner(api, p["number"]) == p


# --- tags ---------------------------------------------------------------------------------


def test_tags_are_attached_by_name_any_case(api: Api) -> None:
    create_tag(api, "Organic")
    create_tag(api, "Export")
    p = create_partner(api, tags=["oRGANIC", "EXPORT"])
    assert sorted(get_partner(api, p["number"])["tags"]) == ["Export", "Organic"]


def test_unknown_tag_is_422_naming_its_index(api: Api) -> None:
    create_tag(api, "Organic")
    r = api.post(PARTNERS, json={"name": "X", "country": "DK", "tags": ["Organic", "NoSuchTag"]})
    body = assert_problem(r, 422, "unknown_tag")
    assert ["body", "tags", 1] in [e["loc"] for e in body["errors"]]
    assert ["body", "tags", 0] not in [e["loc"] for e in body["errors"]]
    assert partner_count(api) == 0


def test_unknown_tag_on_patch_is_422_and_keeps_the_tags(api: Api) -> None:
    create_tag(api, "Organic")
    p = create_partner(api, tags=["Organic"])
    r = api.patch(f"{PARTNERS}/{p['number']}", json={"tags": ["Ghost"]})
    body = assert_problem(r, 422, "unknown_tag")
    assert ["body", "tags", 0] in [e["loc"] for e in body["errors"]]
    assert get_partner(api, p["number"])["tags"] == ["Organic"]


def test_same_tag_twice_in_any_case_is_422(api: Api) -> None:
    create_tag(api, "Organic")
    r = api.post(PARTNERS, json={"name": "X", "country": "DK", "tags": ["Organic", "organic"]})
    body = assert_problem(r, 422)
    assert_loc(body, "body", "tags")
    assert partner_count(api) == 0


# --- owner --------------------------------------------------------------------------------


def test_owner_is_set_by_owner_id_and_shown_as_id_and_name(api: Api) -> None:
    user = create_user(api, name="Ole Owner")
    p = create_partner(api, owner_id=user["id"])
    assert p["owner"] == {"id": user["id"], "name": "Ole Owner"}
    assert "owner_id" not in p


def test_owner_is_null_when_not_set(api: Api) -> None:
    assert create_partner(api)["owner"] is None


def test_owner_can_be_changed_and_cleared_by_patch(api: Api) -> None:
    first = create_user(api, name="First")
    second = create_user(api, name="Second")
    p = create_partner(api, owner_id=first["id"])
    r = api.patch(f"{PARTNERS}/{p['number']}", json={"owner_id": second["id"]})
    assert r.status_code == 200, r.text
    assert get_partner(api, p["number"])["owner"] == {"id": second["id"], "name": "Second"}
    r = api.patch(f"{PARTNERS}/{p['number']}", json={"owner_id": None})
    assert r.status_code == 200, r.text
    assert get_partner(api, p["number"])["owner"] is None


def test_unknown_owner_is_422_unknown_owner(api: Api) -> None:
    r = api.post(
        PARTNERS,
        json={"name": "X", "country": "DK", "owner_id": "00000000-0000-4000-8000-000000000000"},
    )
    body = assert_problem(r, 422, "unknown_owner")
    assert_loc(body, "body", "owner_id")
    assert partner_count(api) == 0


def test_unknown_owner_on_patch_is_422_and_keeps_the_owner(api: Api) -> None:
    user = create_user(api)
    p = create_partner(api, owner_id=user["id"])
    r = api.patch(
        f"{PARTNERS}/{p['number']}", json={"owner_id": "00000000-0000-4000-8000-000000000000"}
    )
    assert_problem(r, 422, "unknown_owner")
    assert get_partner(api, p["number"])["owner"]["id"] == user["id"]


# --- customer stage and its history -------------------------------------------------------


def history(api: Api, number: int) -> list[dict]:
    r = api.get(f"{PARTNERS}/{number}/stage-history")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_customer_stage_is_null_until_set(api: Api) -> None:
    p = create_partner(api)
    assert p["customer_stage"] is None
    assert history(api, p["number"]) == []


def test_customer_stage_set_on_create_writes_stage_history(api: Api) -> None:
    p = create_partner(api, customer_stage="lead")
    items = history(api, p["number"])
    assert len(items) == 1
    change = items[0]
    assert change["previous_stage"] is None
    assert change["stage"] == "lead"
    assert change["reason"] == "manual"
    assert change["changed_by"] == {"id": str(api.tenant.admin.id), "name": "Admin"}
    assert change["changed_at"].endswith("Z")


def test_customer_stage_set_by_patch_writes_stage_history(api: Api) -> None:
    p = create_partner(api)
    r = api.patch(f"{PARTNERS}/{p['number']}", json={"customer_stage": "potential"})
    assert r.status_code == 200, r.text
    assert r.json()["customer_stage"] == "potential"
    items = history(api, p["number"])
    assert [(c["previous_stage"], c["stage"], c["reason"]) for c in items] == [
        (None, "potential", "manual")
    ]


def test_stage_history_records_the_user_of_the_token(api: Api) -> None:
    user = create_user(api, name="Sigrid Seller")
    token = create_token(api, "write", user_id=user["id"])
    seller = with_token(api, token["token"])
    p = create_partner(api)
    r = seller.patch(f"{PARTNERS}/{p['number']}", json={"customer_stage": "active"})
    assert r.status_code == 200, r.text
    assert history(api, p["number"])[0]["changed_by"] == {
        "id": user["id"],
        "name": "Sigrid Seller",
    }


def test_setting_the_same_stage_records_nothing(api: Api) -> None:
    p = create_partner(api, customer_stage="active")
    r = api.patch(f"{PARTNERS}/{p['number']}", json={"customer_stage": "active"})
    assert r.status_code == 200, r.text
    assert len(history(api, p["number"])) == 1


def test_patch_without_stage_records_nothing(api: Api) -> None:
    p = create_partner(api, customer_stage="lead")
    assert api.patch(f"{PARTNERS}/{p['number']}", json={"name": "Other"}).status_code == 200
    assert len(history(api, p["number"])) == 1


def test_clearing_the_stage_is_recorded(api: Api) -> None:
    p = create_partner(api, customer_stage="lost")
    r = api.patch(f"{PARTNERS}/{p['number']}", json={"customer_stage": None})
    assert r.status_code == 200, r.text
    assert r.json()["customer_stage"] is None
    latest = history(api, p["number"])[0]
    assert (latest["previous_stage"], latest["stage"]) == ("lost", None)


def test_failed_patch_records_no_stage_change(api: Api) -> None:
    p = create_partner(api, customer_stage="lead")
    r = api.patch(f"{PARTNERS}/{p['number']}", json={"customer_stage": "active", "tags": ["Ghost"]})
    assert_problem(r, 422, "unknown_tag")
    assert get_partner(api, p["number"])["customer_stage"] == "lead"
    assert len(history(api, p["number"])) == 1


def test_stage_history_is_newest_first(api: Api) -> None:
    p = create_partner(api, customer_stage="lead")
    for stage in ("potential", "active", "inactive"):
        r = api.patch(f"{PARTNERS}/{p['number']}", json={"customer_stage": stage})
        assert r.status_code == 200, r.text
    items = history(api, p["number"])
    assert [(c["previous_stage"], c["stage"]) for c in items] == [
        ("active", "inactive"),
        ("potential", "active"),
        ("lead", "potential"),
        (None, "lead"),
    ]
    stamps = [c["changed_at"] for c in items]
    assert stamps == sorted(stamps, reverse=True)


def test_stage_history_pages_with_a_cursor(api: Api) -> None:
    p = create_partner(api, customer_stage="lead")
    for stage in ("potential", "active", "inactive", "lost"):
        assert (
            api.patch(f"{PARTNERS}/{p['number']}", json={"customer_stage": stage}).status_code
            == 200
        )
    seen = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = api.get(f"{PARTNERS}/{p['number']}/stage-history", params=params)
        assert r.status_code == 200, r.text
        seen += [c["stage"] for c in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ["lost", "inactive", "active", "potential", "lead"]


def test_stage_history_of_unknown_partner_is_404(api: Api) -> None:
    assert_problem(api.get(f"{PARTNERS}/999/stage-history"), 404)


# --- delete -------------------------------------------------------------------------------


def test_delete_partner_answers_204_then_404(api: Api) -> None:
    p = create_partner(api)
    r = api.delete(f"{PARTNERS}/{p['number']}")
    assert r.status_code == 204
    assert r.content == b""
    assert_problem(api.get(f"{PARTNERS}/{p['number']}"), 404, "partner_not_found")
    assert partner_count(api) == 0


def test_delete_partner_twice_is_404_the_second_time(api: Api) -> None:
    p = create_partner(api)
    assert api.delete(f"{PARTNERS}/{p['number']}").status_code == 204
    assert_problem(api.delete(f"{PARTNERS}/{p['number']}"), 404)


def test_delete_partner_removes_its_stage_history(api: Api) -> None:
    p = create_partner(api, customer_stage="lead")
    assert api.delete(f"{PARTNERS}/{p['number']}").status_code == 204
    assert_problem(api.get(f"{PARTNERS}/{p['number']}/stage-history"), 404)


def test_delete_partner_leaves_other_partners(api: Api) -> None:
    keep = create_partner(api, name="Keep")
    gone = create_partner(api, name="Gone")
    assert api.delete(f"{PARTNERS}/{gone['number']}").status_code == 204
    assert get_partner(api, keep["number"]) == keep


# --- read-only fields ---------------------------------------------------------------------


def test_read_only_fields_are_present_with_empty_values(api: Api) -> None:
    p = create_partner(api)
    assert p["debtor_balance"] is None
    assert p["debtor_balance_synced_at"] is None
    assert p["uninvoiced_total"] == "0.00"
    assert p["latest_sales_delivery_date"] is None
    assert p["credit_limit_exceeded"] is False


@pytest.mark.parametrize("field", sorted(READ_ONLY_FIELDS))
def test_read_only_field_on_create_is_422(api: Api, field: str) -> None:
    r = api.post(PARTNERS, json={"name": "X", "country": "DK", field: READ_ONLY_FIELDS[field]})
    body = assert_problem(r, 422)
    assert_loc(body, "body", field)
    assert partner_count(api) == 0


@pytest.mark.parametrize("field", sorted(READ_ONLY_FIELDS))
def test_read_only_field_on_patch_is_422(api: Api, field: str) -> None:
    p = create_partner(api)
    r = api.patch(f"{PARTNERS}/{p['number']}", json={field: READ_ONLY_FIELDS[field]})
    body = assert_problem(r, 422)
    assert_loc(body, "body", field)
    assert get_partner(api, p["number"]) == p


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "00000000-0000-4000-8000-000000000000"),
        ("created_at", "2024-01-01T00:00:00Z"),
        ("updated_at", "2024-01-01T00:00:00Z"),
        ("owner", {"id": "00000000-0000-4000-8000-000000000000", "name": "X"}),
    ],
)
def test_server_managed_field_on_create_is_422(api: Api, field: str, value: object) -> None:
    body = assert_problem(
        api.post(PARTNERS, json={"name": "X", "country": "DK", field: value}), 422
    )
    assert_loc(body, "body", field)
    assert partner_count(api) == 0


# --- accounting_ref -----------------------------------------------------------------------


def test_duplicate_accounting_ref_in_a_company_is_409(api: Api) -> None:
    create_partner(api, accounting_ref="C-100")
    r = api.post(PARTNERS, json={"name": "Y", "country": "DK", "accounting_ref": "C-100"})
    body = assert_problem(r, 409)
    assert_loc(body, "body", "accounting_ref")
    assert partner_count(api) == 1


def test_duplicate_accounting_ref_by_patch_is_409_and_changes_nothing(api: Api) -> None:
    create_partner(api, accounting_ref="C-100")
    other = create_partner(api, name="Other", accounting_ref="C-200")
    r = api.patch(
        f"{PARTNERS}/{other['number']}", json={"accounting_ref": "C-100", "name": "Changed"}
    )
    assert_problem(r, 409)
    assert get_partner(api, other["number"]) == other


def test_several_partners_may_have_no_accounting_ref(api: Api) -> None:
    create_partner(api)
    create_partner(api)
    assert partner_count(api) == 2


def test_same_accounting_ref_in_another_company_is_allowed(api: Api, other_api: Api) -> None:
    create_partner(api, accounting_ref="C-100")
    assert create_partner(other_api, accounting_ref="C-100")["accounting_ref"] == "C-100"


# --- money --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "shown"),
    [("1234.5", "1234.50"), ("0", "0.00"), (1234.5, "1234.50"), (10, "10.00"), (0.07, "0.07")],
)
def test_credit_limit_is_shown_with_two_decimals(api: Api, sent: object, shown: str) -> None:
    assert create_partner(api, credit_limit=sent)["credit_limit"] == shown


def test_a_patch_answers_exactly_what_a_read_then_shows(api: Api) -> None:
    """The PATCH answer is rendered from the partner it wrote (not read back): for every kind
    of change it must equal GET, ETag included."""
    owner = create_user(api, name="Owner Two")
    for tag in ("b", "a", "Zed", "alpha"):
        create_tag(api, tag)
    p = create_partner(api, tags=["b", "a"], credit_limit="10")
    changes: list[dict[str, object]] = [
        {"phone": "+45 1234"},
        {"credit_limit": "1000", "website": "https://deli.example"},
        {"owner_id": owner["id"]},
        {"owner_id": None},
        {"tags": ["Zed", "alpha"]},
        {"locations": [{"country": "SE", "city": "Malmö"}, {"country": "DK", "is_primary": True}]},
        {"customer_stage": "potential", "name": "Renamed"},
        {"customer_stage": None},
        {},
    ]
    for change in changes:
        r = api.patch(f"{PARTNERS}/{p['number']}", json=change)
        assert r.status_code == 200, r.text
        read = api.get(f"{PARTNERS}/{p['number']}")
        assert r.json() == ok(read), change
        assert r.headers["etag"] == read.headers["etag"], change
