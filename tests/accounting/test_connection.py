"""PUT/GET /api/v1/accounting/connection: write-only tokens, encrypted at rest, the secret key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.main import create_app
from app.models import AccountingConnection
from tests.accounting.fake_economic import AGREEMENT_GRANT_TOKEN, APP_SECRET_TOKEN, FakeEconomic
from tests.accounting.helpers import (
    CONNECTION,
    SYNC,
    assert_no_secret,
    connect,
    create_partner,
    get_partner,
    ok,
    start_sync,
    sync_failed,
    sync_ok,
)
from tests.conftest import Api, assert_problem

READ_FIELDS = {
    "provider",
    "base_url",
    "token_url",
    "enabled",
    "app_secret_token_set",
    "agreement_grant_token_set",
    "updated_at",
}


@pytest.fixture
def api_with_key(db: Any, api: Api, accounting_settings: Settings) -> Iterator[Any]:
    """A factory: the same tenant, served by an app with another CRM_SECRET_KEY."""
    clients: list[TestClient] = []

    def make(secret_key: str) -> Api:
        app = create_app(accounting_settings.model_copy(update={"secret_key": secret_key}), db)
        client = TestClient(app, raise_server_exceptions=False)
        clients.append(client)
        return Api(client, api.tenant)

    yield make
    for client in clients:
        client.close()


def test_no_connection_yet(api: Api) -> None:
    assert_problem(api.get(CONNECTION), 404, "accounting_not_connected")
    assert_problem(api.post(SYNC), 409, "accounting_not_connected")


def test_put_then_get_shows_only_whether_tokens_are_set(api: Api, economic: FakeEconomic) -> None:
    r = api.put(
        CONNECTION,
        json={
            "provider": "e-conomic",
            "base_url": economic.base_url,
            "app_secret_token": APP_SECRET_TOKEN,
            "agreement_grant_token": AGREEMENT_GRANT_TOKEN,
        },
    )
    body = ok(r)
    assert set(body) == READ_FIELDS
    assert body["provider"] == "e-conomic"
    assert body["base_url"] == economic.base_url
    assert body["enabled"] is True
    assert body["app_secret_token_set"] is True
    assert body["agreement_grant_token_set"] is True
    assert body["updated_at"].endswith("Z")
    assert_no_secret(r.text, str(r.headers))

    r = api.get(CONNECTION)
    assert ok(r) == body
    assert_no_secret(r.text, str(r.headers))


def test_default_base_url_is_e_conomic(api: Api) -> None:
    body = ok(
        api.put(
            CONNECTION,
            json={
                "provider": "e-conomic",
                "app_secret_token": APP_SECRET_TOKEN,
                "agreement_grant_token": AGREEMENT_GRANT_TOKEN,
            },
        )
    )
    assert body["base_url"] == "https://restapi.e-conomic.com"


def test_tokens_are_encrypted_at_rest(api: Api, economic: FakeEconomic, session: Session) -> None:
    connect(api, economic)
    session.expire_all()
    stored = session.scalar(
        select(AccountingConnection).where(AccountingConnection.company_id == api.tenant.company.id)
    )
    assert stored is not None
    for column in ("credentials", "base_url", "provider"):
        assert_no_secret(str(getattr(stored, column)))
    assert stored.credentials  # something is stored, just not in the clear


def test_first_put_without_tokens_is_credentials_required(api: Api, economic: FakeEconomic) -> None:
    r = api.put(CONNECTION, json={"provider": "e-conomic", "base_url": economic.base_url})
    body = assert_problem(r, 422, "credentials_required")
    locs = sorted(tuple(e["loc"]) for e in body["errors"])
    assert locs == [("body", "agreement_grant_token"), ("body", "app_secret_token")]
    assert_problem(api.get(CONNECTION), 404, "accounting_not_connected")


def test_first_put_with_one_token_names_the_missing_one(api: Api, economic: FakeEconomic) -> None:
    r = api.put(
        CONNECTION,
        json={"provider": "e-conomic", "base_url": economic.base_url, "app_secret_token": "x1"},
    )
    body = assert_problem(r, 422, "credentials_required")
    assert [tuple(e["loc"]) for e in body["errors"]] == [("body", "agreement_grant_token")]
    assert "x1" not in r.text
    assert_problem(api.get(CONNECTION), 404, "accounting_not_connected")


def test_a_later_put_without_tokens_keeps_the_stored_ones(api: Api, economic: FakeEconomic) -> None:
    connect(api, economic)
    p = create_partner(api, accounting_ref="101")
    economic.set_customers([{"customerNumber": 101, "balance": 5, "name": "A"}])

    body = ok(
        api.put(
            CONNECTION,
            json={"provider": "e-conomic", "base_url": economic.base_url, "enabled": False},
        )
    )
    assert body["enabled"] is False
    assert body["app_secret_token_set"] is True
    assert body["agreement_grant_token_set"] is True
    assert_problem(api.post(SYNC), 409, "accounting_not_connected")
    assert economic.requests == []

    ok(api.put(CONNECTION, json={"provider": "e-conomic", "base_url": economic.base_url}))
    sync_ok(api)  # the fake only answers the original tokens
    assert get_partner(api, p["number"])["debtor_balance"] == "5.00"


def test_replacing_one_token_keeps_the_other(api: Api, economic: FakeEconomic) -> None:
    connect(api, economic)
    economic.agreement_grant_token = "rotated-grant-token-0123456789"
    sync_failed(api, "invalid_credentials")

    body = ok(
        api.put(
            CONNECTION,
            json={
                "provider": "e-conomic",
                "base_url": economic.base_url,
                "agreement_grant_token": "rotated-grant-token-0123456789",
            },
        )
    )
    assert "rotated-grant-token-0123456789" not in str(body)
    sync_ok(api)
    last = economic.requests[-1]
    assert last.headers["x-appsecrettoken"] == APP_SECRET_TOKEN
    assert last.headers["x-agreementgranttoken"] == "rotated-grant-token-0123456789"


def test_the_base_url_decides_where_the_sync_goes(
    api: Api, economic: FakeEconomic, foreign: FakeEconomic
) -> None:
    connect(api, economic, base_url=foreign.base_url + "/")
    assert ok(api.get(CONNECTION))["base_url"] == foreign.base_url
    sync_ok(api)
    assert economic.requests == []
    assert [r.path for r in foreign.requests] == ["/customers"]


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"provider": "quickbooks"}, "provider"),
        ({"provider": "fortnox"}, "app_secret_token"),  # another provider's fields
        ({"provider": None}, "provider"),
        ({"base_url": "not a url"}, "base_url"),
        ({"base_url": "ftp://example.com"}, "base_url"),
        ({"enabled": "sometimes"}, "enabled"),
        ({"app_secret_token": ""}, "app_secret_token"),
        ({"app_secret_token": "has a space-" + APP_SECRET_TOKEN}, "app_secret_token"),
        ({"agreement_grant_token": "x" * 501}, "agreement_grant_token"),
        ({"agreement_grant_token": 12345}, "agreement_grant_token"),
        ({"app_secret_token_set": True}, "app_secret_token_set"),
        ({"secret": "x"}, "secret"),
    ],
)
def test_bad_connection_bodies_are_422_and_change_nothing(
    api: Api, economic: FakeEconomic, change: dict[str, Any], loc: str
) -> None:
    before = connect(api, economic)
    body = {
        "provider": "e-conomic",
        "base_url": economic.base_url,
        "app_secret_token": "new-app-" + APP_SECRET_TOKEN,
        "agreement_grant_token": "new-grant-" + AGREEMENT_GRANT_TOKEN,
        **change,
    }
    r = api.put(CONNECTION, json=body)
    problem = assert_problem(r, 422)
    assert any(loc in e["loc"] for e in problem["errors"]), problem
    assert_no_secret(r.text)
    assert "new-app-" not in r.text
    assert "new-grant-" not in r.text
    assert ok(api.get(CONNECTION)) == before
    sync_ok(api)  # the original tokens are still the ones used
    assert economic.requests[-1].headers["x-appsecrettoken"] == APP_SECRET_TOKEN


def test_not_json_is_422(api: Api) -> None:
    r = api.put(CONNECTION, content=b"{not json", headers={"Content-Type": "application/json"})
    assert_problem(r, 422)


@pytest.mark.parametrize("secret_key", ["", "too-short"])
def test_without_a_secret_key_the_connection_cannot_be_stored(
    api_with_key: Any, economic: FakeEconomic, secret_key: str
) -> None:
    api = api_with_key(secret_key)
    r = api.put(
        CONNECTION,
        json={
            "provider": "e-conomic",
            "base_url": economic.base_url,
            "app_secret_token": APP_SECRET_TOKEN,
            "agreement_grant_token": AGREEMENT_GRANT_TOKEN,
        },
    )
    assert_problem(r, 409, "secret_key_not_configured")
    assert_no_secret(r.text)
    assert_problem(api.get(CONNECTION), 404, "accounting_not_connected")


def test_a_stored_connection_without_the_secret_key_fails_the_run_clearly(
    api: Api, api_with_key: Any, economic: FakeEconomic
) -> None:
    connect(api, economic)
    keyless = api_with_key("")
    body = ok(keyless.get(CONNECTION))
    assert body["app_secret_token_set"] is False  # cannot be read without the key
    _, run = start_sync(keyless)
    assert run["status"] == "failed"
    assert run["error"]["code"] == "secret_key_not_configured"
    assert economic.requests == []
    # A PUT without tokens cannot keep tokens it cannot read.
    r = keyless.put(CONNECTION, json={"provider": "e-conomic", "base_url": economic.base_url})
    assert_problem(r, 409, "secret_key_not_configured")


def test_a_changed_secret_key_makes_stored_tokens_unreadable(
    api: Api, api_with_key: Any, economic: FakeEconomic
) -> None:
    connect(api, economic)
    rekeyed = api_with_key("another-secret-key-987654")
    body = ok(rekeyed.get(CONNECTION))
    assert body["app_secret_token_set"] is False
    assert body["agreement_grant_token_set"] is False
    _, run = start_sync(rekeyed)
    assert run["status"] == "failed"
    assert run["error"]["code"] == "credentials_unreadable"
    assert economic.requests == []
    # Storing both tokens again under the new key repairs it.
    connect(rekeyed, economic)
    sync_ok(rekeyed)
