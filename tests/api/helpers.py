"""Shared helpers for the HTTP API tests: every call goes through the public API."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from tests.conftest import Api

PARTNERS = "/api/v1/partners"
TAGS = "/api/v1/tags"
USERS = "/api/v1/users"
TOKENS = "/api/v1/tokens"
ME = "/api/v1/me"
COMPANY = "/api/v1/company"

STAGES = ("lead", "potential", "active", "inactive", "lost")


def create_partner(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"name": "Nordic Deli A/S", "country": "DK", **fields}
    r = api.post(PARTNERS, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def get_partner(api: Api, number: int) -> dict[str, Any]:
    r = api.get(f"{PARTNERS}/{number}")
    assert r.status_code == 200, r.text
    return r.json()


def create_tag(api: Api, name: str) -> dict[str, Any]:
    r = api.post(TAGS, json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()


def create_user(api: Api, name: str = "Sales Person", email: str | None = None) -> dict[str, Any]:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    r = api.post(USERS, json={"name": name, "email": email})
    assert r.status_code == 201, r.text
    return r.json()


def create_token(
    api: Api, scope: str, *, user_id: str | None = None, name: str = "test"
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "scope": scope}
    if user_id is not None:
        body["user_id"] = user_id
    r = api.post(TOKENS, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def with_token(api: Api, secret: str) -> Api:
    """The same client, authenticating with another token of the same company."""
    tenant = dataclasses.replace(api.tenant, tokens={**api.tenant.tokens, "custom": secret})
    return Api(api.client, tenant, "custom")


def partner_count(api: Api) -> int:
    r = api.get(PARTNERS, params={"include_total": "true", "limit": 1})
    assert r.status_code == 200, r.text
    total = r.json()["total"]
    assert isinstance(total, int)
    return total


def walk(api: Api, path: str, *, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, following next_cursor page by page."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {**params, "limit": limit}
        if cursor:
            query["cursor"] = cursor
        r = api.get(path, params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= limit
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items
        assert body["items"], "a page with a next_cursor must not be empty"
    raise AssertionError("the cursor never ended")


def numbers(items: Sequence[dict[str, Any]]) -> list[int]:
    return [item["number"] for item in items]


def locs(problem: dict[str, Any]) -> list[list[Any]]:
    return [e["loc"] for e in problem.get("errors", [])]


def assert_loc(problem: dict[str, Any], *loc: Any) -> None:
    """Some entry of errors[] names the field ``loc`` (or something inside it)."""
    want = list(loc)
    assert any(list(got[: len(want)]) == want for got in locs(problem)), problem


def set_partner_columns(
    session: Session, company_id: uuid.UUID, number: int, **values: Any
) -> None:
    """Set columns the API keeps read-only (balances, timestamps...), for list tests."""
    from app.models import Partner

    result = session.execute(
        update(Partner)
        .where(Partner.company_id == company_id, Partner.number == number)
        .values(**values)
    )
    assert result.rowcount == 1
    session.commit()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
