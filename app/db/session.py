"""Engines and sessions: SQLite (foreign keys, WAL, busy timeout) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings

SQLITE_BEGIN = "crm_sqlite_begin"
# A replica that did not answer is tried again after this long; meanwhile reads go to the
# primary.
REPLICA_RETRY_SECONDS = 5.0

log = structlog.get_logger("crm.db")


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN, so write transactions can take the
        # write lock up front (BEGIN IMMEDIATE) and never fail to upgrade a read lock.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()
        # SQLite's own lower() folds ASCII only; case-insensitive search must fold "Ø" too.
        dbapi_conn.create_function("lower", 1, _lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def build_engine(settings: Settings, *, replica: bool = False) -> Engine:
    url = settings.database_url
    if settings.is_sqlite:
        in_memory = make_url(url).database in (None, "", ":memory:")
        pool = (
            {}
            if in_memory  # one connection, shared
            else {"pool_size": settings.db_pool_size, "max_overflow": settings.db_max_overflow}
        )
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,
            **pool,
        )
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    connect_args: dict[str, Any] = {"application_name": "crm-overview"}
    if replica:
        connect_args["connect_timeout"] = 2
    timeouts = {}
    if settings.db_statement_timeout_ms:
        timeouts["statement_timeout"] = settings.db_statement_timeout_ms
    if settings.db_lock_timeout_ms:
        # A write waiting on a row a long bulk change holds fails (55P03 -> 503 lock_timeout)
        # instead of waiting. SQLite's counterpart is the busy timeout above.
        timeouts["lock_timeout"] = settings.db_lock_timeout_ms
    if settings.db_pgbouncer:
        # Transaction pooling hands each transaction any server connection: nothing may
        # outlive a transaction. No prepared statements (psycopg prepares a statement run 5
        # times), and no startup options (PgBouncer refuses them): the timeouts are set per
        # transaction instead.
        connect_args["prepare_threshold"] = None
    elif timeouts:
        connect_args["options"] = " ".join(f"-c {k}={v}" for k, v in timeouts.items())
    engine = create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        # No ping per checkout on the primary (a round trip on every request): connections
        # are recycled, and one found dead is discarded with its pool on the first error. A
        # replica's checkouts ping: it may go away, and its reads then go to the primary.
        pool_pre_ping=replica,
        pool_recycle=1800,
        # A failing statement is logged without its bound values (they hold company data).
        hide_parameters=True,
        connect_args=connect_args,
    )
    if settings.db_pgbouncer and timeouts:
        _set_local_timeouts(engine, timeouts)
    return engine


def _set_local_timeouts(engine: Engine, timeouts: dict[str, int]) -> None:
    """The timeouts as the first statement of each transaction (PgBouncer mode): ``SET LOCAL``
    ends with the transaction, so no other client's transaction inherits it."""
    statement = "; ".join(f"SET LOCAL {name} = {int(ms)}" for name, ms in timeouts.items())

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":  # reads: none
            conn.exec_driver_sql(statement)


def request_slots_for(settings: Settings) -> int:
    """The requests one process lets hold a session at once: the pool's connections
    (``CRM_DB_POOL_SIZE`` + ``CRM_DB_MAX_OVERFLOW``) less those the inline dispatcher may
    use (its loop and one per concurrent delivery), at least one."""
    connections = settings.db_pool_size + settings.db_max_overflow
    background = settings.dispatch_concurrency + 1 if settings.dispatch_inline else 0
    return max(1, connections - background)


def build_replica_engine(settings: Settings) -> Engine | None:
    """The engine of ``CRM_DATABASE_REPLICA_URL`` (None without one). Each checkout pings it,
    and connecting gives up after 2 s: a replica that went away is noticed before a query is
    sent, and its reads go to the primary."""
    if not settings.database_replica_url:
        return None
    replica = settings.model_copy(update={"database_url": settings.database_replica_url})
    return build_engine(replica, replica=True)


@dataclass
class Database:
    """The request's way to a session: reads start a plain transaction, writes a write one;
    :meth:`reader` reads from the replica when there is one that answers."""

    engine: Engine
    replica: Engine | None = None
    # How many requests may hold a session at once (None: no bound); see request_slot().
    request_slots: int | None = None
    _replica_down_until: float = field(default=0.0, init=False)
    _replica_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = field(
        default=None, init=False
    )

    def __post_init__(self) -> None:
        reader = self.engine
        if self.engine.dialect.name == "postgresql":
            # Reads run each statement on its own: no BEGIN and ROLLBACK round trips.
            reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._read = sessionmaker(bind=reader, expire_on_commit=False)
        writer = self.engine.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        self._write = sessionmaker(bind=writer, expire_on_commit=False)
        self._replica_read = (
            sessionmaker(
                bind=self.replica.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
            )
            if self.replica is not None
            else None
        )

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A read session on the replica (reads that tolerate a replica's lag: the overview,
        its exports, the summary, the lists), or on the primary when there is none or it did
        not answer in the last ``REPLICA_RETRY_SECONDS``."""
        if self._replica_read is not None and time.monotonic() >= self._replica_down_until:
            session = self._replica_read()
            try:
                session.connection()  # the checkout pings: a replica that is down fails here
            except DBAPIError as exc:
                session.close()
                self._mark_replica_down(exc)
            else:
                with session:
                    yield session
                return
        with self.session(write=False) as session:
            yield session

    def _mark_replica_down(self, exc: Exception) -> None:
        with self._replica_lock:
            if time.monotonic() >= self._replica_down_until:
                log.warning("replica_unreachable", error=type(exc).__name__)
            self._replica_down_until = time.monotonic() + REPLICA_RETRY_SECONDS

    def replica_state(self) -> Literal["none", "ok", "down"]:
        """Whether reads go to a replica now (asked afresh: /readyz)."""
        if self.replica is None:
            return "none"
        try:
            with self.replica.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            self._mark_replica_down(exc)
            return "down"
        self._replica_down_until = 0.0
        return "ok"

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        maker = self._write if write else self._read
        with maker() as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise

    @asynccontextmanager
    async def request_slot(self) -> AsyncIterator[None]:
        """Held by a request from before its session exists until it is closed.

        A request's database work runs in worker threads, one hop per dependency and one
        for the endpoint, and it keeps its connection between hops. Unbounded, a burst of
        requests filled every worker thread with requests waiting in the pool for a
        connection, while the requests holding the connections waited for a thread: the
        process answered nothing until the pool's timeout, then 500s (32 clients, one
        process, the default pool). Waiting here, on the event loop, costs no thread, and
        with ``request_slots`` at most the pool's connections minus what the process's
        own background work uses (``request_slots_for``), a thread never waits for a
        connection.
        """
        if self.request_slots is None:
            yield
            return
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:  # one semaphore per loop
            self._slots = (loop, asyncio.Semaphore(self.request_slots))
        async with self._slots[1]:
            yield

    def dispose(self) -> None:
        self.engine.dispose()
        if self.replica is not None:
            self.replica.dispose()
