"""The accounting connection under attack: no destination but a public https host, no stored
credential sent anywhere new, bounded answers, and run errors that tell nothing of what
answered."""

from __future__ import annotations

import socket
import tracemalloc
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.models import AccountingConnection
from tests.accounting.fake_economic import FakeEconomic, customer
from tests.accounting.helpers import (
    CONNECTION,
    TOKENS,
    connect,
    create_partner,
    ok,
    sync_failed,
    sync_ok,
)
from tests.conftest import Api, AppFor, assert_problem
from tests.core.listener import endless_json, listening
from tests.core.test_outbound import LOOPBACK_SPELLINGS, OTHER_REFUSED_HOSTS


def _api_with(app_for: AppFor, settings: Settings, db: Any, api: Api, **overrides: Any) -> Api:
    app = app_for(settings.model_copy(update=overrides), db)
    return Api(TestClient(app, raise_server_exceptions=False), api.tenant)


@pytest.fixture
def strict_api(app_for: AppFor, accounting_settings: Settings, db: Any, api: Api) -> Api:
    """The production defaults: https only, public addresses only."""
    return _api_with(
        app_for,
        accounting_settings,
        db,
        api,
        outbound_allow_http=False,
        outbound_allow_private=False,
    )


@pytest.fixture
def http_api(app_for: AppFor, accounting_settings: Settings, db: Any, api: Api) -> Api:
    """Plain http allowed, private addresses still refused: proves the address check alone."""
    return _api_with(
        app_for,
        accounting_settings,
        db,
        api,
        outbound_allow_http=True,
        outbound_allow_private=False,
    )


def _body(base_url: str) -> dict[str, Any]:
    return {
        "provider": "e-conomic",
        "base_url": base_url,
        "app_secret_token": TOKENS[0],
        "agreement_grant_token": TOKENS[1],
    }


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + OTHER_REFUSED_HOSTS)
def test_a_private_base_url_is_refused_in_every_spelling_and_never_contacted(
    http_api: Api, strict_api: Api, host: str
) -> None:
    with listening() as listener:
        for client, scheme in ((http_api, "http"), (strict_api, "https")):
            r = client.put(CONNECTION, json=_body(f"{scheme}://{host}:{listener.port}/api"))
            if r.status_code == 422 and r.json()["code"] == "validation_failed":
                continue  # not even a URL to the schema: refused all the same
            body = assert_problem(r, 422)
            assert body["code"] == "destination_not_allowed", body
            assert body["errors"][0]["loc"] == ["body", "base_url"]
        assert_problem(strict_api.get(CONNECTION), 404)  # nothing stored
    assert listener.connections == 0


def test_plain_http_is_refused_by_default(strict_api: Api) -> None:
    body = assert_problem(strict_api.put(CONNECTION, json=_body("http://restapi.example.com")), 422)
    assert body["code"] == "destination_not_allowed"


def test_a_name_resolving_to_a_private_address_fails_the_run_without_contacting_it(
    http_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.getaddrinfo

    def resolver(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "books.attacker.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port)))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with listening() as listener:
        ok(http_api.put(CONNECTION, json=_body(f"http://books.attacker.test:{listener.port}")))
        run = sync_failed(http_api, "destination_not_allowed")
    assert listener.connections == 0
    message = run["error"]["message"]
    assert str(listener.port) not in message
    assert "127.0.0.1" not in message
    assert "refused" not in message.lower()


def test_a_stored_private_base_url_is_refused_when_the_run_connects(
    http_api: Api, session: Any
) -> None:
    """A connection stored before the policy existed (or under laxer settings) is checked
    again on every run."""
    with listening() as listener:
        ok(http_api.put(CONNECTION, json=_body("http://books.example.com")))
        connection = session.query(AccountingConnection).one()
        connection.base_url = f"http://127.0.0.1:{listener.port}"
        session.commit()
        sync_failed(http_api, "destination_not_allowed")
    assert listener.connections == 0


def test_changing_only_base_url_keeps_no_credentials_and_sends_none(
    api: Api, economic: FakeEconomic
) -> None:
    """Credential exfiltration: an admin points the connection at its own listener, keeping
    the stored tokens; a write token then starts a sync."""
    economic.set_customers([customer(1, "10.00")])
    create_partner(api, accounting_ref="1")
    connect(api, economic)
    with listening() as listener:
        r = api.put(
            CONNECTION,
            json={"provider": "e-conomic", "base_url": f"http://127.0.0.1:{listener.port}"},
        )
        body = assert_problem(r, 422)
        assert body["code"] == "credentials_required"
        assert sorted(e["loc"][-1] for e in body["errors"]) == [
            "agreement_grant_token",
            "app_secret_token",
        ]
        # One credential is not enough either.
        r = api.put(
            CONNECTION,
            json={
                "provider": "e-conomic",
                "base_url": f"http://127.0.0.1:{listener.port}",
                "app_secret_token": "attacker-known",
            },
        )
        assert assert_problem(r, 422)["code"] == "credentials_required"
        assert ok(api.get(CONNECTION))["base_url"] == economic.base_url
        sync_ok(api.as_("write"))
    assert listener.connections == 0
    assert not any(token.encode() in listener.received for token in TOKENS)


def test_the_same_destination_keeps_the_stored_credentials(
    api: Api, economic: FakeEconomic
) -> None:
    connect(api, economic)
    ok(api.put(CONNECTION, json={"provider": "e-conomic", "base_url": economic.base_url + "/"}))
    ok(
        api.put(
            CONNECTION,
            json={"provider": "e-conomic", "base_url": economic.base_url, "enabled": False},
        )
    )
    read = ok(api.get(CONNECTION))
    assert read["app_secret_token_set"]
    assert read["agreement_grant_token_set"]
    assert read["enabled"] is False


def test_a_200_mb_answer_fails_the_run_with_flat_memory(
    app_for: AppFor, accounting_settings: Settings, db: Any, api: Api
) -> None:
    cap = 4 * 1024 * 1024
    capped = _api_with(app_for, accounting_settings, db, api, outbound_max_bytes=cap)
    with listening(endless_json) as listener:
        ok(capped.put(CONNECTION, json=_body(f"http://127.0.0.1:{listener.port}")))
        tracemalloc.start()
        try:
            run = sync_failed(capped, "response_too_large")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 4 * cap, peak  # about the cap, never the 200 MB sent
    assert "127.0.0.1" not in run["error"]["message"]
