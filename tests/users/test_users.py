"""Users: create (admin only), list and get; an email is unique within its company."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Api, assert_problem
from tests.helpers import USERS, assert_loc, create_user, walk

NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"


def test_list_users_shows_the_company_users(api: Api) -> None:
    r = api.get(USERS)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [(u["id"], u["name"], u["email"]) for u in items] == [
        (str(api.tenant.admin.id), "Admin", api.tenant.admin.email)
    ]


def test_create_user_answers_201_with_location(api: Api) -> None:
    r = api.post(USERS, json={"name": "Karen Sales", "email": "karen@acme.example"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "Karen Sales"
    assert body["email"] == "karen@acme.example"
    uuid.UUID(body["id"])
    assert r.headers["location"].endswith(f"/api/v1/users/{body['id']}")
    assert api.get(r.headers["location"]).json() == body


def test_created_user_appears_in_the_list(api: Api) -> None:
    user = create_user(api, name="Bo Buyer")
    assert user["id"] in [u["id"] for u in walk(api, USERS, limit=500)]


def test_list_users_pages_with_a_cursor(api: Api) -> None:
    for i in range(5):
        create_user(api, name=f"User {i}")
    items = walk(api, USERS, limit=2)
    assert len(items) == 6
    assert len({u["id"] for u in items}) == 6


def test_get_user_by_id(api: Api) -> None:
    user = create_user(api, name="Bo Buyer", email="bo@acme.example")
    r = api.get(f"{USERS}/{user['id']}")
    assert r.status_code == 200, r.text
    assert r.json() == user
    assert r.headers.get("etag")


def test_get_unknown_user_is_404(api: Api) -> None:
    assert_problem(api.get(f"{USERS}/{NO_SUCH_ID}"), 404)


def test_get_user_with_malformed_id_is_422(api: Api) -> None:
    body = assert_problem(api.get(f"{USERS}/not-a-uuid"), 422)
    assert_loc(body, "path", "user_id")


@pytest.mark.parametrize(
    "email", ["karen@acme.example", "KAREN@ACME.EXAMPLE", "Karen@Acme.Example"]
)
def test_duplicate_email_in_any_case_is_409(api: Api, email: str) -> None:
    create_user(api, email="karen@acme.example")
    before = len(walk(api, USERS, limit=500))
    r = api.post(USERS, json={"name": "Other Karen", "email": email})
    body = assert_problem(r, 409)
    assert_loc(body, "body", "email")
    assert len(walk(api, USERS, limit=500)) == before


def test_same_email_in_another_company_is_allowed(api: Api, other_api: Api) -> None:
    create_user(api, email="shared@example.com")
    assert create_user(other_api, email="shared@example.com")["email"] == "shared@example.com"


@pytest.mark.parametrize("email", ["not-an-email", "", "a@", "@b.example", "a b@c.example"])
def test_create_user_with_invalid_email_is_422(api: Api, email: str) -> None:
    body = assert_problem(api.post(USERS, json={"name": "X", "email": email}), 422)
    assert_loc(body, "body", "email")


def test_create_user_without_name_is_422(api: Api) -> None:
    body = assert_problem(api.post(USERS, json={"email": "x@acme.example"}), 422)
    assert_loc(body, "body", "name")


def test_create_user_with_unknown_field_is_422(api: Api) -> None:
    r = api.post(USERS, json={"name": "X", "email": "x@acme.example", "role": "boss"})
    body = assert_problem(r, 422)
    assert_loc(body, "body", "role")
    assert len(walk(api, USERS, limit=500)) == 1


@pytest.mark.parametrize("scope", ["read", "write"])
def test_create_user_needs_admin(api: Api, scope: str) -> None:
    r = api.as_(scope).post(USERS, json={"name": "X", "email": "x@acme.example"})
    assert_problem(r, 403, "insufficient_scope")
    assert len(walk(api, USERS, limit=500)) == 1
