"""The outbox: every change writes its events in its own transaction, so an event exists if and
only if its change was committed.

Services say what happened (``emit``), or register a producer that renders its events from
the final state just before the commit (``defer``: e.g. one ``partner.updated`` per partner
touched, however often it changed). Nothing is written until the session commits: a
``before_commit`` hook renders the producers, numbers the events and inserts them, all inside
the transaction being committed; a rollback drops what was pending.

Why the feed has no gaps (``app.events.feed`` relies on this): the events of a transaction
are numbered from the company's ``event`` counter (``number_sequences``) with one
``UPDATE ... SET last_value = last_value + n``, as the last statement before the commit (on
PostgreSQL the same statement inserts them: ``_NUMBER_AND_INSERT``). That
UPDATE locks the counter row until the transaction ends (on PostgreSQL a row lock, and under
READ COMMITTED a waiting UPDATE re-reads the row once the holder commits; on SQLite the one
write transaction holds the database). So a transaction that numbers its events after
another necessarily commits after it: ``seq`` order is commit order, and once a reader sees
``seq`` n, every event below n is committed and visible too. A rolled-back transaction rolls
its counter back with it, so numbers are not even skipped. The lock is held only from the
numbering to the commit (a few statements), and never while waiting for another lock: no
deadlock can involve it.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, event, insert, text, update
from sqlalchemy.orm import Session, SessionTransaction

from app.db.base import utcnow
from app.events.metrics import EVENTS_WRITTEN
from app.models import Event, NumberSequence

EVENT_SEQUENCE = "event"
_PENDING = "crm_outbox"


@dataclass(frozen=True)
class InDatabase:
    """Events the database renders and inserts itself (``INSERT ... SELECT``): ``count`` of
    them, of ``types``, numbered from the ``first`` that ``insert(session, first, at)`` gets."""

    company_id: uuid.UUID
    count: int
    types: dict[str, int]  # how many of each type, for the metrics
    insert: Callable[[Session, int, datetime], None]
    # The same rows as a SELECT for :func:`write` to insert with the transaction's other
    # events in one statement: given the SQL numbering them (first + row number), the
    # relation it needs after FROM, a suffix for parameter names and the time, its SQL and
    # parameters. None: only ``insert`` (e.g. too many rows for one statement).
    rows: Callable[[str, str, str, datetime], tuple[str, dict[str, Any]]] | None = None


# A producer renders events at commit time from its state: (company_id, type, data) each, or
# a batch the database renders.
Rendered = tuple[uuid.UUID, str, dict[str, Any]]
Producer = Callable[[Session, Any], list[Rendered | InDatabase]]


@dataclass
class _Outbox:
    events: list[Rendered | InDatabase] = field(default_factory=list)
    producers: dict[str, tuple[Producer, Any]] = field(default_factory=dict)


def _outbox(session: Session) -> _Outbox:
    box = session.info.get(_PENDING)
    if box is None:
        box = session.info[_PENDING] = _Outbox()
    return box


def emit(session: Session, company_id: uuid.UUID, type_: str, data: dict[str, Any]) -> None:
    """Record one event, written if and when the session commits."""
    _outbox(session).events.append((company_id, type_, data))


def emit_in_database(session: Session, batch: InDatabase) -> None:
    """Record events the database renders and inserts at commit time (many at once)."""
    _outbox(session).events.append(batch)


def defer(session: Session, key: str, make: Callable[[], tuple[Producer, Any]]) -> Any:
    """The state of the producer ``key`` of this transaction, made by ``make`` (which
    returns the producer and its state) the first time. Callers add to the state (e.g. the
    partners touched); the producer renders it at commit time."""
    producers = _outbox(session).producers
    if key not in producers:
        producers[key] = make()
    return producers[key][1]


def event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def reserve(session: Session, company_id: uuid.UUID, count: int) -> int:
    """Take ``count`` numbers from the company's event counter; returns the last one. The
    counter row stays locked until the transaction ends (see the module's docstring)."""
    last = session.scalar(
        update(NumberSequence)
        .where(NumberSequence.company_id == company_id, NumberSequence.kind == EVENT_SEQUENCE)
        .values(last_value=NumberSequence.last_value + count)
        .returning(NumberSequence.last_value)
    )
    if last is None:
        raise RuntimeError(f"event sequence missing for company {company_id}")
    return int(last)


def write(session: Session, events: list[Rendered | InDatabase], at: datetime | None = None) -> int:
    """Number and insert events now (the commit hook's work); returns how many."""
    if not events:
        return 0
    at = at or utcnow()
    by_company: dict[uuid.UUID, list[Rendered | InDatabase]] = {}
    for item in events:
        key = item.company_id if isinstance(item, InDatabase) else item[0]
        by_company.setdefault(key, []).append(item)
    rows: list[dict[str, Any]] = []
    batches: list[tuple[InDatabase, int]] = []
    counts: Counter[str] = Counter()
    for company_id in sorted(by_company):  # a fixed order: two companies never deadlock
        items = by_company[company_id]
        python = [item for item in items if not isinstance(item, InDatabase)]
        in_database = [item for item in items if isinstance(item, InDatabase)]
        total = len(python) + sum(b.count for b in in_database)
        if total == 0:
            continue
        counts.update(type_ for _, type_, _ in python)
        for batch in in_database:
            counts.update(batch.types)
        if _in_one_statement(session, python, in_database):
            _number_and_insert(session, company_id, total, python, in_database, at)
            continue
        first = reserve(session, company_id, total) - total + 1
        rows.extend(
            {
                "company_id": company_id,
                "seq": first + i,
                "id": event_id(),
                "type": type_,
                "occurred_at": at,
                "data": json.dumps(data, separators=(",", ":"), ensure_ascii=False),
            }
            for i, (_, type_, data) in enumerate(python)
        )
        start = first + len(python)
        for batch in in_database:
            batches.append((batch, start))
            start += batch.count
    _insert(session, rows)
    for batch, start in batches:
        batch.insert(session, start, at)
    for type_, count in counts.items():
        EVENTS_WRITTEN.labels(type_).inc(count)
    return sum(counts.values())


def _in_one_statement(
    session: Session, python: list[Rendered], in_database: list[InDatabase]
) -> bool:
    return (
        len(python) < COPY_FROM
        and all(batch.rows is not None for batch in in_database)
        and session.get_bind().dialect.name == "postgresql"
    )


# PostgreSQL numbers and inserts a transaction's events in one statement: the counter row
# is locked by its last statement, so it stays locked only for that statement and the commit
# (and not, as with a statement to number and others to insert, across round trips during
# which the server process may be busy with other requests: measured, writers of a company
# spent most of their time queued on that row).
_NUMBER_AND_INSERT = """
WITH counter AS (
    UPDATE number_sequences SET last_value = last_value + :total
    WHERE company_id = :company_id AND kind = 'event'
    RETURNING last_value - :total AS base
)
INSERT INTO events (company_id, seq, id, type, occurred_at, data)
"""


def _python_rows(count: int) -> str:
    """The SELECT of ``count`` rendered events, numbered after the counter's base. A VALUES
    list of scalar parameters, not arrays: PostgreSQL then estimates the rows exactly, and a
    prepared statement settles on its generic plan instead of being planned again on every
    execution (measured: planning was about a third of the statement's time)."""
    values = ", ".join(
        f"({i}, CAST(:id_{i} AS text), CAST(:type_{i} AS text), CAST(:data_{i} AS text))"
        for i in range(1, count + 1)
    )
    return (
        "SELECT CAST(:company_id AS uuid), counter.base + v.i, v.id, v.type, :at, v.data\n"
        f"FROM counter, (VALUES {values}) AS v(i, id, type, data)"
    )


@functools.lru_cache(maxsize=256)
def _text(statement: str) -> TextClause:
    """A statement of :func:`_number_and_insert`, parsed once (a few shapes repeat: parsing
    the bind parameters out of the text was about a tenth of an order's event cost)."""
    return text(statement)


def _number_and_insert(
    session: Session,
    company_id: uuid.UUID,
    total: int,
    python: list[Rendered],
    in_database: list[InDatabase],
    at: datetime,
) -> None:
    """Number (``total`` from the company's counter) and insert these events with one
    statement: the rendered ones first, then each batch, as :func:`write` orders them."""
    parts: list[str] = []
    params: dict[str, Any] = {"company_id": company_id, "total": total, "at": at}
    if python:
        parts.append(_python_rows(len(python)))
        for i, (_, type_, data) in enumerate(python, start=1):
            params[f"id_{i}"] = event_id()
            params[f"type_{i}"] = str(type_)
            params[f"data_{i}"] = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    offset = len(python)
    for index, batch in enumerate(in_database):
        assert batch.rows is not None
        sql, batch_params = batch.rows(f"counter.base + {offset}", ", counter", f"_{index}", at)
        parts.append(sql)
        params.update(batch_params)
        offset += batch.count
    statement = _NUMBER_AND_INSERT + " UNION ALL ".join(f"({part})" for part in parts)
    written = session.execute(_text(statement), params).rowcount  # type: ignore[attr-defined]
    if written != total:  # numbers were taken for each: never leave a gap in the feed
        raise RuntimeError(f"{written} events written for {total} numbers taken")


COPY_FROM = 100  # rows; fewer go in one executemany
_COLUMNS = ("company_id", "seq", "id", "type", "occurred_at", "data")


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    """Many events (a bulk change writes two per partner) go in with PostgreSQL's COPY, in
    the same transaction: some ten times faster than a statement per row."""
    if not rows:
        return
    if len(rows) < COPY_FROM or session.get_bind().dialect.name != "postgresql":
        session.execute(insert(Event), rows)
        return
    driver = session.connection().connection.driver_connection
    assert driver is not None
    statement = f"COPY events ({', '.join(_COLUMNS)}) FROM STDIN"
    with driver.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(tuple(row[c] for c in _COLUMNS))


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    box: _Outbox | None = session.info.pop(_PENDING, None)
    if box is None:
        return
    events: list[Rendered | InDatabase] = list(box.events)
    for producer, state in box.producers.values():
        events.extend(producer(session, state))
    write(session, events)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:  # the session's own transaction, not a savepoint in it
        session.info.pop(_PENDING, None)
