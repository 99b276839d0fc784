"""Fixtures of the accounting tests: the live fake e-conomic servers and an app that can use
them (a secret key, few retries, short waits and a short read timeout)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.core.config import Settings
from app.core.logging import configure_logging
from app.main import create_app
from tests.accounting.fake_economic import FakeEconomic, LiveServer, serve

ACCOUNTING_SETTINGS: dict[str, Any] = {
    "secret_key": "test-secret-key-123456",
    "accounting_retry_attempts": 2,
    "accounting_retry_max_wait": 0.2,
    "accounting_read_timeout": 0.5,
    "accounting_connect_timeout": 1.0,
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


@pytest.fixture
def accounting_settings(settings: Settings) -> Settings:
    return settings.model_copy(update=ACCOUNTING_SETTINGS)


@pytest.fixture
def app(accounting_settings: Settings, db: Any) -> Any:
    """Replaces the harness' app: ``client``, ``api`` and ``other_api`` use this one."""
    return create_app(accounting_settings, database=db)


@pytest.fixture(autouse=True)
def _logs_to_the_current_stderr() -> None:
    """structlog writes to the stream ``sys.stderr`` was when it was configured; capfd and
    CliRunner close theirs afterwards. Each test starts with logs on the live stderr."""
    configure_logging("INFO", json=True)
