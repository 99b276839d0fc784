"""ETags: If-None-Match on GET (304), If-Match on PATCH and DELETE (412 when stale)."""

from __future__ import annotations

from tests.conftest import Api, assert_problem
from tests.helpers import COMPANY, PARTNERS, TAGS, create_partner, create_tag, get_partner


def _etag(api: Api, path: str) -> str:
    r = api.get(path)
    assert r.status_code == 200, r.text
    tag = r.headers.get("etag")
    assert tag, "a single resource must carry an ETag"
    return tag


def test_get_partner_returns_an_etag(api: Api) -> None:
    p = create_partner(api)
    tag = _etag(api, f"{PARTNERS}/{p['number']}")
    assert tag.startswith(('"', 'W/"'))
    assert tag.endswith('"')


def test_etag_is_stable_while_the_partner_is_unchanged(api: Api) -> None:
    p = create_partner(api)
    path = f"{PARTNERS}/{p['number']}"
    assert _etag(api, path) == _etag(api, path)


def test_etag_changes_when_the_partner_changes(api: Api) -> None:
    p = create_partner(api)
    path = f"{PARTNERS}/{p['number']}"
    before = _etag(api, path)
    assert api.patch(path, json={"name": "Renamed"}).status_code == 200
    assert _etag(api, path) != before


def test_if_none_match_with_current_etag_is_304(api: Api) -> None:
    p = create_partner(api)
    path = f"{PARTNERS}/{p['number']}"
    tag = _etag(api, path)
    r = api.get(path, headers={"If-None-Match": tag})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers.get("etag") == tag


def test_if_none_match_with_stale_etag_is_200_with_body(api: Api) -> None:
    p = create_partner(api)
    path = f"{PARTNERS}/{p['number']}"
    old = _etag(api, path)
    assert api.patch(path, json={"name": "Renamed"}).status_code == 200
    r = api.get(path, headers={"If-None-Match": old})
    assert r.status_code == 200
    assert r.json()["name"] == "Renamed"
    assert r.headers["etag"] != old


def test_if_none_match_with_one_of_several_etags_is_304(api: Api) -> None:
    p = create_partner(api)
    path = f"{PARTNERS}/{p['number']}"
    tag = _etag(api, path)
    r = api.get(path, headers={"If-None-Match": f'"other", {tag}'})
    assert r.status_code == 304


def test_patch_with_stale_if_match_is_412_and_changes_nothing(api: Api) -> None:
    p = create_partner(api, name="Original")
    path = f"{PARTNERS}/{p['number']}"
    stale = _etag(api, path)
    assert api.patch(path, json={"phone": "123"}).status_code == 200
    current = get_partner(api, p["number"])
    r = api.patch(path, json={"name": "Lost update"}, headers={"If-Match": stale})
    assert_problem(r, 412, "etag_mismatch")
    assert get_partner(api, p["number"]) == current


def test_patch_with_made_up_if_match_is_412(api: Api) -> None:
    p = create_partner(api)
    path = f"{PARTNERS}/{p['number']}"
    r = api.patch(path, json={"name": "X"}, headers={"If-Match": '"not-the-etag"'})
    assert_problem(r, 412, "etag_mismatch")
    assert get_partner(api, p["number"]) == p


def test_patch_with_current_if_match_succeeds(api: Api) -> None:
    p = create_partner(api)
    path = f"{PARTNERS}/{p['number']}"
    r = api.patch(path, json={"name": "Renamed"}, headers={"If-Match": _etag(api, path)})
    assert r.status_code == 200, r.text
    assert get_partner(api, p["number"])["name"] == "Renamed"


def test_patch_with_etag_from_create_succeeds(api: Api) -> None:
    r = api.post(PARTNERS, json={"name": "Fresh", "country": "DK"})
    assert r.status_code == 201
    path = f"{PARTNERS}/{r.json()['number']}"
    patched = api.patch(path, json={"name": "Renamed"}, headers={"If-Match": r.headers["etag"]})
    assert patched.status_code == 200, patched.text


def test_patch_etag_allows_a_following_conditional_patch(api: Api) -> None:
    p = create_partner(api)
    path = f"{PARTNERS}/{p['number']}"
    first = api.patch(path, json={"name": "One"}, headers={"If-Match": _etag(api, path)})
    assert first.status_code == 200, first.text
    second = api.patch(path, json={"name": "Two"}, headers={"If-Match": first.headers["etag"]})
    assert second.status_code == 200, second.text
    assert get_partner(api, p["number"])["name"] == "Two"


def test_patch_with_if_match_star_succeeds_on_an_existing_partner(api: Api) -> None:
    p = create_partner(api)
    path = f"{PARTNERS}/{p['number']}"
    assert api.patch(path, json={"name": "Any"}, headers={"If-Match": "*"}).status_code == 200
    assert get_partner(api, p["number"])["name"] == "Any"


def test_if_match_on_unknown_partner_is_404(api: Api) -> None:
    assert_problem(
        api.patch(f"{PARTNERS}/77", json={"name": "x"}, headers={"If-Match": '"x"'}), 404
    )


def test_patch_without_if_match_is_unconditional(api: Api) -> None:
    p = create_partner(api)
    path = f"{PARTNERS}/{p['number']}"
    assert api.patch(path, json={"name": "A"}).status_code == 200
    assert api.patch(path, json={"name": "B"}).status_code == 200
    assert get_partner(api, p["number"])["name"] == "B"


def test_delete_with_stale_if_match_is_412_and_keeps_the_partner(api: Api) -> None:
    p = create_partner(api)
    path = f"{PARTNERS}/{p['number']}"
    stale = _etag(api, path)
    assert api.patch(path, json={"name": "Changed"}).status_code == 200
    current = get_partner(api, p["number"])
    assert_problem(api.delete(path, headers={"If-Match": stale}), 412, "etag_mismatch")
    assert get_partner(api, p["number"]) == current


def test_delete_with_current_if_match_succeeds(api: Api) -> None:
    p = create_partner(api)
    path = f"{PARTNERS}/{p['number']}"
    r = api.delete(path, headers={"If-Match": _etag(api, path)})
    assert r.status_code == 204
    assert_problem(api.get(path), 404)


def test_tag_get_honours_if_none_match(api: Api) -> None:
    create_tag(api, "Organic")
    tag = _etag(api, f"{TAGS}/Organic")
    assert api.get(f"{TAGS}/Organic", headers={"If-None-Match": tag}).status_code == 304


def test_company_patch_with_stale_if_match_is_412_and_changes_nothing(api: Api) -> None:
    stale = _etag(api, COMPANY)
    assert api.patch(COMPANY, json={"name": "First rename"}).status_code == 200
    r = api.patch(COMPANY, json={"name": "Second rename"}, headers={"If-Match": stale})
    assert_problem(r, 412, "etag_mismatch")
    assert api.get(COMPANY).json()["name"] == "First rename"


def test_company_patch_with_current_if_match_succeeds(api: Api) -> None:
    r = api.patch(COMPANY, json={"name": "Renamed"}, headers={"If-Match": _etag(api, COMPANY)})
    assert r.status_code == 200, r.text
    assert api.get(COMPANY).json()["name"] == "Renamed"
