"""Tags: create, list, get by name in any case, delete (and its effect on partners)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.conftest import Api, assert_problem
from tests.helpers import (
    PARTNERS,
    TAGS,
    assert_loc,
    create_partner,
    create_tag,
    get_partner,
    walk,
)


def _tag_names(api: Api) -> list[str]:
    return [t["name"] for t in walk(api, TAGS, limit=500)]


def test_create_tag_answers_201_with_location(api: Api) -> None:
    r = api.post(TAGS, json={"name": "Organic"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "Organic"
    assert body["id"]
    assert body["created_at"].endswith("Z")
    assert r.headers["location"].endswith("/api/v1/tags/Organic")


def test_create_tag_location_leads_to_the_tag(api: Api) -> None:
    r = api.post(TAGS, json={"name": "Fair Trade"})
    assert r.status_code == 201, r.text
    got = api.get(r.headers["location"])
    assert got.status_code == 200, got.text
    assert got.json() == r.json()


def test_tag_name_keeps_its_case(api: Api) -> None:
    assert create_tag(api, "eXpOrT")["name"] == "eXpOrT"


def test_tag_name_is_trimmed(api: Api) -> None:
    assert create_tag(api, "  Organic  ")["name"] == "Organic"


def test_tag_names_are_unique_ignoring_case(api: Api) -> None:
    create_tag(api, "Organic")
    for name in ("Organic", "organic", "ORGANIC"):
        body = assert_problem(api.post(TAGS, json={"name": name}), 409, "tag_exists")
        assert_loc(body, "body", "name")
    assert _tag_names(api) == ["Organic"]


def test_list_tags_returns_every_tag_by_name(api: Api) -> None:
    for name in ("Wholesale", "export", "Organic"):
        create_tag(api, name)
    r = api.get(TAGS)
    assert r.status_code == 200
    assert [t["name"] for t in r.json()["items"]] == ["export", "Organic", "Wholesale"]
    assert r.json()["next_cursor"] is None


def test_list_tags_pages_with_a_cursor(api: Api) -> None:
    names = [f"Tag{chr(ord('A') + i)}" for i in range(7)]
    for name in names:
        create_tag(api, name)
    assert [t["name"] for t in walk(api, TAGS, limit=2)] == names


def test_list_tags_include_total(api: Api) -> None:
    for name in ("A1", "B1", "C1"):
        create_tag(api, name)
    r = api.get(TAGS, params={"limit": 1, "include_total": "true"})
    assert r.json()["total"] == 3


@pytest.mark.parametrize("asked", ["Organic", "organic", "ORGANIC", "oRgAnIc"])
def test_get_tag_by_name_in_any_case(api: Api, asked: str) -> None:
    created = create_tag(api, "Organic")
    r = api.get(f"{TAGS}/{asked}")
    assert r.status_code == 200, r.text
    assert r.json() == created
    assert r.headers.get("etag")


def test_get_tag_with_space_and_non_ascii_name(api: Api) -> None:
    created = create_tag(api, "Økologisk vare")
    r = api.get(f"{TAGS}/{quote('økologisk VARE')}")
    assert r.status_code == 200, r.text
    assert r.json() == created


def test_get_unknown_tag_is_404(api: Api) -> None:
    assert_problem(api.get(f"{TAGS}/Nothing"), 404, "tag_not_found")


def test_delete_tag_answers_204_and_removes_it(api: Api) -> None:
    create_tag(api, "Organic")
    r = api.delete(f"{TAGS}/Organic")
    assert r.status_code == 204
    assert r.content == b""
    assert_problem(api.get(f"{TAGS}/Organic"), 404)
    assert _tag_names(api) == []


def test_delete_tag_by_name_in_any_case(api: Api) -> None:
    create_tag(api, "Organic")
    assert api.delete(f"{TAGS}/oRGANIC").status_code == 204
    assert _tag_names(api) == []


def test_delete_unknown_tag_is_404(api: Api) -> None:
    assert_problem(api.delete(f"{TAGS}/Nothing"), 404)


def test_delete_tag_removes_it_from_partners(api: Api) -> None:
    create_tag(api, "Organic")
    create_tag(api, "Export")
    p = create_partner(api, tags=["Organic", "Export"])
    assert api.delete(f"{TAGS}/Organic").status_code == 204
    assert get_partner(api, p["number"])["tags"] == ["Export"]
    r = api.get(PARTNERS, params={"tag": "Export"})
    assert [x["number"] for x in r.json()["items"]] == [p["number"]]


def test_deleted_tag_no_longer_matches_the_partner_filter(api: Api) -> None:
    create_tag(api, "Organic")
    create_partner(api, tags=["Organic"])
    assert api.delete(f"{TAGS}/Organic").status_code == 204
    r = api.get(PARTNERS, params={"tag": "Organic"})
    assert r.status_code == 200
    assert r.json()["items"] == []


def test_deleted_tag_cannot_be_attached(api: Api) -> None:
    create_tag(api, "Organic")
    assert api.delete(f"{TAGS}/Organic").status_code == 204
    r = api.post(PARTNERS, json={"name": "X", "country": "DK", "tags": ["Organic"]})
    assert_problem(r, 422, "unknown_tag")


def test_tag_name_can_be_created_again_after_delete(api: Api) -> None:
    create_tag(api, "Organic")
    assert api.delete(f"{TAGS}/Organic").status_code == 204
    assert create_tag(api, "organic")["name"] == "organic"


def test_delete_tag_keeps_the_partner_otherwise_unchanged(api: Api) -> None:
    create_tag(api, "Organic")
    p = create_partner(api, tags=["Organic"], customer_stage="lead")
    assert api.delete(f"{TAGS}/Organic").status_code == 204
    after = get_partner(api, p["number"])
    assert {k: v for k, v in after.items() if k not in ("tags",)} == {
        k: v for k, v in p.items() if k not in ("tags",)
    } | {"updated_at": after["updated_at"]}


@pytest.mark.parametrize(
    "name", ["a/b", "a;b", "/", ";", "Organic;Export", "x\ty", "x\x7fy", "a\x00b"]
)
def test_tag_name_with_forbidden_characters_is_422(api: Api, name: str) -> None:
    body = assert_problem(api.post(TAGS, json={"name": name}), 422)
    assert_loc(body, "body", "name")
    assert _tag_names(api) == []


@pytest.mark.parametrize("name", ["", "   ", "x" * 51])
def test_tag_name_empty_or_too_long_is_422(api: Api, name: str) -> None:
    body = assert_problem(api.post(TAGS, json={"name": name}), 422)
    assert_loc(body, "body", "name")
    assert _tag_names(api) == []


def test_tag_name_of_50_characters_is_accepted(api: Api) -> None:
    assert create_tag(api, "x" * 50)["name"] == "x" * 50


def test_tag_with_unknown_field_is_422(api: Api) -> None:
    body = assert_problem(api.post(TAGS, json={"name": "Organic", "color": "green"}), 422)
    assert_loc(body, "body", "color")
    assert _tag_names(api) == []


def test_tag_without_name_is_422(api: Api) -> None:
    body = assert_problem(api.post(TAGS, json={}), 422)
    assert_loc(body, "body", "name")
