"""Company isolation (another company's objects answer 404 and stay untouched) and scopes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, assert_problem
from tests.helpers import (
    COMPANY,
    ME,
    PARTNERS,
    TAGS,
    TOKENS,
    USERS,
    create_partner,
    create_tag,
    create_token,
    create_user,
    get_partner,
    numbers,
    walk,
    with_token,
)

NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def a_data(api: Api) -> dict[str, Any]:
    """Company A's objects: a tag, a user, a partner with history, and a token."""
    create_tag(api, "Organic")
    user = create_user(api, name="Anna A", email="anna@acme.example")
    partner = create_partner(
        api,
        name="Acme Customer",
        tags=["Organic"],
        owner_id=user["id"],
        customer_stage="lead",
        accounting_ref="A-1",
        locations=[{"name": "HQ", "country": "DK"}],
    )
    token = create_token(api, "read", user_id=user["id"], name="acme reader")
    return {"partner": partner, "user": user, "token": token}


def _snapshot(api: Api) -> dict[str, Any]:
    """Everything company A can see, read with A's own token."""
    return {
        "partners": walk(api, PARTNERS, limit=500),
        "history": api.get(f"{PARTNERS}/1/stage-history").json(),
        "tags": walk(api, TAGS, limit=500),
        "users": walk(api, USERS, limit=500),
        "tokens": walk(api, TOKENS, limit=500),
        "company": api.get(COMPANY).json(),
    }


def _same_as_missing(response: Any, missing: Any) -> None:
    """A foreign object answers exactly like one that does not exist."""
    body = assert_problem(response, 404)
    expected = assert_problem(missing, 404)
    assert body["code"] == expected["code"]
    assert body["title"] == expected["title"]


# --- partners -----------------------------------------------------------------------------


def test_other_company_cannot_get_a_partner(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    _same_as_missing(other_api.get(f"{PARTNERS}/1"), other_api.get(f"{PARTNERS}/2"))


def test_other_company_cannot_patch_a_partner(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    before = _snapshot(api)
    r = other_api.patch(f"{PARTNERS}/1", json={"name": "Hijacked", "customer_stage": "lost"})
    _same_as_missing(r, other_api.patch(f"{PARTNERS}/2", json={"name": "Hijacked"}))
    assert _snapshot(api) == before


def test_other_company_cannot_delete_a_partner(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    before = _snapshot(api)
    _same_as_missing(other_api.delete(f"{PARTNERS}/1"), other_api.delete(f"{PARTNERS}/2"))
    assert _snapshot(api) == before


def test_other_company_cannot_read_stage_history(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    _same_as_missing(
        other_api.get(f"{PARTNERS}/1/stage-history"), other_api.get(f"{PARTNERS}/2/stage-history")
    )


def test_other_company_with_the_same_number_sees_only_its_own_partner(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    mine = create_partner(other_api, name="Globex Customer")
    assert mine["number"] == 1
    assert get_partner(other_api, 1)["name"] == "Globex Customer"
    assert get_partner(api, 1)["name"] == "Acme Customer"
    before = _snapshot(api)
    assert other_api.patch(f"{PARTNERS}/1", json={"customer_stage": "lost"}).status_code == 200
    assert other_api.delete(f"{PARTNERS}/1").status_code == 204
    assert _snapshot(api) == before


def test_partner_list_never_shows_another_company(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    create_partner(other_api, name="Globex Customer")
    theirs = walk(other_api, PARTNERS, limit=500)
    assert [p["name"] for p in theirs] == ["Globex Customer"]
    assert [p["name"] for p in walk(api, PARTNERS, limit=500)] == ["Acme Customer"]


@pytest.mark.parametrize(
    "params",
    [
        {"q": "Acme"},
        {"q": "1"},
        {"tag": "Organic"},
        {"customer_stage": "lead"},
        {"country": "DK"},
        {"include_total": "true"},
    ],
)
def test_partner_list_filters_never_reach_another_company(
    api: Api, other_api: Api, a_data: dict[str, Any], params: dict[str, str]
) -> None:
    r = other_api.get(PARTNERS, params=params)
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []
    if "include_total" in params:
        assert r.json()["total"] == 0


def test_partner_list_owner_filter_with_another_company_user_finds_nothing(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    create_partner(other_api)
    r = other_api.get(PARTNERS, params={"owner_id": a_data["user"]["id"]})
    assert r.status_code == 200
    assert r.json()["items"] == []


def test_another_company_user_cannot_become_owner(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    r = other_api.post(
        PARTNERS, json={"name": "X", "country": "DK", "owner_id": a_data["user"]["id"]}
    )
    assert_problem(r, 422, "unknown_owner")
    assert walk(other_api, PARTNERS, limit=500) == []


def test_another_company_tag_cannot_be_attached(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    r = other_api.post(PARTNERS, json={"name": "X", "country": "DK", "tags": ["Organic"]})
    assert_problem(r, 422, "unknown_tag")
    assert walk(other_api, PARTNERS, limit=500) == []


def test_cursor_from_another_company_shows_only_own_rows(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    create_partner(api, name="Second")
    create_partner(api, name="Third")
    cursor = api.get(PARTNERS, params={"limit": 1}).json()["next_cursor"]
    assert cursor
    for _ in range(3):
        create_partner(other_api, name="Globex")
    r = other_api.get(PARTNERS, params={"limit": 500, "cursor": cursor})
    assert r.status_code == 200, r.text
    assert [p["name"] for p in r.json()["items"]] == ["Globex", "Globex"]
    assert numbers(r.json()["items"]) == [2, 3]


# --- tags ---------------------------------------------------------------------------------


def test_other_company_cannot_get_a_tag(api: Api, other_api: Api, a_data: dict[str, Any]) -> None:
    _same_as_missing(other_api.get(f"{TAGS}/Organic"), other_api.get(f"{TAGS}/Nothing"))


def test_other_company_cannot_delete_a_tag(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    before = _snapshot(api)
    _same_as_missing(other_api.delete(f"{TAGS}/Organic"), other_api.delete(f"{TAGS}/Nothing"))
    assert _snapshot(api) == before


def test_tag_names_are_per_company(api: Api, other_api: Api, a_data: dict[str, Any]) -> None:
    before = _snapshot(api)
    theirs = create_tag(other_api, "organic")
    assert theirs["name"] == "organic"
    assert other_api.delete(f"{TAGS}/Organic").status_code == 204
    assert _snapshot(api) == before


def test_tag_list_never_shows_another_company(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    create_tag(other_api, "Export")
    assert [t["name"] for t in walk(other_api, TAGS, limit=500)] == ["Export"]
    assert [t["name"] for t in walk(api, TAGS, limit=500)] == ["Organic"]


# --- users --------------------------------------------------------------------------------


def test_other_company_cannot_get_a_user(api: Api, other_api: Api, a_data: dict[str, Any]) -> None:
    _same_as_missing(
        other_api.get(f"{USERS}/{a_data['user']['id']}"), other_api.get(f"{USERS}/{NO_SUCH_ID}")
    )
    _same_as_missing(
        other_api.get(f"{USERS}/{api.tenant.admin.id}"), other_api.get(f"{USERS}/{NO_SUCH_ID}")
    )


def test_user_list_never_shows_another_company(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    theirs = walk(other_api, USERS, limit=500)
    assert [u["id"] for u in theirs] == [str(other_api.tenant.admin.id)]
    assert a_data["user"]["id"] not in [u["id"] for u in theirs]
    assert str(other_api.tenant.admin.id) not in [u["id"] for u in walk(api, USERS, limit=500)]


def test_token_cannot_be_made_for_another_company_user(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    r = other_api.post(TOKENS, json={"scope": "admin", "user_id": a_data["user"]["id"]})
    assert_problem(r, 422)
    assert len(walk(other_api, TOKENS, limit=500)) == 3


# --- tokens -------------------------------------------------------------------------------


def test_other_company_cannot_get_a_token(api: Api, other_api: Api, a_data: dict[str, Any]) -> None:
    _same_as_missing(
        other_api.get(f"{TOKENS}/{a_data['token']['id']}"),
        other_api.get(f"{TOKENS}/{NO_SUCH_ID}"),
    )


def test_other_company_cannot_revoke_a_token(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    before = _snapshot(api)
    _same_as_missing(
        other_api.delete(f"{TOKENS}/{a_data['token']['id']}"),
        other_api.delete(f"{TOKENS}/{NO_SUCH_ID}"),
    )
    assert _snapshot(api) == before
    assert with_token(api, a_data["token"]["token"]).get(ME).status_code == 200


def test_other_company_cannot_revoke_the_admin_token(api: Api, other_api: Api) -> None:
    token_id = api.get(ME).json()["token_id"]
    _same_as_missing(
        other_api.delete(f"{TOKENS}/{token_id}"), other_api.delete(f"{TOKENS}/{NO_SUCH_ID}")
    )
    assert api.get(ME).status_code == 200


def test_token_list_never_shows_another_company(
    api: Api, other_api: Api, a_data: dict[str, Any]
) -> None:
    theirs = walk(other_api, TOKENS, limit=500)
    assert a_data["token"]["id"] not in [t["id"] for t in theirs]
    assert {t["user"]["id"] for t in theirs} == {str(other_api.tenant.admin.id)}
    assert {t["user"]["id"] for t in walk(api, TOKENS, limit=500)} <= {
        str(api.tenant.admin.id),
        a_data["user"]["id"],
    }


def test_token_decides_the_company(api: Api, other_api: Api, a_data: dict[str, Any]) -> None:
    a_reader = with_token(other_api, a_data["token"]["token"])
    assert a_reader.get(ME).json()["company"]["slug"] == "acme"
    assert [p["name"] for p in walk(a_reader, PARTNERS, limit=500)] == ["Acme Customer"]


def test_company_patch_changes_only_own_company(api: Api, other_api: Api) -> None:
    before = api.get(COMPANY).json()
    assert other_api.patch(COMPANY, json={"name": "Globex Renamed"}).status_code == 200
    assert api.get(COMPANY).json() == before
    assert other_api.get(COMPANY).json()["slug"] == "globex"


# --- scopes -------------------------------------------------------------------------------

READ_ROUTES = [
    ("GET", PARTNERS),
    ("GET", f"{PARTNERS}/1"),
    ("GET", f"{PARTNERS}/1/stage-history"),
    ("GET", TAGS),
    ("GET", f"{TAGS}/Organic"),
    ("GET", USERS),
    ("GET", f"{USERS}/{{user_id}}"),
    ("GET", ME),
    ("GET", COMPANY),
]

PARTNER_AND_TAG_WRITES: list[tuple[str, str, Any]] = [
    ("POST", PARTNERS, {"name": "New", "country": "DK"}),
    ("PATCH", f"{PARTNERS}/1", {"name": "Changed", "customer_stage": "lost"}),
    ("DELETE", f"{PARTNERS}/1", None),
    ("POST", TAGS, {"name": "Export"}),
    ("DELETE", f"{TAGS}/Organic", None),
]

ADMIN_ONLY: list[tuple[str, str, Any]] = [
    ("POST", USERS, {"name": "New User", "email": "new@acme.example"}),
    ("GET", TOKENS, None),
    ("POST", TOKENS, {"name": "x", "scope": "admin"}),
    ("GET", f"{TOKENS}/{{token_id}}", None),
    ("DELETE", f"{TOKENS}/{{token_id}}", None),
    ("PATCH", COMPANY, {"name": "Hijacked", "credit_enforcement": "block"}),
]


def _call(api: Api, method: str, path: str, body: Any, a_data: dict[str, Any]) -> Any:
    path = path.format(token_id=a_data["token"]["id"], user_id=a_data["user"]["id"])
    return api.request(method, path, **({"json": body} if body is not None else {}))


@pytest.mark.parametrize(("method", "path"), READ_ROUTES)
def test_read_token_can_read(api: Api, a_data: dict[str, Any], method: str, path: str) -> None:
    r = _call(api.as_("read"), method, path, None, a_data)
    assert r.status_code == 200, r.text
    assert r.json()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    PARTNER_AND_TAG_WRITES + ADMIN_ONLY,
    ids=[f"{m} {p}" for m, p, _ in PARTNER_AND_TAG_WRITES + ADMIN_ONLY],
)
def test_read_token_gets_403_on_every_write(
    api: Api, a_data: dict[str, Any], method: str, path: str, body: Any
) -> None:
    before = _snapshot(api)
    r = _call(api.as_("read"), method, path, body, a_data)
    assert_problem(r, 403, "insufficient_scope")
    assert _snapshot(api) == before


@pytest.mark.parametrize(
    ("method", "path", "body"), ADMIN_ONLY, ids=[f"{m} {p}" for m, p, _ in ADMIN_ONLY]
)
def test_write_token_gets_403_on_admin_routes(
    api: Api, a_data: dict[str, Any], method: str, path: str, body: Any
) -> None:
    before = _snapshot(api)
    r = _call(api.as_("write"), method, path, body, a_data)
    assert_problem(r, 403, "insufficient_scope")
    assert _snapshot(api) == before


@pytest.mark.parametrize(
    ("method", "path", "body"),
    PARTNER_AND_TAG_WRITES,
    ids=[f"{m} {p}" for m, p, _ in PARTNER_AND_TAG_WRITES],
)
def test_write_token_can_change_partners_and_tags(
    api: Api, a_data: dict[str, Any], method: str, path: str, body: Any
) -> None:
    r = _call(api.as_("write"), method, path, body, a_data)
    assert r.status_code in (200, 201, 204), r.text


@pytest.mark.parametrize(
    ("method", "path", "body"), ADMIN_ONLY, ids=[f"{m} {p}" for m, p, _ in ADMIN_ONLY]
)
def test_admin_token_can_use_admin_routes(
    api: Api, a_data: dict[str, Any], method: str, path: str, body: Any
) -> None:
    r = _call(api, method, path, body, a_data)
    assert r.status_code in (200, 201, 204), r.text


def test_forbidden_is_checked_before_the_object_exists(api: Api) -> None:
    # A read token learns nothing from a write: 403 whether or not the partner exists.
    r = api.as_("read").patch(f"{PARTNERS}/999", json={"name": "x"})
    assert_problem(r, 403, "insufficient_scope")


ALL_ROUTES: list[tuple[str, str]] = [
    ("GET", PARTNERS),
    ("POST", PARTNERS),
    ("GET", f"{PARTNERS}/1"),
    ("PATCH", f"{PARTNERS}/1"),
    ("DELETE", f"{PARTNERS}/1"),
    ("GET", f"{PARTNERS}/1/stage-history"),
    ("GET", TAGS),
    ("POST", TAGS),
    ("GET", f"{TAGS}/Organic"),
    ("DELETE", f"{TAGS}/Organic"),
    ("GET", USERS),
    ("POST", USERS),
    ("GET", f"{USERS}/{NO_SUCH_ID}"),
    ("GET", TOKENS),
    ("POST", TOKENS),
    ("GET", f"{TOKENS}/{NO_SUCH_ID}"),
    ("DELETE", f"{TOKENS}/{NO_SUCH_ID}"),
    ("GET", ME),
    ("GET", COMPANY),
    ("PATCH", COMPANY),
]


@pytest.mark.parametrize(("method", "path"), ALL_ROUTES, ids=[f"{m} {p}" for m, p in ALL_ROUTES])
def test_missing_token_is_401_with_www_authenticate(
    api: Api, a_data: dict[str, Any], method: str, path: str
) -> None:
    before = _snapshot(api)
    kwargs: dict[str, Any] = {"json": {"name": "x"}} if method in ("POST", "PATCH") else {}
    r = api.client.request(method, path, **kwargs)
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].lower().startswith("bearer")
    assert _snapshot(api) == before


@pytest.mark.parametrize(("method", "path"), ALL_ROUTES, ids=[f"{m} {p}" for m, p in ALL_ROUTES])
def test_garbage_token_is_401(api: Api, a_data: dict[str, Any], method: str, path: str) -> None:
    before = _snapshot(api)
    kwargs: dict[str, Any] = {"json": {"name": "x"}} if method in ("POST", "PATCH") else {}
    r = api.client.request(method, path, headers={"Authorization": "Bearer crm_garbage"}, **kwargs)
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].lower().startswith("bearer")
    assert _snapshot(api) == before


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token {admin}",
        "{admin}",
        "Bearer {admin}x",
        "Bearer " + "x" * 5000,
        b"Bearer crm_\xc3\xa6\xc3\xb8\xc3\xa5",
        b"Bearer crm_\xff\xfe",
    ],
)
def test_malformed_authorization_is_401(api: Api, authorization: str | bytes) -> None:
    header = (
        authorization.format(admin=api.tenant.tokens["admin"])
        if isinstance(authorization, str)
        else authorization
    )
    r = api.client.get(ME, headers={"Authorization": header})
    assert_problem(r, 401)


def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    r = api.client.get(ME, headers={"Authorization": f"bearer {api.tenant.tokens['read']}"})
    assert r.status_code == 200, r.text
