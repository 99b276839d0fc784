"""The tokens never appear in a log line, a response body or an error message, whatever the
outcome; and ``crm accounting sync --company SLUG`` against the fake."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.accounting import service
from app.accounting.providers import economic as economic_module
from app.accounting.schemas import PUT_MODELS
from app.auth.dependencies import Principal
from app.cli import cli
from app.core.config import get_settings
from app.core.logging import configure_logging
from app.db.session import Database, build_engine
from app.models import Company, Partner
from app.models.enums import Scope
from app.partners import service as partner_service
from app.partners.schemas import PartnerCreate
from tests.accounting.conftest import PATIENT
from tests.accounting.fake_economic import (
    AGREEMENT_GRANT_TOKEN,
    APP_SECRET_TOKEN,
    HANG,
    FakeEconomic,
    customer,
)
from tests.accounting.helpers import (
    CONNECTION,
    RUNS,
    assert_no_secret,
    create_partner,
    events,
    sync_failed,
    sync_ok,
)
from tests.conftest import Api
from tests.factories import make_user


def test_no_token_in_logs_responses_or_errors(
    capfd: pytest.CaptureFixture[str],
    api: Api,
    impatient_api: Api,
    economic: FakeEconomic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure_logging("INFO", json=True)  # onto capfd's stderr, live only in this phase
    texts: list[str] = []

    def keep(response: Any) -> Any:
        texts.append(response.text)
        texts.append(str(response.headers))
        return response

    # Storing the connection, and a rejected PUT that carries the tokens too.
    r = api.put(
        CONNECTION,
        json={
            "provider": "e-conomic",
            "base_url": economic.base_url,
            "app_secret_token": APP_SECRET_TOKEN,
            "agreement_grant_token": AGREEMENT_GRANT_TOKEN,
        },
    )
    assert keep(r).status_code == 200
    r = api.put(
        CONNECTION,
        json={
            "provider": "nope",
            "base_url": economic.base_url,
            "app_secret_token": APP_SECRET_TOKEN,
            "agreement_grant_token": AGREEMENT_GRANT_TOKEN,
        },
    )
    assert keep(r).status_code == 422
    keep(api.get(CONNECTION))
    create_partner(api, accounting_ref="1")

    # A success after a retry.
    economic.set_customers([customer(1, "10.00"), customer(2, "20.00")])
    economic.add_fault("status", status=503, times=1)
    texts.append(json.dumps(sync_ok(api)))
    # 401: the fake echoes the tokens it was offered in its error body.
    economic.app_secret_token = "rotated"
    texts.append(json.dumps(sync_failed(api, "invalid_credentials")))
    economic.app_secret_token = APP_SECRET_TOKEN
    # 400 (its logId is logged), a hang, a redirect, a foreign nextPage.
    economic.add_fault("status", status=400, times=1)
    texts.append(json.dumps(sync_failed(api, "upstream_rejected_request")))
    # (The hang on the app with the short read timeout, which ends each of the two attempts.)
    hang = economic.add_fault("delay", seconds=HANG, times=2)
    texts.append(json.dumps(sync_failed(impatient_api, "upstream_timeout")))
    assert (hang.used, hang.completed) == (2, 0)
    economic.add_fault("redirect", status=302, url="http://localhost:9/", times=1)
    texts.append(json.dumps(sync_failed(api, "unexpected_redirect")))
    # A crash deep inside the provider, where the tokens sit in local variables.
    with monkeypatch.context() as m:

        def crash(item: Any) -> Any:
            raise RuntimeError("unexpected shape")

        m.setattr(economic_module.EconomicProvider, "_record", staticmethod(crash))
        texts.append(json.dumps(sync_failed(api, "internal_error")))
    texts.append(keep(api.get(RUNS, params={"limit": 500})).text)

    captured = capfd.readouterr()
    logs = captured.out + captured.err
    seen = events(logs)
    # The capture really holds the app's logs (else this test would prove nothing).
    for event in ("request", "accounting_retry", "sync_succeeded", "sync_failed", "sync_crashed"):
        assert event in seen, (event, seen)
    assert "accounting_request_rejected" in seen
    assert "log-400-0001" in logs  # the logId of the 400 is logged
    assert "Traceback" in logs or "RuntimeError" in logs  # the crash was logged in full
    assert_no_secret(logs, *texts)


def test_no_token_in_a_request_log_of_a_bad_connection_put(
    capfd: pytest.CaptureFixture[str], api: Api, economic: FakeEconomic
) -> None:
    configure_logging("INFO", json=True)
    r = api.put(
        CONNECTION,
        json={
            "provider": "e-conomic",
            "base_url": economic.base_url,
            "app_secret_token": APP_SECRET_TOKEN + " with a space",
            "agreement_grant_token": AGREEMENT_GRANT_TOKEN,
        },
    )
    assert r.status_code == 422
    captured = capfd.readouterr()
    assert "request" in events(captured.err + captured.out)
    assert_no_secret(r.text, captured.out, captured.err)


# -- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    for name, value in {
        "CRM_DATABASE_URL": url,
        "CRM_SECRET_KEY": "cli-secret-key-1234567890",
        "CRM_ACCOUNTING_RETRY_ATTEMPTS": "2",
        "CRM_ACCOUNTING_RETRY_MAX_WAIT": "0.2",
        # Generous: no test here makes the fake hang, and a slow machine must not add a retry.
        "CRM_ACCOUNTING_READ_TIMEOUT": str(PATIENT),
        "CRM_ACCOUNTING_CONNECT_TIMEOUT": str(PATIENT),
        "CRM_LOG_JSON": "true",
        "CRM_OUTBOUND_ALLOW_HTTP": "true",
        "CRM_OUTBOUND_ALLOW_PRIVATE": "true",
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def cli_company(cli_env: str, economic: FakeEconomic) -> dict[str, Any]:
    """A migrated database with a company, a connection to the fake and one partner."""
    assert invoke("migrate").exit_code == 0
    result = invoke("company", "create", "--slug", "cli-co", "--name", "CLI Co")
    assert result.exit_code == 0, result.output
    settings = get_settings()
    db = Database(build_engine(settings))
    try:
        with db.session() as session:
            company = session.scalar(select(Company).where(Company.slug == "cli-co"))
            assert company is not None
            service.put_connection(
                session=session,
                company_id=company.id,
                data=PUT_MODELS["e-conomic"](
                    provider="e-conomic",
                    base_url=economic.base_url,
                    app_secret_token=APP_SECRET_TOKEN,
                    agreement_grant_token=AGREEMENT_GRANT_TOKEN,
                ),
                secret_key=settings.secret_key,
                outbound=settings.outbound_policy,
            )
            user = make_user(session, company)
            principal = Principal(
                company=company, user=user, scope=Scope.admin, token_id=uuid.uuid4()
            )
            partner = partner_service.create(
                session=session,
                principal=principal,
                data=PartnerCreate(name="CLI Partner", country="DK", accounting_ref="1"),
            )
            return {"company_id": company.id, "partner_id": partner.id}
    finally:
        db.dispose()


def stored_balance(partner_id: Any) -> Any:
    db = Database(build_engine(get_settings()))
    try:
        with db.session() as session:
            return session.scalar(select(Partner.debtor_balance).where(Partner.id == partner_id))
    finally:
        db.dispose()


def reason_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("crm:")]


def test_cli_sync_succeeds(cli_company: dict[str, Any], economic: FakeEconomic) -> None:
    economic.set_customers([customer(1, "1234.50"), customer(2, "1.00"), customer(3, "2.00")])
    result = invoke("accounting", "sync", "--company", "cli-co")
    assert result.exit_code == 0, result.output
    assert "succeeded: fetched 3, updated 1, unchanged 0, unmatched 2" in result.stdout
    assert "Traceback" not in result.output
    assert_no_secret(result.output, result.stderr)
    assert str(stored_balance(cli_company["partner_id"])) == "1234.50"
    # Both tokens went to the fake.
    assert economic.requests[-1].headers["x-appsecrettoken"] == APP_SECRET_TOKEN


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("401", "invalid_credentials"),
        ("503", "upstream_error"),
        ("malformed", "malformed_response"),
    ],
)
def test_cli_sync_failure_is_one_line_and_non_zero(
    cli_company: dict[str, Any], economic: FakeEconomic, fault: str, code: str
) -> None:
    economic.set_customers([customer(1, "99.00")])
    if fault == "401":
        economic.agreement_grant_token = "rotated"
    elif fault == "503":
        economic.add_fault("status", status=503)
    else:
        economic.add_fault("malformed")
    result = invoke("accounting", "sync", "--company", "cli-co")
    assert result.exit_code != 0
    lines = reason_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "failed" in lines[0], lines
    assert code in lines[0], lines
    assert "Traceback" not in result.output
    assert_no_secret(result.output, result.stderr, *lines)
    assert stored_balance(cli_company["partner_id"]) is None


def test_cli_check_proves_the_credentials_and_stores_nothing(
    cli_company: dict[str, Any], economic: FakeEconomic
) -> None:
    economic.set_customers([customer(1, "99.00")])
    result = invoke("accounting", "check", "--company", "cli-co")
    assert result.exit_code == 0, result.output
    assert "accepted the credentials" in result.stdout
    assert [r.path for r in economic.requests] == ["/self"]
    assert stored_balance(cli_company["partner_id"]) is None
    economic.agreement_grant_token = "rotated"  # the grant was revoked
    result = invoke("accounting", "check", "--company", "cli-co")
    assert result.exit_code != 0
    lines = reason_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "invalid_credentials" in lines[0], result.stderr
    assert_no_secret(result.output, result.stderr)


def test_cli_sync_of_an_unknown_company(cli_company: dict[str, Any]) -> None:
    result = invoke("accounting", "sync", "--company", "no-such-co")
    assert result.exit_code != 0
    lines = reason_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "no-such-co" in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_cli_sync_while_a_run_is_running(
    cli_company: dict[str, Any], economic: FakeEconomic
) -> None:
    db = Database(build_engine(get_settings()))
    try:
        with db.session() as session:
            service.start_run(
                session=session,
                company_id=cli_company["company_id"],
                trigger="api",
                settings=get_settings(),
            )
    finally:
        db.dispose()
    result = invoke("accounting", "sync", "--company", "cli-co")
    assert result.exit_code != 0
    lines = reason_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert "already running" in lines[0], result.stderr
    assert economic.requests == []
