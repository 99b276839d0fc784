"""All partner SQL. Every query is scoped by the company the repository was built for."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any, NamedTuple

from sqlalchemy import (
    and_,
    delete,
    exists,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from app.core.pagination import PageRequest, RawPage, SortField, Sorting, paginate
from app.core.types import tag_key
from app.db.base import fill_collection, utcnow
from app.models import (
    Partner,
    PartnerLocation,
    PartnerTag,
    SalesOrder,
    StageChange,
    Tag,
    User,
)
from app.models.enums import CreditCheck, CustomerStage, SalesOrderStatus
from app.partners.schemas import PartnerFilter

BULK_CHUNK = 1000
# The stage history columns set_stage fills, in the order of its INSERT ... SELECT.
HISTORY_COLUMNS = [
    "company_id",
    "id",
    "seq",
    "partner_id",
    "previous_stage",
    "stage",
    "reason",
    "changed_at",
    "changed_by_id",
]

PARTNER_NUMBER = SortField.of(Partner.number)

# Each sort but `number` has an index of its own: (company, column, number), see the model.
PARTNER_SORTING = Sorting(
    fields={
        "number": PARTNER_NUMBER,
        "name": SortField.of(Partner.name),
        "country": SortField.of(Partner.country),
        "customer_stage": SortField.of(Partner.stage_rank),  # in the stage order
        "credit_limit": SortField.of(Partner.credit_limit),
        "debtor_balance": SortField.of(Partner.debtor_balance),
        "uninvoiced_total": SortField.of(Partner.uninvoiced_total),
        "latest_sales_delivery_date": SortField.of(Partner.latest_sales_delivery_date),
        "created_at": SortField.of(Partner.created_at),
        "updated_at": SortField.of(Partner.updated_at),
    },
    tiebreak=PARTNER_NUMBER,
    default="number",
)

_HISTORY_SEQ = SortField.of(StageChange.seq)  # the order of the changes
STAGE_HISTORY_SORTING = Sorting(
    fields={"changed_at": _HISTORY_SEQ}, tiebreak=_HISTORY_SEQ, default="-changed_at"
)


def filter_conditions(company_id: uuid.UUID, f: PartnerFilter) -> list[Any]:
    """SQL conditions on ``Partner`` for the shared partner filters."""
    conditions: list[Any] = []
    if f.q:
        text_match = Partner.name.icontains(f.q, autoescape=True)
        if f.q.isascii() and f.q.isdigit() and int(f.q) < 2**31:
            conditions.append(or_(text_match, Partner.number == int(f.q)))
        else:
            conditions.append(text_match)
    if f.customer_stage:
        conditions.append(Partner.customer_stage.in_([s.value for s in f.customer_stage]))
    if f.tag:
        conditions.append(
            exists().where(
                PartnerTag.company_id == company_id,
                PartnerTag.partner_id == Partner.id,
                Tag.company_id == company_id,
                Tag.id == PartnerTag.tag_id,
                Tag.name_key.in_([tag_key(t) for t in f.tag]),
            )
        )
    if f.owner_id is not None:
        conditions.append(Partner.owner_id == f.owner_id)
    if f.country is not None:
        conditions.append(Partner.country == f.country)
    if f.credit_limit_exceeded is not None:
        conditions.append(Partner.credit_limit_exceeded.is_(f.credit_limit_exceeded))
    if f.updated_since is not None:
        conditions.append(Partner.updated_at >= f.updated_since)
    return conditions


def exceeded_sql(check: str) -> Any:
    """The credit rule of ``app.partners.credit.is_exceeded`` as a SQL expression."""
    exposure: Any = Partner.debtor_balance
    if check == CreditCheck.balance_plus_uninvoiced:
        exposure = Partner.debtor_balance + Partner.uninvoiced_total
    return and_(
        Partner.credit_limit.is_not(None),
        Partner.debtor_balance.is_not(None),
        exposure > Partner.credit_limit,
    )


class StageRow(NamedTuple):
    """What a stage change needs of a partner (a locked row, or a loaded partner)."""

    id: uuid.UUID
    number: int
    customer_stage: str | None
    version: int

    @classmethod
    def of(cls, partner: Partner) -> StageRow:
        return cls(partner.id, partner.number, partner.customer_stage, partner.version)


@dataclass
class PartnerRepository:
    session: Session
    company_id: uuid.UUID

    def _select(self, *, related: bool = True) -> Any:
        stmt = select(Partner).where(Partner.company_id == self.company_id)
        return stmt.options(joinedload(Partner.owner)) if related else stmt

    def _with_related(self, partners: Sequence[Partner]) -> None:
        """Load the locations and tags of ``partners``, read afresh, with one statement each
        (``fill_collection``)."""
        if not partners:
            return
        ids = [partner.id for partner in partners]
        fresh = {"populate_existing": True}
        locations = self.session.scalars(
            select(PartnerLocation)
            .where(PartnerLocation.company_id == self.company_id)
            .where(PartnerLocation.partner_id.in_(ids))
            .order_by(PartnerLocation.position)
            .execution_options(**fresh)
        )
        fill_collection(partners, "locations", ((loc.partner_id, loc) for loc in locations))
        tags = self.session.execute(
            select(PartnerTag.partner_id, Tag)
            .join(Tag, (Tag.company_id == PartnerTag.company_id) & (Tag.id == PartnerTag.tag_id))
            .where(PartnerTag.company_id == self.company_id, PartnerTag.partner_id.in_(ids))
            .order_by(Tag.name_key)
            .execution_options(**fresh)
        )
        fill_collection(partners, "tags", tags)  # rows of (partner id, tag)

    def _one(
        self, where: Any, *, for_update: bool, related: bool, turn: int | None = None
    ) -> Partner | None:
        """One partner, read afresh (locked if ``for_update``, after waiting for partner
        ``turn``'s turn if given: see :meth:`get`); with its locations, tags and owner unless
        ``related`` is false (a writer that needs only its row: they load if read)."""
        stmt = self._select(related=related).where(where).execution_options(populate_existing=True)
        if turn is not None and self.session.get_bind().dialect.name == "postgresql":
            key = (func.hashtext(literal(str(self.company_id))), literal(turn))
            stmt = stmt.join(select(func.pg_advisory_xact_lock(*key)).subquery("turn"), true())
        if for_update:
            stmt = stmt.with_for_update(of=Partner)
        partner: Partner | None = self.session.scalar(stmt)
        if partner is not None and related:
            self._with_related([partner])
        return partner

    def get(
        self,
        number: int,
        *,
        for_update: bool = False,
        related: bool = True,
        in_turn: bool = False,
    ) -> Partner | None:
        """Partner ``number``. ``in_turn`` (the order writers, for a partner that takes many
        orders at once) waits for the partner's turn before locking its row, in the same
        statement.

        PostgreSQL's queue for a row lock is not first come, first served: a transaction
        that arrives just as the holder commits can take the row ahead of those waiting, and
        again and again (16 clients ordering for 5 partners: p99 1.75 s at p50 0.2 s). A
        transaction-level advisory lock on (company, partner number), taken by the statement
        before it locks the row, is granted in arrival order by the lock manager, so writers
        reach the row in turn (p99 0.75 s there). A clash of two keys' hashes only makes two
        partners take turns. SQLite needs none: its one write transaction at a time is the
        turn."""
        return self._one(
            Partner.number == number,
            for_update=for_update,
            related=related,
            turn=number if in_turn else None,
        )

    def read_rows(self, numbers: list[int]) -> list[SimpleNamespace]:
        """These partners with what ``PartnerRead`` reads of them (their tags, locations and
        owner), as they are now: three set-based queries and no ORM objects, for reading many
        at once (the partner events). ``owner`` is the maintained ``owner_id``/``owner_name``."""
        table: Any = Partner.__table__
        rows = self.session.execute(
            select(table)
            .where(table.c.company_id == self.company_id, table.c.number.in_(numbers))
            .order_by(table.c.number)
        ).all()
        ids = [row.id for row in rows]
        tags: dict[uuid.UUID, list[str]] = {}
        for partner_id, name in self.session.execute(
            select(PartnerTag.partner_id, Tag.name)
            .join(Tag, (Tag.company_id == PartnerTag.company_id) & (Tag.id == PartnerTag.tag_id))
            .where(PartnerTag.company_id == self.company_id, PartnerTag.partner_id.in_(ids))
            .order_by(Tag.name_key)
        ):
            tags.setdefault(partner_id, []).append(name)
        locations: dict[uuid.UUID, list[Any]] = {}
        places: Any = PartnerLocation.__table__
        for location in self.session.execute(
            select(places)
            .where(places.c.company_id == self.company_id, places.c.partner_id.in_(ids))
            .order_by(places.c.position)
        ):
            locations.setdefault(location.partner_id, []).append(location)
        return [
            SimpleNamespace(
                **row._mapping,
                tags=tags.get(row.id, []),
                locations=locations.get(row.id, []),
                owner=SimpleNamespace(id=row.owner_id, name=row.owner_name)
                if row.owner_id is not None
                else None,
            )
            for row in rows
        ]

    def versions(self, numbers: list[int]) -> list[Any]:
        """(number, version, credit_limit_exceeded) of these partners: what their events need
        to know before the database renders them."""
        return list(
            self.session.execute(
                select(Partner.number, Partner.version, Partner.credit_limit_exceeded).where(
                    Partner.company_id == self.company_id, Partner.number.in_(numbers)
                )
            )
        )

    def insert_read_events(
        self, numbers: list[int], created: list[int], *, first: int, at: datetime
    ) -> None:
        """PostgreSQL: one ``partner.created``/``partner.updated`` event per partner, its data
        the partner as ``PartnerRead`` reads it, built by the database (``_INSERT_READ_EVENTS``;
        tests/events/test_feed.py proves the two identical), numbered from ``first`` in
        partner number order. For many partners at once: a bulk change writes 50k in a few
        statements (of EVENT_CHUNK partners each, so none nears the statement timeout)
        instead of rendering and sending each."""
        made = set(created)
        ordered = sorted(numbers)
        for start in range(0, len(ordered), EVENT_CHUNK):
            chunk = ordered[start : start + EVENT_CHUNK]
            result = self.session.execute(
                text(_INSERT_READ_EVENTS),
                {
                    "company_id": self.company_id,
                    "numbers": chunk,
                    "created": [n for n in chunk if n in made],
                    "first": first + start,
                    "at": at,
                },
            )
            _all_written(result, len(chunk), "partner")

    def read_event_rows(
        self,
        numbers: list[int],
        created: list[int],
        *,
        seq: str,
        from_: str,
        suffix: str,
        at: datetime,
        expect: tuple[int, bool | None] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """The SELECT of :meth:`insert_read_events` for at most EVENT_CHUNK partners, for the
        outbox to insert with its other events in one statement: numbered from ``seq`` + 1
        (an SQL expression over ``from_``), its parameters named with ``suffix``.
        ``expect``: the one partner's version and credit state as the writer knows them; a
        partner that differs renders no row (and the outbox, finding a row short of the
        numbers it took, fails the transaction)."""
        assert len(numbers) <= EVENT_CHUNK
        assert expect is None or len(numbers) == 1
        made = set(created)
        params: dict[str, Any] = {
            f"company_id{suffix}": self.company_id,
            f"created{suffix}": [n for n in numbers if n in made],
            f"at{suffix}": at,
        }
        if len(numbers) == 1:
            which = _ONE if expect is None else _ONE_AS_EXPECTED
            params[f"number{suffix}"] = numbers[0]
            if expect is not None:
                params[f"version{suffix}"], params[f"exceeded{suffix}"] = expect
        else:
            which = _MANY
            params[f"numbers{suffix}"] = sorted(numbers)
        sql = _READ_EVENT_ROWS.format(seq=seq, s=suffix, from_=from_, which=which.format(s=suffix))
        return sql, params

    def insert_stage_events(
        self,
        changes: Sequence[StageRow],
        *,
        stage: str | None,
        reason: str,
        changed_by: dict[str, Any] | None,
        first: int,
        occurred_at: datetime,
    ) -> None:
        """PostgreSQL: ``partner.stage_changed`` for these changes (each partner's number and
        its stage before, in partner number order) to ``stage``, numbered from ``first`` in
        that order, EVENT_CHUNK partners a statement: built by the database from arrays of
        what the change knows, without reading a row."""
        for start in range(0, len(changes), EVENT_CHUNK):
            chunk = changes[start : start + EVENT_CHUNK]
            result = self.session.execute(
                text(_INSERT_STAGE_EVENTS),
                {
                    "company_id": self.company_id,
                    "numbers": [row.number for row in chunk],
                    "previous": [row.customer_stage for row in chunk],
                    "stage": stage,
                    "reason": reason,
                    "changed_by": json.dumps(changed_by),
                    "first": first + start,
                    "occurred_at": occurred_at,
                },
            )
            _all_written(result, len(chunk), "stage")

    def list_(self, f: PartnerFilter, page: PageRequest) -> RawPage[Partner]:
        stmt = self._select().where(*filter_conditions(self.company_id, f))
        result = paginate(self.session, stmt, sorting=PARTNER_SORTING, request=page)
        self._with_related(result.rows)
        return result

    def add(self, partner: Partner) -> None:
        self.session.add(partner)
        self.session.flush()

    def delete(self, partner: Partner) -> None:
        self.session.delete(partner)
        self.session.flush()

    def owner_name(self, user_id: uuid.UUID) -> str | None:
        """The name of the company's user ``user_id``; None when there is no such user."""
        return self.session.scalar(
            select(User.name).where(User.company_id == self.company_id, User.id == user_id)
        )

    def tags_by_key(self, names: Iterable[str]) -> dict[str, Tag]:
        keys = {tag_key(n) for n in names}
        if not keys:
            return {}
        tags = self.session.scalars(
            select(Tag).where(Tag.company_id == self.company_id, Tag.name_key.in_(keys))
        )
        return {t.name_key: t for t in tags}

    def replace_tags(self, partner: Partner, tag_ids: list[uuid.UUID]) -> None:
        self.session.execute(
            delete(PartnerTag).where(
                PartnerTag.company_id == self.company_id, PartnerTag.partner_id == partner.id
            )
        )
        if tag_ids:
            self.session.execute(
                insert(PartnerTag),
                [
                    {"company_id": self.company_id, "partner_id": partner.id, "tag_id": t}
                    for t in tag_ids
                ],
            )
        self.session.expire(partner, ["tags"])

    def lock_in_number_order(self, *conditions: Any) -> None:
        """Lock these partners in number order, the order every multi-partner writer uses, so
        that concurrent writers queue instead of deadlocking."""
        self.session.execute(
            select(Partner.id)
            .where(Partner.company_id == self.company_id, *conditions)
            .order_by(Partner.number)
            .with_for_update()
        ).all()

    def refresh_credit_states(self, check: str) -> list[Any]:
        """Re-evaluate every partner (after the company's credit check option changed);
        returns (number, version, credit_limit_exceeded) of those that flip, as they were."""
        expr = exceeded_sql(check)
        flipping = list(
            self.session.execute(
                select(Partner.number, Partner.version, Partner.credit_limit_exceeded)
                .where(Partner.company_id == self.company_id, Partner.credit_limit_exceeded != expr)
                .order_by(Partner.number)
                .with_for_update()
            )
        )
        self.session.execute(
            update(Partner)
            .where(Partner.company_id == self.company_id, Partner.credit_limit_exceeded != expr)
            .values(credit_limit_exceeded=expr, version=Partner.version + 1, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return flipping

    def count_matching(self, conditions: list[Any]) -> int:
        """How many partners match: one COUNT, no row locks."""
        stmt = (
            select(func.count())
            .select_from(Partner)
            .where(Partner.company_id == self.company_id, *conditions)
        )
        return int(self.session.scalar(stmt) or 0)

    def dormant(self, cutoff: date) -> list[Any]:
        """Conditions of the dormancy rule: ``active`` partners whose most recent
        non-cancelled sales order is dated before ``cutoff``. A partner with no such order at
        all is not dormant (it never ordered: nothing to go quiet)."""
        latest = (
            select(func.max(SalesOrder.order_date))
            .where(
                SalesOrder.company_id == self.company_id,
                SalesOrder.partner_id == Partner.id,
                SalesOrder.status != SalesOrderStatus.cancelled.value,
            )
            .scalar_subquery()
        )
        return [Partner.customer_stage == CustomerStage.active.value, latest < cutoff]

    def stage_rows(
        self,
        *,
        numbers: list[int] | None = None,
        conditions: list[Any] | None = None,
        lock: bool,
        limit: int | None = None,
    ) -> list[StageRow]:
        """id, number, customer_stage and version of the selected partners, by number.

        With ``limit``, at most that many (the first by number): a bound on the rows locked.
        """
        stmt = select(Partner.id, Partner.number, Partner.customer_stage, Partner.version).where(
            Partner.company_id == self.company_id
        )
        if numbers is not None:
            stmt = stmt.where(Partner.number.in_(numbers))
        stmt = stmt.where(*(conditions or [])).order_by(Partner.number)
        if limit is not None:
            stmt = stmt.limit(limit)
        if lock:
            stmt = stmt.with_for_update()
        return [StageRow(*row) for row in self.session.execute(stmt).all()]

    def set_stage(
        self,
        rows: list[StageRow],
        *,
        stage: str | None,
        reason: str,
        actor_id: uuid.UUID | None,
        at: datetime,
    ) -> None:
        """Set-based: one INSERT of history and one UPDATE per chunk of partners (through
        ``app.partners.stages.change_stage``, the one way to change stages).

        The caller holds the rows' locks. On PostgreSQL the database builds the history rows
        from the locked rows (INSERT ... SELECT), so only the ids travel; elsewhere one
        multi-row INSERT per chunk.
        """
        in_database = self.session.get_bind().dialect.name == "postgresql"
        for start in range(0, len(rows), BULK_CHUNK):
            chunk = rows[start : start + BULK_CHUNK]
            ids = [r.id for r in chunk]
            selected = (Partner.company_id == self.company_id, Partner.id.in_(ids))
            if in_database:
                history = select(
                    Partner.company_id,
                    func.gen_random_uuid(),
                    Partner.version + 1,
                    Partner.id,
                    Partner.customer_stage,
                    literal(stage, StageChange.stage.type),
                    literal(reason, StageChange.reason.type),
                    literal(at, StageChange.changed_at.type),
                    literal(actor_id, StageChange.changed_by_id.type),
                ).where(*selected)
                self.session.execute(insert(StageChange).from_select(HISTORY_COLUMNS, history))
            else:
                self.session.execute(
                    insert(StageChange),
                    [
                        {
                            "company_id": self.company_id,
                            "id": uuid.uuid4(),
                            "seq": r.version + 1,
                            "partner_id": r.id,
                            "previous_stage": r.customer_stage,
                            "stage": stage,
                            "reason": reason,
                            "changed_at": at,
                            "changed_by_id": actor_id,
                        }
                        for r in chunk
                    ],
                )
            self.session.execute(
                update(Partner)
                .where(*selected)
                .values(customer_stage=stage, version=Partner.version + 1, updated_at=at)
                .execution_options(synchronize_session=False)
            )
        # Partners loaded in the session get the UPDATE's effect without reading it back: the
        # caller holds their locks, so each row's new version is the one it was changed from
        # plus one. One loaded at another version is expired, to be read again.
        changed = {r.id: r for r in rows}
        for loaded in list(self.session.identity_map.values()):
            if not isinstance(loaded, Partner):
                continue
            state = inspect(loaded)
            row = changed.get(state.identity[1]) if state.identity else None
            if row is None:
                continue
            if state.dict.get("version") != row.version:
                self.session.expire(loaded)
                continue
            for key, value in (
                ("customer_stage", stage),
                ("version", row.version + 1),
                ("updated_at", at),
            ):
                set_committed_value(loaded, key, value)

    def stage_history(self, partner: Partner, page: PageRequest) -> RawPage[StageChange]:
        stmt = (
            select(StageChange)
            .where(StageChange.company_id == self.company_id, StageChange.partner_id == partner.id)
            .options(joinedload(StageChange.changed_by))
        )
        return paginate(self.session, stmt, sorting=STAGE_HISTORY_SORTING, request=page)

    def count(self) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(Partner)
                .where(Partner.company_id == self.company_id)
            )
            or 0
        )


EVENT_CHUNK = 10_000  # partners whose events one INSERT ... SELECT renders


def _all_written(result: Any, expected: int, kind: str) -> None:
    """Numbers were taken for each event: never leave a gap in the feed."""
    written = int(getattr(result, "rowcount", -1))
    if written != expected:
        raise RuntimeError(f"{written} {kind} events written for {expected} numbers taken")


# One partner.created/partner.updated event per partner, numbered from :first in number order,
# its data PartnerRead as PostgreSQL builds it (field for field, in its order): money as NUMERIC
# text ("1234.50"), instants as the API writes them (UTC, microseconds, "Z"), tags by name_key,
# locations by position, the owner from the maintained owner_id/owner_name.
_READ_EVENT_ROWS = """
SELECT p.company_id,
       {seq} + row_number() OVER (ORDER BY p.number),
       'evt_' || replace(gen_random_uuid()::text, '-', ''),
       CASE WHEN p.number = ANY(:created{s}) THEN 'partner.created' ELSE 'partner.updated' END,
       :at{s},
       json_build_object(
    'id', p.id, 'number', p.number, 'name', p.name, 'country', p.country,
    'vat_id', p.vat_id, 'currency', p.currency, 'email', p.email, 'phone', p.phone,
    'website', p.website,
    'owner', CASE WHEN p.owner_id IS NULL THEN NULL
             ELSE json_build_object('id', p.owner_id, 'name', p.owner_name) END,
    'tags', COALESCE((
        SELECT json_agg(t.name ORDER BY t.name_key)
        FROM partner_tags pt JOIN tags t ON t.company_id = pt.company_id AND t.id = pt.tag_id
        WHERE pt.company_id = p.company_id AND pt.partner_id = p.id), '[]'::json),
    'customer_stage', p.customer_stage,
    'credit_limit', p.credit_limit::text,
    'accounting_ref', p.accounting_ref,
    'locations', COALESCE((
        SELECT json_agg(json_build_object(
            'id', l.id, 'name', l.name, 'address', l.address, 'postal_code', l.postal_code,
            'city', l.city, 'country', l.country, 'is_primary', l.is_primary)
            ORDER BY l.position)
        FROM partner_locations l
        WHERE l.company_id = p.company_id AND l.partner_id = p.id), '[]'::json),
    'debtor_balance', p.debtor_balance::text,
    'debtor_balance_synced_at',
        to_char(p.debtor_balance_synced_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'credit_limit_exceeded', p.credit_limit_exceeded,
    'uninvoiced_total', p.uninvoiced_total::text,
    'latest_sales_delivery_date', p.latest_sales_delivery_date,
    'created_at', to_char(p.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'updated_at', to_char(p.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
       )::text
FROM partners p{from_}
WHERE p.company_id = :company_id{s} AND {which}
"""
_MANY = "p.number = ANY(:numbers{s})"
# One partner by scalar parameters: its row estimate is exact, so a prepared statement keeps
# its generic plan (with an array, PostgreSQL plans it again on every execution).
_ONE = "p.number = :number{s}"
# ... and as the writer knows it (see PartnerRepository.read_event_rows' ``expect``).
_ONE_AS_EXPECTED = (
    _ONE + " AND p.version = :version{s}"
    " AND p.credit_limit_exceeded IS NOT DISTINCT FROM CAST(:exceeded{s} AS boolean)"
)

_INSERT_READ_EVENTS = "INSERT INTO events (company_id, seq, id, type, occurred_at, data)\n" + (
    _READ_EVENT_ROWS.format(seq=":first - 1", s="", from_="", which=_MANY.format(s=""))
)


_INSERT_STAGE_EVENTS = """
INSERT INTO events (company_id, seq, id, type, occurred_at, data)
SELECT :company_id,
       :first - 1 + v.i,
       'evt_' || replace(gen_random_uuid()::text, '-', ''),
       'partner.stage_changed',
       :occurred_at,
       json_build_object(
           'number', v.number, 'previous_stage', v.previous,
           'stage', CAST(:stage AS text), 'reason', CAST(:reason AS text),
           'changed_by', CAST(:changed_by AS json))::text
FROM unnest(CAST(:numbers AS integer[]), CAST(:previous AS text[]))
    WITH ORDINALITY AS v(number, previous, i)
"""
