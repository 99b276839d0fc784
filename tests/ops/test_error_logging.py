"""An unexpected database error is logged without the values bound to its statement.

A route is made to run a failing statement that carries a secret as a bound parameter. The
answer is a plain 500, and the log line of the error names the statement and the error class
but holds the secret nowhere: not as ``[parameters: ...]`` (the engine hides them) and not in
the database's own message either (PostgreSQL quotes the offending input in it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient
from sqlalchemy import Engine, literal, select, text
from sqlalchemy.exc import DataError, StatementError

from app.core.config import Settings
from app.core.logging import configure_logging, safe_exception_text
from app.db.base import UTCDateTime
from app.db.session import build_engine
from app.main import create_app
from app.partners.repository import PartnerRepository
from tests.conftest import Api, RollbackDatabase, assert_problem
from tests.ops.test_operations import log_records

SECRET = "s3cret-bound-value-4711"

FreshClient = Callable[[], AbstractContextManager[TestClient]]


@pytest.fixture
def fresh_client(
    settings: Settings, db: RollbackDatabase, capfd: pytest.CaptureFixture[str]
) -> FreshClient:
    """A client of an app made in the test body, so its logs go to the stream capfd reads."""

    @contextmanager
    def make() -> Iterator[TestClient]:
        saved = structlog.get_config()
        app = create_app(settings, database=db)
        try:
            with TestClient(app, raise_server_exceptions=False) as c:
                capfd.readouterr()
                yield c
        finally:
            structlog.configure(**saved)

    return make


def _failing_statement(self: PartnerRepository, *args: Any, **kwargs: Any) -> Any:
    """A statement the database refuses, with SECRET bound (not written into the SQL)."""
    if self.session.get_bind().dialect.name == "postgresql":
        # invalid input syntax for type integer: "<the secret>"
        self.session.execute(text("SELECT CAST(:secret AS INTEGER)"), {"secret": SECRET})
    else:
        # string or blob too big (sqlite3.DataError)
        self.session.execute(
            text("SELECT zeroblob(:size), :secret"), {"size": 2**40, "secret": SECRET}
        )
    raise AssertionError("the statement should have failed")


def _failing_bind(self: PartnerRepository, *args: Any, **kwargs: Any) -> Any:
    """A bound value the column type refuses before the database sees it."""
    self.session.execute(select(literal(SECRET, UTCDateTime)))
    raise AssertionError("the statement should have failed")


def _errors(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") == "unhandled_error"]


@pytest.mark.parametrize(
    ("failing", "sql", "error"),
    [
        (_failing_statement, "SELECT", "DataError"),
        (_failing_bind, "SELECT", "StatementError"),
    ],
    ids=["database-error", "bind-error"],
)
def test_an_unexpected_database_error_logs_no_bound_value(
    fresh_client: FreshClient,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    api: Api,
    failing: Any,
    sql: str,
    error: str,
) -> None:
    monkeypatch.setattr(PartnerRepository, "list_", failing)
    with fresh_client() as c:
        r = c.get(
            "/api/v1/partners",
            headers={**api.headers(), "X-Request-ID": "db-error-1"},
        )
        captured = capfd.readouterr()
    body = assert_problem(r, 500, "internal_error")
    assert SECRET not in r.text
    assert "db-error-1" in body["detail"]
    records = log_records(captured.err)
    errors = _errors(records)
    assert len(errors) == 1, records
    logged = errors[0]
    assert logged["request_id"] == "db-error-1"
    assert logged["level"] == "error"
    # Still useful: which statement failed, and how.
    assert sql in logged["exception"], logged
    assert error in logged["exception"], logged
    assert "Traceback" in logged["exception"]
    # And no bound value anywhere in what the process wrote.
    assert SECRET not in captured.err
    assert SECRET not in captured.out


def test_the_engine_hides_bound_parameters(settings: Settings) -> None:
    engine: Engine = build_engine(settings)
    try:
        assert engine.hide_parameters is True
    finally:
        engine.dispose()


def test_the_driver_message_of_a_failed_statement_is_left_out(engine: Engine) -> None:
    """What the database says can quote the value; only its class and SQLSTATE are kept."""
    statement = (
        text("SELECT CAST(:secret AS INTEGER)")
        if engine.dialect.name == "postgresql"
        else text("SELECT zeroblob(:size), :secret")
    )
    with engine.connect() as conn, pytest.raises(DataError) as raised:
        conn.execute(statement, {"secret": SECRET, "size": 2**40})
    assert "SQL parameters hidden" in str(raised.value)
    logged = safe_exception_text(raised.value)
    assert logged is not None
    assert SECRET not in logged
    assert "DataError" in logged
    assert "SELECT" in logged
    if engine.dialect.name == "postgresql":
        assert "22P02" in logged  # invalid_text_representation


def test_an_error_raised_from_a_statement_error_is_sanitized_too() -> None:
    class DriverError(Exception):
        pass

    try:
        try:
            raise StatementError("wrapped", "SELECT :x", {"x": SECRET}, DriverError(SECRET))
        except StatementError as exc:
            raise RuntimeError("the listing failed") from exc
    except RuntimeError as exc:
        logged = safe_exception_text(exc)
    assert logged is not None
    assert SECRET not in logged
    assert "the listing failed" in logged  # the app's own message stays
    assert "DriverError" in logged


def test_an_error_without_a_statement_keeps_its_plain_traceback() -> None:
    with pytest.raises(ValueError, match="plain") as raised:
        raise ValueError("plain")
    assert safe_exception_text(raised.value) is None


def test_every_logger_withholds_the_database_message(
    engine: Engine, capfd: pytest.CaptureFixture[str]
) -> None:
    """Not only the request middleware: a background job (a refresh, the scheduler) that logs
    a failed statement with ``log.exception`` leaves the value out too."""
    configure_logging("INFO", json=True)
    statement = (
        text("SELECT CAST(:secret AS INTEGER)")
        if engine.dialect.name == "postgresql"
        else text("SELECT zeroblob(:size), :secret")
    )
    capfd.readouterr()
    with engine.connect() as conn:
        try:
            conn.execute(statement, {"secret": SECRET, "size": 2**40})
        except DataError:
            structlog.get_logger("crm.accounting").exception("sync_crashed", run_id="r1")
    err = capfd.readouterr().err
    assert "sync_crashed" in err
    assert "DataError" in err
    assert SECRET not in err
