"""The partner events: ``partner.created`` / ``partner.updated`` (the partner as ``GET
/partners/{number}`` shows it, rendered once per transaction from its final state),
``partner.credit_limit_exceeded`` / ``_cleared`` (the overview row, when the state flipped)
and ``partner.stage_changed`` / ``partner.deleted`` (emitted as they happen).

Every write that changes what a partner reads as calls :func:`touched` with the partners it
changes, before changing them (so the credit state before is known); the events are rendered
just before the commit (``app.events.outbox``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from app.events import outbox
from app.events.types import EventType
from app.models import Partner
from app.partners.overview import overview_select, row_of
from app.partners.repository import EVENT_CHUNK, PartnerRepository
from app.partners.schemas import PartnerRead

CHUNK = 1000
# On PostgreSQL the database renders partner events from this many partners of a company in
# one transaction: from one, measured faster than reading the partners back into Python (one
# INSERT ... SELECT instead of three reads and the JSON), and the same SQL serves bulk changes.
IN_DATABASE_FROM = 1
# Stage events need nothing read back (the change knows every field): for a few, Python renders
# them into the one INSERT of the transaction's other events (an order that makes its partner
# active: 1.10x the order without events, against 1.27x with a second INSERT ... SELECT); for
# many, the database builds them from arrays of the numbers and the stages before.
STAGE_IN_DATABASE_FROM = 100
_KEY = "partners"


@dataclass
class _Before:
    created: bool  # in this transaction
    exceeded: bool | None  # the credit state before; None: the change cannot move it
    version: int | None  # the version before; None: created
    loaded: Partner | None = None  # the writer's loaded partner, when it passed one
    changed: bool = False  # the writer says it changes (its version will have moved)


def _known(before: _Before) -> bool:
    """Changed for certain, and no credit state to compare: nothing to read back."""
    return (before.created or before.changed) and before.exceeded is None


class _Touched(dict[tuple[uuid.UUID, int], _Before]):
    """(company, number) -> what the partner was before this transaction changed it."""


def touched(
    session: Session,
    company_id: uuid.UUID,
    partners: Iterable[Partner | Any],
    *,
    created: bool = False,
    credit_may_change: bool = True,
    changed: bool = False,
) -> None:
    """Say that these partners change in this transaction (call before changing them).
    ``partners`` are loaded partners or rows with ``number`` and ``version`` (and
    ``credit_limit_exceeded`` when ``credit_may_change``). A partner whose version did not
    move by the commit changed nothing, and gets no event. ``changed``: the caller is about
    to change each of them for certain (so no version need be read back)."""
    state: _Touched = outbox.defer(session, _KEY, lambda: (_render, _Touched()))
    for partner in partners:
        key = (company_id, partner.number)
        exceeded = partner.credit_limit_exceeded if credit_may_change and not created else None
        version = None if created else partner.version
        loaded = partner if isinstance(partner, Partner) else None
        seen = state.get(key)
        if seen is None:
            state[key] = _Before(created, exceeded, version, loaded, changed)
        else:  # the first sight is the state before; a later one may add what it knew
            seen.created = seen.created or created
            if seen.exceeded is None and not seen.created:
                seen.exceeded = exceeded
            seen.loaded = seen.loaded or loaded
            seen.changed = seen.changed or changed


def stage_changed(
    session: Session,
    company_id: uuid.UUID,
    changes: Sequence[Any],
    *,
    stage: str | None,
    reason: str,
    changed_by: dict[str, Any] | None,
) -> None:
    """``partner.stage_changed`` for each changed row (its ``number`` and its
    ``customer_stage`` before)."""
    if len(changes) >= STAGE_IN_DATABASE_FROM and session.get_bind().dialect.name == "postgresql":
        repo = PartnerRepository(session, company_id)
        ordered = sorted(changes, key=lambda row: row.number)
        outbox.emit_in_database(
            session,
            outbox.InDatabase(
                company_id,
                len(ordered),
                {EventType.partner_stage_changed.value: len(ordered)},
                lambda _session, first, occurred_at: repo.insert_stage_events(
                    ordered,
                    stage=stage,
                    reason=reason,
                    changed_by=changed_by,
                    first=first,
                    occurred_at=occurred_at,
                ),
            ),
        )
        return
    for row in changes:
        outbox.emit(
            session,
            company_id,
            EventType.partner_stage_changed,
            {
                "number": row.number,
                "previous_stage": row.customer_stage,
                "stage": stage,
                "reason": reason,
                "changed_by": changed_by,
            },
        )


def deleted(session: Session, company_id: uuid.UUID, number: int) -> None:
    state: _Touched = outbox.defer(session, _KEY, lambda: (_render, _Touched()))
    state.pop((company_id, number), None)
    outbox.emit(session, company_id, EventType.partner_deleted, {"number": number})


def _render(session: Session, state: _Touched) -> list[outbox.Rendered | outbox.InDatabase]:
    by_company: dict[uuid.UUID, list[int]] = {}
    for company_id, number in state:
        by_company.setdefault(company_id, []).append(number)
    events: list[outbox.Rendered | outbox.InDatabase] = []
    dialect = session.get_bind().dialect.name
    for company_id, numbers in by_company.items():
        repo = PartnerRepository(session, company_id)
        if dialect == "postgresql" and len(numbers) >= IN_DATABASE_FROM:
            events.extend(_in_database(repo, state, company_id, sorted(numbers)))
            continue
        for start in range(0, len(numbers), CHUNK):
            rows = repo.read_rows(sorted(numbers[start : start + CHUNK]))
            changed, created, flipped = _moved(state, company_id, rows)
            for partner in changed:
                kind = (
                    EventType.partner_created
                    if partner.number in created
                    else EventType.partner_updated
                )
                read = PartnerRead.model_validate(partner)
                events.append((company_id, kind, read.model_dump(mode="json")))
            events.extend(_flips(session, dialect, company_id, flipped))
    return events


def _moved(
    state: _Touched, company_id: uuid.UUID, rows: Iterable[Any]
) -> tuple[list[Any], set[int], list[int]]:
    """Of these partners as they are now (``number``, ``version``, ``credit_limit_exceeded``):
    those that changed (created, or their version moved), the numbers of those created, and
    those whose credit state flipped."""
    changed: list[Any] = []
    created: set[int] = set()
    flipped: list[int] = []
    for row in rows:
        before = state[(company_id, row.number)]
        if not before.created and not before.changed and before.version == row.version:
            continue
        changed.append(row)
        if before.created:
            created.add(row.number)
        if before.exceeded is not None and row.credit_limit_exceeded != before.exceeded:
            flipped.append(row.number)
    return changed, created, flipped


def _in_database(
    repo: PartnerRepository, state: _Touched, company_id: uuid.UUID, numbers: list[int]
) -> list[outbox.Rendered | outbox.InDatabase]:
    """PostgreSQL renders and inserts the partner events itself (see IN_DATABASE_FROM)."""
    changed: list[int] = []
    created: list[int] = []
    flipped: list[int] = []
    expect = _as_written(repo.session, state, company_id, numbers)
    batches: list[list[Any]] = [[expect]] if expect else []
    if not expect:
        # Partners known to have changed, whose credit state cannot have moved (a stage
        # change: every partner of a bulk change), need nothing read; the others their
        # version and credit state.
        known: list[Any] = []
        unknown: list[int] = []
        for number in numbers:
            if _known(state[(company_id, number)]):
                known.append(_Changed(number))
            else:
                unknown.append(number)
        batches.append(known)
        for start in range(0, len(unknown), CHUNK * 5):
            batches.append(repo.versions(unknown[start : start + CHUNK * 5]))
    for batch in batches:
        rows, made, flips = _moved(state, company_id, batch)
        changed.extend(row.number for row in rows)
        created.extend(sorted(made))
        flipped.extend(flips)
    out: list[outbox.Rendered | outbox.InDatabase] = []
    if changed:
        types = {
            EventType.partner_created.value: len(created),
            EventType.partner_updated.value: len(changed) - len(created),
        }
        out.append(
            outbox.InDatabase(
                company_id,
                len(changed),
                {k: v for k, v in types.items() if v},
                lambda session, first, at: repo.insert_read_events(
                    changed, created, first=first, at=at
                ),
                rows=(
                    (
                        lambda seq, from_, suffix, at: repo.read_event_rows(
                            changed,
                            created,
                            seq=seq,
                            from_=from_,
                            suffix=suffix,
                            at=at,
                            expect=(
                                (expect.version, expect.credit_limit_exceeded) if expect else None
                            ),
                        )
                    )
                    if len(changed) <= EVENT_CHUNK
                    else None
                ),
            )
        )
    out.extend(_flips(repo.session, "postgresql", company_id, flipped))
    return out


@dataclass(frozen=True)
class _Written:
    number: int
    version: int
    credit_limit_exceeded: bool | None


@dataclass(frozen=True)
class _Changed:
    """A partner known to have changed: its version is not needed, its credit state not
    compared (``_moved`` reads neither for it)."""

    number: int
    version: None = None
    credit_limit_exceeded: None = None


def _as_written(
    session: Session, state: _Touched, company_id: uuid.UUID, numbers: list[int]
) -> _Written | None:
    """The one partner a write changed, as its writer's loaded object says it now is, when
    that object can say it (loaded in this session, flushed, and its version moved): then
    its event needs no read of its version first (an order, a PATCH: about 1 ms of the
    order's 10 here). The event's SQL renders it only if the row still has that version and
    credit state, so a row changed behind the object fails the commit instead of losing an
    event. Anything else (several partners, rows, an unmoved version) is read."""
    if len(numbers) != 1:
        return None
    before = state[(company_id, numbers[0])]
    partner = before.loaded
    if partner is None or partner not in session:
        return None
    session.flush()
    loaded = inspect(partner)
    if not loaded.persistent or loaded.expired_attributes & {"version", "credit_limit_exceeded"}:
        return None
    if not before.created and partner.version == before.version:
        return None  # unchanged, says the object: the database is asked
    return _Written(partner.number, partner.version, partner.credit_limit_exceeded)


def _flips(
    session: Session, dialect: str, company_id: uuid.UUID, numbers: list[int]
) -> list[outbox.Rendered | outbox.InDatabase]:
    """The credit flips of these partners, each with its overview row."""
    if not numbers:
        return []
    rows = session.execute(
        overview_select(dialect, company_id)
        .where(Partner.number.in_(numbers))
        .order_by(Partner.number)
    )
    return [
        (
            company_id,
            EventType.partner_credit_limit_exceeded
            if row.credit_limit_exceeded
            else EventType.partner_credit_limit_cleared,
            row_of(row),
        )
        for row in rows
    ]
