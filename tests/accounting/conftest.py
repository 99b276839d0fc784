"""Fixtures of the accounting tests: the live fake e-conomic servers and an app that can use
them (a secret key, few retries and short waits).

Timeouts are generous (``PATIENT``): on a slow, loaded machine (two busy cores, a long garbage
collection in the test process) an answer of the fake can take far longer than usual, and a
short read timeout would turn it into a retry that a test then counts, or into a failure. Only
tests that make the fake hang on purpose use ``SHORT_READ_TIMEOUT`` (``impatient_settings``,
``impatient_api``), with hangs (``fake_economic.HANG``) far longer than it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.logging import configure_logging
from tests.accounting.fake_economic import FakeEconomic, LiveServer, serve
from tests.accounting.fake_oauth import (
    PROVIDERS,
    FakeFortnox,
    FakeVisma,
    FakeXero,
    OAuthFake,
    serve_oauth,
)
from tests.conftest import Api, AppFor

PATIENT = 30.0  # seconds: no answer of the fake is this slow unless a test makes it hang
SHORT_READ_TIMEOUT = 1.0  # seconds: only where a test provokes a hang, which this ends

ACCOUNTING_SETTINGS: dict[str, Any] = {
    "secret_key": "test-secret-key-123456",
    "accounting_retry_attempts": 2,
    "accounting_retry_max_wait": 0.2,
    "accounting_read_timeout": PATIENT,
    "accounting_connect_timeout": PATIENT,
    # The fakes listen on plain http on loopback; production refuses both.
    "outbound_allow_http": True,
    "outbound_allow_private": True,
}


@pytest.fixture(scope="session")
def economic_server() -> Iterator[tuple[FakeEconomic, LiveServer]]:
    fake = FakeEconomic()
    with serve(fake) as server:
        yield fake, server


@pytest.fixture(scope="session")
def foreign_server() -> Iterator[tuple[FakeEconomic, LiveServer]]:
    """A second server: where a hostile nextPage or redirect would lead."""
    fake = FakeEconomic()
    with serve(fake) as server:
        yield fake, server


@pytest.fixture
def economic(economic_server: tuple[FakeEconomic, LiveServer]) -> Iterator[FakeEconomic]:
    """The fake e-conomic, well-behaved and empty at the start of each test."""
    fake = economic_server[0]
    fake.reset()
    yield fake
    fake.reset()  # also releases a handler still hanging


@pytest.fixture
def foreign(foreign_server: tuple[FakeEconomic, LiveServer]) -> Iterator[FakeEconomic]:
    fake = foreign_server[0]
    fake.reset()
    yield fake
    fake.reset()


# -- the OAuth2 providers' fakes (tests/accounting/fake_oauth.py): API and token endpoint on one
# port each, one server per provider for the whole session, reset around every test.


@pytest.fixture(scope="session")
def fortnox_server() -> Iterator[tuple[FakeFortnox, LiveServer]]:
    fake = FakeFortnox()
    with serve_oauth(fake) as server:
        yield fake, server


@pytest.fixture(scope="session")
def xero_server() -> Iterator[tuple[FakeXero, LiveServer]]:
    fake = FakeXero()
    with serve_oauth(fake) as server:
        yield fake, server


@pytest.fixture(scope="session")
def visma_server() -> Iterator[tuple[FakeVisma, LiveServer]]:
    fake = FakeVisma()
    with serve_oauth(fake) as server:
        yield fake, server


@pytest.fixture
def fortnox(fortnox_server: tuple[FakeFortnox, LiveServer]) -> Iterator[FakeFortnox]:
    """The fake Fortnox, well-behaved and empty, with its first refresh token."""
    fake = fortnox_server[0]
    fake.reset()
    yield fake
    fake.reset()  # also releases a handler still hanging


@pytest.fixture
def xero(xero_server: tuple[FakeXero, LiveServer]) -> Iterator[FakeXero]:
    """The fake Xero, well-behaved and empty, with its first refresh token and its tenant."""
    fake = xero_server[0]
    fake.reset()
    yield fake
    fake.reset()


@pytest.fixture
def visma(visma_server: tuple[FakeVisma, LiveServer]) -> Iterator[FakeVisma]:
    """The fake Visma eAccounting, well-behaved and empty, with its first refresh token."""
    fake = visma_server[0]
    fake.reset()
    yield fake
    fake.reset()


OAUTH_FIXTURES = {"fortnox": "fortnox", "xero": "xero", "visma-eaccounting": "visma"}


@pytest.fixture(params=PROVIDERS)
def oauth_fake(request: pytest.FixtureRequest) -> OAuthFake:
    """Each of the three OAuth2 fakes in turn (a test using it runs once per provider)."""
    fake: OAuthFake = request.getfixturevalue(OAUTH_FIXTURES[request.param])
    return fake


@pytest.fixture
def accounting_settings(settings: Settings) -> Settings:
    return settings.model_copy(update=ACCOUNTING_SETTINGS)


@pytest.fixture
def impatient_settings(accounting_settings: Settings) -> Settings:
    """The accounting settings with a short read timeout: for the tests that make the fake hang
    on purpose (and check that the timeout ends the hang)."""
    return accounting_settings.model_copy(update={"accounting_read_timeout": SHORT_READ_TIMEOUT})


@pytest.fixture
def app(app_for: AppFor, accounting_settings: Settings, db: Any) -> Any:
    """Replaces the harness' app: ``client``, ``api`` and ``other_api`` use this one."""
    return app_for(accounting_settings, db)


@pytest.fixture
def impatient_api(
    app_for: AppFor, db: Any, api: Api, impatient_settings: Settings
) -> Iterator[Api]:
    """``api``'s company and database on an app with the short read timeout: only for the runs
    that meet a deliberate hang (the runs before and after it use ``api``)."""
    app = app_for(impatient_settings, db)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, api.tenant)


@pytest.fixture(autouse=True)
def _logs_to_the_current_stderr() -> None:
    """structlog writes to the stream ``sys.stderr`` was when it was configured; capfd and
    CliRunner close theirs afterwards. Each test starts with logs on the live stderr."""
    configure_logging("INFO", json=True)
