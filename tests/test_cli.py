"""The ``crm`` command, run in process with typer's CliRunner against a fresh SQLite file."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, inspect, select, text
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings, get_settings
from app.db.migrations import head_revision
from app.demo import DEMO_SLUG
from app.main import create_app
from app.models import Company, Partner

TOKEN = re.compile(r"^crm_[A-Za-z0-9_-]{20,}$")

Run = Callable[..., Any]


@pytest.fixture
def database_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh SQLite file that the command finds through CRM_DATABASE_URL."""
    path = tmp_path / "cli.db"
    monkeypatch.chdir(tmp_path)  # no stray .env, no crm.db in the project
    monkeypatch.setenv("CRM_DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.setenv("CRM_LOG_JSON", "true")
    get_settings.cache_clear()
    saved_logging = structlog.get_config()
    yield path
    # The command configures logging with the runner's stderr, which is gone afterwards.
    structlog.configure(**saved_logging)
    get_settings.cache_clear()


@pytest.fixture
def run(database_file: Path) -> Run:
    runner = CliRunner()

    def invoke(command: str) -> Any:
        return runner.invoke(cli, shlex.split(command))

    return invoke


@pytest.fixture
def migrated(run: Run) -> Run:
    result = run("migrate")
    assert result.exit_code == 0, result.output
    return run


@pytest.fixture
def with_company(migrated: Run) -> Run:
    result = migrated("company create --slug nordic-foods --name 'Nordic Foods'")
    assert result.exit_code == 0, result.output
    result = migrated(
        "user create --company nordic-foods --email ops@nordic.example --name 'Ops Person'"
    )
    assert result.exit_code == 0, result.output
    return migrated


def me(database_file: Path, token: str) -> Any:
    settings = Settings(database_url=f"sqlite:///{database_file}")
    saved_logging = structlog.get_config()
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            return client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    finally:
        structlog.configure(**saved_logging)


def query(database_file: Path, statement: Any) -> Any:
    engine = create_engine(f"sqlite:///{database_file}")
    try:
        with engine.connect() as conn:
            return conn.execute(statement).scalar()
    finally:
        engine.dispose()


def assert_one_line_failure(result: Any) -> str:
    assert result.exit_code != 0, result.output
    # Ended on purpose (typer.Exit / SystemExit), not by an exception escaping the command.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert message, "no reason given on stderr"
    assert "\n" not in message, f"more than one line: {message!r}"
    assert result.stdout.strip() == "", f"stdout should stay empty: {result.stdout!r}"
    return message


# -- migrate ------------------------------------------------------------------------


def test_migrate_brings_a_fresh_database_to_head(run: Run, database_file: Path) -> None:
    result = run("migrate")
    assert result.exit_code == 0, result.output
    assert query(database_file, text("SELECT version_num FROM alembic_version")) == (
        head_revision()
    )
    engine = create_engine(f"sqlite:///{database_file}")
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"companies", "users", "api_tokens", "partners"} <= tables


def test_migrate_twice_is_harmless(migrated: Run, database_file: Path) -> None:
    result = migrated("migrate")
    assert result.exit_code == 0, result.output
    assert query(database_file, text("SELECT count(*) FROM alembic_version")) == 1


# -- company, user, token -----------------------------------------------------------


def test_company_create_stores_the_company(migrated: Run, database_file: Path) -> None:
    result = migrated("company create --slug acme-foods --name 'Acme Foods' --base-currency EUR")
    assert result.exit_code == 0, result.output
    assert "acme-foods" in result.stdout
    assert query(
        database_file, select(Company.base_currency).where(Company.slug == "acme-foods")
    ) == ("EUR")


def test_company_create_defaults_to_dkk(migrated: Run, database_file: Path) -> None:
    result = migrated("company create --slug dk-foods --name 'DK Foods'")
    assert result.exit_code == 0, result.output
    assert query(
        database_file, select(Company.base_currency).where(Company.slug == "dk-foods")
    ) == ("DKK")


def test_user_create_reports_the_user(with_company: Run) -> None:
    result = with_company(
        "user create --company nordic-foods --email anna@nordic.example --name Anna"
    )
    assert result.exit_code == 0, result.output
    assert "anna@nordic.example" in result.stdout


@pytest.mark.parametrize("scope", ["read", "write", "admin"])
def test_token_create_prints_only_a_working_token(
    with_company: Run, database_file: Path, scope: str
) -> None:
    result = with_company(
        f"token create --company nordic-foods --email ops@nordic.example --scope {scope}"
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    token = lines[0]
    assert result.stdout == token + "\n"
    assert TOKEN.match(token), token
    r = me(database_file, token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["company"]["slug"] == "nordic-foods"
    assert body["user"]["email"] == "ops@nordic.example"
    assert body["scope"] == scope


def test_each_token_create_prints_a_new_token(with_company: Run) -> None:
    command = "token create --company nordic-foods --email ops@nordic.example --scope read"
    first = with_company(command).stdout.strip()
    second = with_company(command).stdout.strip()
    assert TOKEN.match(first)
    assert TOKEN.match(second)
    assert first != second


def test_a_made_up_token_does_not_authenticate(with_company: Run, database_file: Path) -> None:
    assert me(database_file, "crm_" + "x" * 43).status_code == 401


# -- demo ---------------------------------------------------------------------------


def test_demo_is_idempotent_and_replaces_its_token(run: Run, database_file: Path) -> None:
    first = run("demo")
    assert first.exit_code == 0, first.output
    second = run("demo")
    assert second.exit_code == 0, second.output
    tokens = [first.stdout.strip(), second.stdout.strip()]
    for result, token in zip((first, second), tokens, strict=True):
        assert result.stdout == token + "\n", result.stdout
        assert TOKEN.match(token), token
    assert tokens[0] != tokens[1]
    assert query(database_file, select(func.count()).select_from(Company)) == 1
    assert query(database_file, select(Company.slug)) == DEMO_SLUG
    partners = query(database_file, select(func.count()).select_from(Partner))
    assert partners > 0
    # Each run replaces the demo token of the run before: restarts do not pile up tokens.
    assert me(database_file, tokens[0]).status_code == 401
    r = me(database_file, tokens[1])
    assert r.status_code == 200, r.text
    assert r.json()["company"]["slug"] == DEMO_SLUG
    assert r.json()["scope"] == "admin"
    third = run("demo")
    assert third.exit_code == 0, third.output
    assert query(database_file, select(func.count()).select_from(Partner)) == partners
    assert query(database_file, select(func.count()).select_from(Company)) == 1


def test_demo_partners_are_visible_through_the_api(run: Run, database_file: Path) -> None:
    token = run("demo").stdout.strip()
    settings = Settings(database_url=f"sqlite:///{database_file}")
    saved_logging = structlog.get_config()
    try:
        with TestClient(create_app(settings)) as client:
            r = client.get(
                "/api/v1/partners",
                params={"include_total": "true"},
                headers={"Authorization": f"Bearer {token}"},
            )
    finally:
        structlog.configure(**saved_logging)
    assert r.status_code == 200, r.text
    assert r.json()["total"] == query(database_file, select(func.count()).select_from(Partner))


# -- openapi ------------------------------------------------------------------------


def test_openapi_prints_the_contract_as_yaml(run: Run) -> None:
    result = run("openapi")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("openapi:")
    document = yaml.safe_load(result.stdout)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "crm-overview"
    assert "/api/v1/partners" in document["paths"]
    assert "/healthz" in document["paths"]


def test_openapi_prints_json_on_request(run: Run) -> None:
    result = run("openapi --format json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert "openapi" in document
    assert "/api/v1/partners" in document["paths"]


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "slug", ["Bad Slug", "UPPER", "-leading", "trailing-", "x" * 64, "under_score", ""]
)
def test_company_create_rejects_an_invalid_slug(
    migrated: Run, database_file: Path, slug: str
) -> None:
    message = assert_one_line_failure(
        migrated(f"company create --slug {shlex.quote(slug)} --name Bad")
    )
    assert "slug" in message
    assert query(database_file, select(func.count()).select_from(Company)) == 0


@pytest.mark.parametrize("currency", ["XYZ", "dkk", "EURO", "12"])
def test_company_create_rejects_an_unknown_currency(
    migrated: Run, database_file: Path, currency: str
) -> None:
    message = assert_one_line_failure(
        migrated(f"company create --slug cur-test --name Cur --base-currency {currency}")
    )
    assert currency in message or "currency" in message.lower()
    assert query(database_file, select(func.count()).select_from(Company)) == 0


def test_company_create_rejects_a_duplicate_slug(with_company: Run, database_file: Path) -> None:
    message = assert_one_line_failure(
        with_company("company create --slug nordic-foods --name Again")
    )
    assert "nordic-foods" in message
    assert query(database_file, select(func.count()).select_from(Company)) == 1


def test_user_create_rejects_an_unknown_company(migrated: Run) -> None:
    message = assert_one_line_failure(
        migrated("user create --company no-such-co --email a@b.example --name A")
    )
    assert "no-such-co" in message


def test_user_create_rejects_an_invalid_email(with_company: Run) -> None:
    message = assert_one_line_failure(
        with_company("user create --company nordic-foods --email not-an-email --name A")
    )
    assert "email" in message.lower()


def test_user_create_rejects_a_duplicate_email(with_company: Run) -> None:
    assert_one_line_failure(
        with_company("user create --company nordic-foods --email OPS@nordic.example --name Twin")
    )


def test_token_create_rejects_an_unknown_company(with_company: Run) -> None:
    message = assert_one_line_failure(
        with_company("token create --company no-such-co --email ops@nordic.example --scope read")
    )
    assert "no-such-co" in message


def test_token_create_rejects_an_unknown_email(with_company: Run) -> None:
    message = assert_one_line_failure(
        with_company(
            "token create --company nordic-foods --email nobody@nordic.example --scope read"
        )
    )
    assert "nobody@nordic.example" in message


@pytest.mark.parametrize("scope", ["root", "ADMIN", "", "read,write"])
def test_token_create_rejects_a_bad_scope(with_company: Run, scope: str) -> None:
    message = assert_one_line_failure(
        with_company(
            "token create --company nordic-foods --email ops@nordic.example "
            f"--scope {shlex.quote(scope)}"
        )
    )
    assert "scope" in message


def test_openapi_rejects_an_unknown_format(run: Run) -> None:
    message = assert_one_line_failure(run("openapi --format xml"))
    assert "format" in message


def test_commands_on_an_unmigrated_database_fail_in_one_line(run: Run) -> None:
    message = assert_one_line_failure(run("company create --slug early --name 'Too Early'"))
    assert "database" in message.lower()


def test_the_installed_command_prints_no_traceback_for_bad_input(
    database_file: Path, tmp_path: Path
) -> None:
    """The real console script in its own process: exit code, one line, no traceback."""
    crm = Path(sys.executable).with_name("crm")
    assert crm.exists(), crm
    env = {"CRM_DATABASE_URL": f"sqlite:///{database_file}", "PATH": str(crm.parent)}
    migrated = subprocess.run(
        [str(crm), "migrate"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr
    bad = subprocess.run(
        [str(crm), "company", "create", "--slug", "Not Valid", "--name", "X"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert bad.returncode != 0
    assert "Traceback" not in bad.stderr
    assert bad.stdout == ""
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert bad.stderr.startswith("crm: ")


# -- stages apply-dormancy ------------------------------------------------------------


def _dormant_partner(database_file: Path) -> int:
    """Turn the rule on (30 days) for nordic-foods and give it an active customer whose only
    order is 31 days old; returns its number."""
    from datetime import UTC, datetime, timedelta
    from decimal import Decimal

    from app.auth.dependencies import Principal
    from app.db.session import Database, build_engine
    from app.models import User
    from app.models.enums import CustomerStage
    from app.partners import service as partners
    from app.partners.schemas import PartnerCreate
    from app.sales_orders import service as orders
    from app.sales_orders.schemas import LineIn, SalesOrderCreate

    db = Database(build_engine(Settings(database_url=f"sqlite:///{database_file}")))
    try:
        with db.session() as s:
            company = s.scalar(select(Company).where(Company.slug == "nordic-foods"))
            assert company is not None
            company.dormancy_days = 30
            s.commit()
            user = s.scalar(select(User).where(User.company_id == company.id))
            assert user is not None
            principal = Principal.acting_as(company, user)
            number = partners.create(
                session=s,
                principal=principal,
                data=PartnerCreate(name="Quiet", country="DK", customer_stage=CustomerStage.active),
            ).number
            orders.create(
                session=s,
                principal=principal,
                data=SalesOrderCreate(
                    partner_number=number,
                    order_date=datetime.now(UTC).date() - timedelta(days=31),
                    lines=[LineIn(description="Rye", quantity=Decimal(1), unit_price=Decimal(9))],
                ),
            )
            return number
    finally:
        db.dispose()


def test_apply_dormancy_dry_run_lists_and_changes_nothing_then_applies(
    with_company: Run, database_file: Path
) -> None:
    number = _dormant_partner(database_file)
    stage = select(Partner.customer_stage).where(Partner.number == number)
    dry = with_company("stages apply-dormancy --company nordic-foods --dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.strip() == f"partner {number}: active -> inactive"
    assert "1 partner(s) would become inactive" in dry.stderr
    assert query(database_file, stage) == "active"
    real = with_company("stages apply-dormancy --company nordic-foods")
    assert real.exit_code == 0, real.output
    assert "1 partner(s) became inactive" in real.stderr
    assert query(database_file, stage) == "inactive"
    again = with_company("stages apply-dormancy --company nordic-foods")
    assert "0 partner(s) became inactive" in again.stderr


def test_apply_dormancy_with_the_rule_off_fails_in_one_line(with_company: Run) -> None:
    message = assert_one_line_failure(with_company("stages apply-dormancy --company nordic-foods"))
    assert "dormancy_days" in message


def test_apply_dormancy_for_an_unknown_company_fails_in_one_line(with_company: Run) -> None:
    assert "nope" in assert_one_line_failure(with_company("stages apply-dormancy --company nope"))
