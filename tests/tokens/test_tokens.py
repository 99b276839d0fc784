"""API tokens: the secret shown once, scopes, the user a token acts as, revocation; and /me."""

from __future__ import annotations

import pytest

from tests.conftest import Api, assert_problem
from tests.helpers import (
    ME,
    PARTNERS,
    TOKENS,
    USERS,
    assert_loc,
    create_token,
    create_user,
    walk,
    with_token,
)

NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"


# --- tokens -------------------------------------------------------------------------------


def test_create_token_shows_the_secret_once(api: Api) -> None:
    r = api.post(TOKENS, json={"name": "nightly export", "scope": "read"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert isinstance(body["token"], str)
    assert len(body["token"]) >= 32
    assert body["scope"] == "read"
    assert body["name"] == "nightly export"
    assert body["user"] == {"id": str(api.tenant.admin.id), "name": "Admin"}
    assert body["token"].startswith(body["prefix"])
    assert r.headers["location"].endswith(f"/api/v1/tokens/{body['id']}")
    assert "no-store" in r.headers.get("cache-control", "")


def test_token_list_never_includes_the_secret(api: Api) -> None:
    token = create_token(api, "read")
    r = api.get(TOKENS, params={"limit": 500})
    assert r.status_code == 200, r.text
    assert token["token"] not in r.text
    for item in r.json()["items"]:
        assert "token" not in item
        assert "token_hash" not in item
        assert "secret" not in item
    assert token["id"] in [t["id"] for t in r.json()["items"]]
    for secret in api.tenant.tokens.values():
        assert secret not in r.text


def test_token_get_never_includes_the_secret(api: Api) -> None:
    token = create_token(api, "write")
    r = api.get(f"{TOKENS}/{token['id']}")
    assert r.status_code == 200, r.text
    assert token["token"] not in r.text
    assert "token" not in r.json()
    expected = {k: v for k, v in token.items() if k != "token"}
    assert r.json() == expected


def test_get_unknown_token_is_404(api: Api) -> None:
    assert_problem(api.get(f"{TOKENS}/{NO_SUCH_ID}"), 404)


def test_two_tokens_have_different_secrets(api: Api) -> None:
    assert create_token(api, "read")["token"] != create_token(api, "read")["token"]


def test_new_read_token_can_read_but_not_write(api: Api) -> None:
    reader = with_token(api, create_token(api, "read")["token"])
    assert reader.get(PARTNERS).status_code == 200
    assert_problem(reader.post(PARTNERS, json={"name": "X", "country": "DK"}), 403)
    assert reader.get(ME).json()["scope"] == "read"


def test_new_write_token_can_write_but_not_administer(api: Api) -> None:
    writer = with_token(api, create_token(api, "write")["token"])
    assert writer.post(PARTNERS, json={"name": "X", "country": "DK"}).status_code == 201
    assert_problem(writer.get(TOKENS), 403)


def test_new_admin_token_can_administer(api: Api) -> None:
    admin = with_token(api, create_token(api, "admin")["token"])
    assert admin.get(TOKENS).status_code == 200
    assert admin.post(USERS, json={"name": "Y", "email": "y@acme.example"}).status_code == 201


def test_token_for_another_user_acts_as_that_user(api: Api) -> None:
    user = create_user(api, name="Bo Buyer")
    token = create_token(api, "read", user_id=user["id"])
    assert token["user"] == {"id": user["id"], "name": "Bo Buyer"}
    me = with_token(api, token["token"]).get(ME).json()
    assert me["user"]["id"] == user["id"]


def test_token_for_unknown_user_is_422(api: Api) -> None:
    r = api.post(TOKENS, json={"scope": "read", "user_id": NO_SUCH_ID})
    body = assert_problem(r, 422)
    assert_loc(body, "body", "user_id")


@pytest.mark.parametrize("scope", ["superuser", "", "READ", None])
def test_token_with_unknown_scope_is_422(api: Api, scope: object) -> None:
    body = assert_problem(api.post(TOKENS, json={"name": "x", "scope": scope}), 422)
    assert_loc(body, "body", "scope")


def test_delete_token_revokes_it_at_once(api: Api) -> None:
    token = create_token(api, "write")
    user = with_token(api, token["token"])
    assert user.get(ME).status_code == 200
    r = api.delete(f"{TOKENS}/{token['id']}")
    assert r.status_code == 204
    assert_problem(user.get(ME), 401)
    assert_problem(user.get(PARTNERS), 401)
    assert_problem(api.get(f"{TOKENS}/{token['id']}"), 404)


def test_revoked_token_is_gone_from_the_list(api: Api) -> None:
    token = create_token(api, "read")
    assert api.delete(f"{TOKENS}/{token['id']}").status_code == 204
    assert token["id"] not in [t["id"] for t in walk(api, TOKENS, limit=500)]


def test_revoking_the_token_in_use_locks_it_out(api: Api) -> None:
    token = create_token(api, "admin")
    own = with_token(api, token["token"])
    assert own.delete(f"{TOKENS}/{token['id']}").status_code == 204
    assert_problem(own.get(ME), 401)
    assert api.get(ME).status_code == 200


def test_delete_unknown_token_is_404(api: Api) -> None:
    assert_problem(api.delete(f"{TOKENS}/{NO_SUCH_ID}"), 404)


def test_delete_token_twice_is_404_the_second_time(api: Api) -> None:
    token = create_token(api, "read")
    assert api.delete(f"{TOKENS}/{token['id']}").status_code == 204
    assert_problem(api.delete(f"{TOKENS}/{token['id']}"), 404)


# --- /me ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "scopes"),
    [("read", ["read"]), ("write", ["read", "write"]), ("admin", ["read", "write", "admin"])],
)
def test_me_returns_user_company_and_scope(api: Api, scope: str, scopes: list[str]) -> None:
    r = api.as_(scope).get(ME)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["id"] == str(api.tenant.admin.id)
    assert body["user"]["name"] == "Admin"
    assert body["user"]["email"] == api.tenant.admin.email
    assert body["company"]["id"] == str(api.tenant.company.id)
    assert body["company"]["slug"] == "acme"
    assert body["company"]["name"] == api.tenant.company.name
    assert body["scope"] == scope
    assert sorted(body["scopes"]) == sorted(scopes)


def test_me_of_the_other_company_shows_that_company(other_api: Api) -> None:
    body = other_api.get(ME).json()
    assert body["company"]["slug"] == "globex"
