"""Tokens name their company: looked up by (company_id, token_hash), never across companies;
tokens minted before they carried a company still work."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.auth.tokens import company_of, hash_secret
from app.models import ApiToken
from tests.conftest import Api, assert_problem

ME = "/api/v1/me"
TOKENS = "/api/v1/tokens"


def test_a_new_token_names_its_company(api: Api) -> None:
    secret = api.post(TOKENS, json={"name": "t", "scope": "read"}).json()["token"]
    assert company_of(secret) == api.tenant.company.id
    assert api.client.get(ME, headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_a_token_whose_company_part_names_another_company_is_refused(
    api: Api, other_api: Api
) -> None:
    secret = api.tenant.tokens["read"]
    theirs = other_api.tenant.tokens["read"]
    forged = secret[:-22] + theirs[-22:]  # this company's secret, the other company's part
    assert company_of(forged) == other_api.tenant.company.id
    r = api.client.get(ME, headers={"Authorization": f"Bearer {forged}"})
    assert_problem(r, 401, "invalid_token")


def test_a_token_of_the_old_form_still_authenticates(api: Api, session: Session) -> None:
    """Tokens made before they carried a company: ``crm_`` and the secret alone."""
    legacy = "crm_" + "L" * 43
    assert company_of(legacy) is None
    session.execute(
        update(ApiToken)
        .where(ApiToken.company_id == api.tenant.company.id, ApiToken.scope == "read")
        .values(token_hash=hash_secret(legacy))
    )
    session.flush()
    r = api.client.get(ME, headers={"Authorization": f"Bearer {legacy}"})
    assert r.status_code == 200, r.text
    assert r.json()["company"]["slug"] == api.tenant.company.slug


def test_malformed_company_parts_name_no_company() -> None:
    secret = "crm_" + "a" * 43
    assert company_of(secret + "_" + "!" * 22) is None
    assert company_of(secret + "-" + "A" * 22) is None
    assert company_of(secret + "_" + "A" * 21) is None
    part = "AAAAAAAAAAAAAAAAAAAAAA"
    assert company_of(secret + "_" + part) == uuid.UUID(int=0)
