"""Alembic environment: the URL comes from Settings, the target from app.models."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, text

import app.models  # noqa: F401  (registers every table)
from app.core.config import get_settings
from app.db.base import Base
from app.db.session import build_engine

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata
# pg_advisory_xact_lock key of `crm migrate` (any fixed 64-bit number unique to this service).
MIGRATION_LOCK = 0x63726D5F6D6967  # "crm_mig"


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite and not connection.in_transaction():
        # Batch migrations copy tables on SQLite; with foreign keys on, dropping the old copy
        # would cascade into the child tables. Off for the migration, checked afterwards.
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
    try:
        _migrate(connection)
    finally:
        if sqlite and not connection.in_transaction():
            raw = connection.connection.driver_connection
            problems = raw.execute("PRAGMA foreign_key_check").fetchall()  # type: ignore[union-attr]
            raw.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
            if problems:
                raise RuntimeError(f"foreign key check failed after migrating: {problems[:5]}")


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several hosts may migrate at once: one at a time. The lock is the transaction's
            # (no session state, so it also works through a transaction-pooling PgBouncer),
            # and the current revision is read after it is granted: a host that waited finds
            # the schema at head and does nothing.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()
    if connection.in_transaction():
        connection.commit()


def run_migrations_offline() -> None:
    context.configure(
        url=get_settings().database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # Migrations wait as long as they must for locks and statements (the service's request
    # timeouts would make a migration behind a long transaction fail half-way).
    settings = get_settings().model_copy(
        update={"db_lock_timeout_ms": 0, "db_statement_timeout_ms": 0}
    )
    engine = build_engine(settings)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
