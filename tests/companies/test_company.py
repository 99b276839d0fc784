"""The company settings: GET and PATCH /api/v1/company (PATCH needs admin)."""

from __future__ import annotations

import pytest

from tests.conftest import Api, assert_problem
from tests.helpers import COMPANY, ME, assert_loc

NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"


def test_get_company(api: Api) -> None:
    r = api.get(COMPANY)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == str(api.tenant.company.id)
    assert body["slug"] == "acme"
    assert body["name"] == api.tenant.company.name
    assert body["base_currency"] == "DKK"
    assert body["credit_check"] == "balance"
    assert body["credit_enforcement"] == "warn"
    assert r.headers.get("etag")


@pytest.mark.parametrize("scope", ["read", "write"])
def test_get_company_with_any_scope(api: Api, scope: str) -> None:
    assert api.as_(scope).get(COMPANY).json()["slug"] == "acme"


def test_patch_company_name(api: Api) -> None:
    r = api.patch(COMPANY, json={"name": "Acme Foods A/S"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Acme Foods A/S"
    assert api.get(COMPANY).json()["name"] == "Acme Foods A/S"
    assert api.get(ME).json()["company"]["name"] == "Acme Foods A/S"


def test_patch_company_credit_check(api: Api) -> None:
    r = api.patch(COMPANY, json={"credit_check": "balance_plus_uninvoiced"})
    assert r.status_code == 200, r.text
    assert api.get(COMPANY).json()["credit_check"] == "balance_plus_uninvoiced"


def test_patch_company_credit_enforcement(api: Api) -> None:
    r = api.patch(COMPANY, json={"credit_enforcement": "block"})
    assert r.status_code == 200, r.text
    assert api.get(COMPANY).json()["credit_enforcement"] == "block"


def test_patch_company_changes_only_the_fields_sent(api: Api) -> None:
    before = api.get(COMPANY).json()
    assert api.patch(COMPANY, json={"credit_enforcement": "block"}).status_code == 200
    after = api.get(COMPANY).json()
    for key in ("name", "slug", "base_currency", "credit_check", "created_at"):
        assert after[key] == before[key], key


@pytest.mark.parametrize(("field", "value"), [("slug", "renamed"), ("base_currency", "EUR")])
def test_company_read_only_field_is_422(api: Api, field: str, value: str) -> None:
    before = api.get(COMPANY).json()
    body = assert_problem(api.patch(COMPANY, json={field: value}), 422)
    assert_loc(body, "body", field)
    assert api.get(COMPANY).json() == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("credit_check", "everything"),
        ("credit_enforcement", "shout"),
        ("name", ""),
        ("name", "x" * 201),
        ("name", None),
        ("credit_check", None),
        ("id", NO_SUCH_ID),
        ("created_at", "2024-01-01T00:00:00Z"),
    ],
)
def test_patch_company_with_invalid_value_is_422(api: Api, field: str, value: object) -> None:
    before = api.get(COMPANY).json()
    body = assert_problem(api.patch(COMPANY, json={field: value}), 422)
    assert_loc(body, "body", field)
    assert api.get(COMPANY).json() == before


@pytest.mark.parametrize("scope", ["read", "write"])
def test_patch_company_needs_admin(api: Api, scope: str) -> None:
    before = api.get(COMPANY).json()
    assert_problem(api.as_(scope).patch(COMPANY, json={"name": "Hijacked"}), 403)
    assert api.get(COMPANY).json() == before
