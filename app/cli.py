"""The ``crm`` command: serve, migrate, openapi, company/user/token administration, demo."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Annotated, Any, TypeVar

import typer
import yaml
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.errors import AppError

cli = typer.Typer(
    name="crm",
    help="crm-overview: the CRM overview API and its administration.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
company_cli = typer.Typer(help="Companies (tenants).", no_args_is_help=True)
user_cli = typer.Typer(help="Users of a company.", no_args_is_help=True)
token_cli = typer.Typer(help="API tokens.", no_args_is_help=True)
cli.add_typer(company_cli, name="company")
cli.add_typer(user_cli, name="user")
cli.add_typer(token_cli, name="token")
accounting_cli = typer.Typer(help="The accounting system.", no_args_is_help=True)
cli.add_typer(accounting_cli, name="accounting")
stages_cli = typer.Typer(help="Customer stages.", no_args_is_help=True)
cli.add_typer(stages_cli, name="stages")

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> None:
    typer.echo(f"crm: {message}", err=True)
    raise typer.Exit(code=2)


def friendly(func: F) -> F:
    """Bad input ends the command with a one-line reason and a non-zero exit, no traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AppError as exc:
            where = ", ".join(".".join(map(str, e.loc)) for e in exc.errors)
            fail(exc.detail + (f" ({where})" if where else ""))
        except ValidationError as exc:
            first = exc.errors()[0]
            fail(f"{'.'.join(map(str, first['loc']))}: {first['msg']}")
        except SQLAlchemyError as exc:
            fail(f"database error: {type(exc).__name__}: {str(exc).splitlines()[0]}")

    return wrapper  # type: ignore[return-value]


@contextmanager
def session_scope() -> Iterator[Session]:
    from app.db.session import Database, build_engine

    db = Database(build_engine(get_settings()))
    try:
        with db.session() as session:
            yield session
    finally:
        db.dispose()


@cli.command()
@friendly
def migrate() -> None:
    """Bring the database schema to the newest migration."""
    from app.db.migrations import upgrade

    upgrade()
    typer.echo("database migrated to head", err=True)


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [CRM_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [CRM_PORT]")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes [CRM_WORKERS]")] = None,
) -> None:
    """Serve the API with uvicorn."""
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=False,
    )


@cli.command()
@friendly
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="One pass: due jobs, then deliveries until none is due")
    ] = False,
) -> None:
    """Deliver webhooks and run the scheduled jobs (accounting refreshes, event retention)
    until SIGTERM or SIGINT. Run any number, on any machines, against one database; set
    CRM_DISPATCH_INLINE=false on the servers to leave all of it to workers."""
    from app.core.logging import configure_logging
    from app.db.session import Database, build_engine
    from app.worker import run_worker

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    db = Database(build_engine(settings))
    try:
        run_worker(db, settings, once=once)
    finally:
        db.dispose()


@cli.command()
def openapi(
    fmt: Annotated[str, typer.Option("--format", help="yaml or json")] = "yaml",
) -> None:
    """Print the OpenAPI contract."""
    if fmt not in ("yaml", "json"):
        fail("--format takes yaml or json")
    sys.stdout.write(render_openapi(fmt))


def render_openapi(fmt: str = "yaml") -> str:
    from app.core.config import Settings
    from app.main import create_app

    app = create_app(Settings(database_url="sqlite://"))
    schema = app.openapi()
    if fmt == "json":
        return json.dumps(schema, indent=2, sort_keys=False) + "\n"
    return yaml.safe_dump(schema, sort_keys=False, allow_unicode=True, width=100)


@company_cli.command("create")
@friendly
def company_create(
    slug: Annotated[str, typer.Option(help="Short unique name, e.g. nordic-foods")],
    name: Annotated[str, typer.Option(help="Display name")],
    base_currency: Annotated[str, typer.Option(help="ISO 4217 code")] = "DKK",
) -> None:
    """Create a company."""
    from app.companies import service

    with session_scope() as session:
        company = service.create(session=session, slug=slug, name=name, base_currency=base_currency)
        typer.echo(f"company {company.slug} created ({company.id})")


@user_cli.command("create")
@friendly
def user_create(
    company: Annotated[str, typer.Option(help="Company slug")],
    email: Annotated[str, typer.Option()],
    name: Annotated[str, typer.Option()],
) -> None:
    """Create a user of a company."""
    from app.companies.service import require_by_slug
    from app.users import service
    from app.users.schemas import UserCreate

    data = UserCreate(name=name, email=email)
    with session_scope() as session:
        found = require_by_slug(session, company)
        user = service.create(session=session, company_id=found.id, data=data)
        typer.echo(f"user {user.email} created ({user.id})")


@token_cli.command("create")
@friendly
def token_create(
    company: Annotated[str, typer.Option(help="Company slug")],
    email: Annotated[str, typer.Option(help="The user the token acts as")],
    scope: Annotated[str, typer.Option(help="read, write or admin")],
    name: Annotated[str, typer.Option(help="What the token is for")] = "cli",
) -> None:
    """Create an API token; prints the secret, alone, on standard output."""
    from app.companies.service import require_by_slug
    from app.models.enums import Scope
    from app.tokens import service
    from app.users.repository import UserRepository

    if scope not in Scope.__members__:
        fail("--scope takes read, write or admin")
    with session_scope() as session:
        found = require_by_slug(session, company)
        user = UserRepository(session, found.id).get_by_email(email)
        if user is None:
            fail(f"no user with the email {email!r} in {company!r}")
            return
        issued = service.create(
            session=session,
            company_id=found.id,
            user_id=user.id,
            name=name,
            scope=Scope(scope),
            max_active=get_settings().max_tokens_per_company,
        )
        typer.echo(issued.secret)


@cli.command()
@friendly
def demo() -> None:
    """Make sure the demo company with sample data exists; print a new admin token."""
    from app.db.migrations import upgrade
    from app.demo import ensure_demo

    upgrade()
    with session_scope() as session:
        secret = ensure_demo(session)
    typer.echo(secret)


@cli.command()
@friendly
def check(
    company: Annotated[str, typer.Option(help="Company slug")],
    repair: Annotated[bool, typer.Option(help="Fix the drift found")] = False,
) -> None:
    """Recompute partners' uninvoiced totals and latest delivery dates from their orders and
    report any drift (exit 1 when drift is found and not repaired)."""
    from app.companies.service import require_by_slug
    from app.db.session import Database, build_engine
    from app.sales_orders.service import check_partner_totals

    # Reads in a read transaction (writers go on meanwhile); a repair locks only the partners
    # it repairs.
    db = Database(build_engine(get_settings()))
    try:
        with db.session(write=False) as session:
            found = require_by_slug(session, company)
        drift = check_partner_totals(db=db, company_id=found.id, repair=repair)
    finally:
        db.dispose()
    for d in drift:
        typer.echo(
            f"partner {d.number}: uninvoiced_total {d.uninvoiced_total} "
            f"(orders say {d.expected_uninvoiced_total}), latest_sales_delivery_date "
            f"{d.latest_sales_delivery_date} (orders say {d.expected_latest_sales_delivery_date})"
        )
    verdict = "repaired" if repair else "found"
    typer.echo(f"{len(drift)} partner(s) with drift {verdict}", err=True)
    if drift and not repair:
        raise typer.Exit(code=1)


@accounting_cli.command("check")
@friendly
def accounting_check(company: Annotated[str, typer.Option(help="Company slug")]) -> None:
    """Prove the connection's credentials with one small read (no balance is stored)."""
    from app.accounting import service
    from app.accounting.providers.base import ProviderError
    from app.companies.service import require_by_slug
    from app.db.session import Database, build_engine

    settings = get_settings()
    db = Database(build_engine(settings))
    try:
        with db.session(write=False) as session:
            company_id = require_by_slug(session, company).id
        try:
            service.check_connection(db=db, company_id=company_id, settings=settings)
        except ProviderError as exc:
            fail(f"{exc.code}: {exc.message}")
        typer.echo("the accounting system accepted the credentials")
    finally:
        db.dispose()


@accounting_cli.command("sync")
@friendly
def accounting_sync(company: Annotated[str, typer.Option(help="Company slug")]) -> None:
    """Refresh every debtor balance from the accounting system, showing progress."""
    from app.accounting import service
    from app.companies.service import require_by_slug
    from app.db.session import Database, build_engine
    from app.models.enums import SyncTrigger

    settings = get_settings()
    db = Database(build_engine(settings))
    try:
        with db.session() as session:
            found = require_by_slug(session, company)
            run = service.start_run(
                session=session, company_id=found.id, trigger=SyncTrigger.cli, settings=settings
            )
            company_id, run_id = found.id, run.id
        with typer.progressbar(length=0, label="customers fetched", show_pos=True) as bar:

            def progress(fetched: int) -> None:
                bar.update(fetched - bar.pos)

            service.execute_run(
                db=db, company_id=company_id, run_id=run_id, settings=settings, progress=progress
            )
        with db.session(write=False) as session:
            run = service.get_run(session=session, company_id=company_id, run_id=run_id)
            summary = (
                f"{run.status}: fetched {run.fetched}, updated {run.updated}, unchanged "
                f"{run.unchanged}, unmatched {run.unmatched}"
            )
            if run.error_code:
                fail(f"{summary}; {run.error_code}: {run.error_message}")
            typer.echo(summary)
    finally:
        db.dispose()


@stages_cli.command("apply-dormancy")
@friendly
def stages_apply_dormancy(
    company: Annotated[str, typer.Option(help="Company slug")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show, change nothing")] = False,
) -> None:
    """Move active customers without a recent order to inactive (the dormancy rule)."""
    from app.companies.service import require_by_slug
    from app.partners import dormancy

    with session_scope() as session:
        found = require_by_slug(session, company)
        result = dormancy.apply(session=session, company_id=found.id, dry_run=dry_run)
    for change in result.changes:
        typer.echo(f"partner {change.number}: {change.previous_stage} -> inactive")
    more = " (only the first listed)" if result.changes_truncated else ""
    verb = "would become" if dry_run else "became"
    typer.echo(f"{result.changed} partner(s) {verb} inactive{more}", err=True)


@cli.command()
@friendly
def seed(
    company: Annotated[str, typer.Option(help="Company slug (made when missing)")],
    partners: Annotated[int, typer.Option(min=1, max=10_000_000)],
    orders: Annotated[int, typer.Option(min=0, max=100_000_000)],
    seed_value: Annotated[int, typer.Option("--seed", help="Same seed, same data")] = 1,
) -> None:
    """Load deterministic, realistic bulk data (COPY on PostgreSQL)."""
    import time

    from app.db.migrations import upgrade
    from app.seed import seed as run_seed

    upgrade()
    started = time.monotonic()
    with session_scope() as session:
        report = run_seed(
            session,
            slug=company,
            partners=partners,
            orders=orders,
            seed_value=seed_value,
            progress=lambda msg: typer.echo(
                f"  {msg} ({time.monotonic() - started:.1f} s)", err=True
            ),
        )
    typer.echo(
        f"seeded {report.partners} partners, {report.orders} orders, {report.lines} lines "
        f"in {time.monotonic() - started:.1f} s"
    )


@cli.callback()
def _configure() -> None:
    from app.core.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)


def main() -> None:
    cli()
