"""All partner SQL. Every query is scoped by the company the repository was built for."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session, joinedload, selectinload

from app.core.pagination import PageRequest, RawPage, SortField, Sorting, paginate
from app.models import Partner, PartnerTag, StageChange, Tag, User
from app.models.enums import STAGE_ORDER
from app.partners.schemas import PartnerFilter
from app.tags.schemas import tag_key

BULK_CHUNK = 1000
# The stage history columns bulk_set_stage fills, in the order of its INSERT ... SELECT.
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

STAGE_RANK = Partner.stage_rank


def _stage_rank(partner: Any) -> int | None:
    stage = partner.customer_stage
    return None if stage is None else [s.value for s in STAGE_ORDER].index(stage)


def _attr(name: str, value_type: type, *, nullable: bool = True) -> SortField:
    return SortField(
        getattr(Partner, name), value_type, lambda row: getattr(row, name), nullable=nullable
    )


PARTNER_NUMBER = _attr("number", int, nullable=False)

PARTNER_SORTING = Sorting(
    fields={
        "number": PARTNER_NUMBER,
        "name": _attr("name", str, nullable=False),
        "country": _attr("country", str, nullable=False),
        "customer_stage": SortField(STAGE_RANK, int, _stage_rank),
        "credit_limit": _attr("credit_limit", Decimal),
        "debtor_balance": _attr("debtor_balance", Decimal),
        "uninvoiced_total": _attr("uninvoiced_total", Decimal, nullable=False),
        "latest_sales_delivery_date": _attr("latest_sales_delivery_date", date),
        "created_at": _attr("created_at", datetime, nullable=False),
        "updated_at": _attr("updated_at", datetime, nullable=False),
    },
    tiebreak=PARTNER_NUMBER,
    default="number",
)

STAGE_HISTORY_SORTING = Sorting(
    fields={"changed_at": SortField(StageChange.seq, int, lambda row: row.seq, nullable=False)},
    tiebreak=SortField(StageChange.seq, int, lambda row: row.seq, nullable=False),
    default="-changed_at",
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


@dataclass
class PartnerRepository:
    session: Session
    company_id: uuid.UUID

    def _select(self) -> Any:
        return (
            select(Partner)
            .where(Partner.company_id == self.company_id)
            .options(
                selectinload(Partner.locations),
                selectinload(Partner.tags),
                joinedload(Partner.owner),
            )
        )

    def get(self, number: int, *, for_update: bool = False) -> Partner | None:
        stmt = (
            self._select().where(Partner.number == number).execution_options(populate_existing=True)
        )
        if for_update:
            stmt = stmt.with_for_update(of=Partner)
        return self.session.scalar(stmt)

    def get_by_id(self, partner_id: uuid.UUID, *, for_update: bool = False) -> Partner | None:
        stmt = (
            self._select().where(Partner.id == partner_id).execution_options(populate_existing=True)
        )
        if for_update:
            stmt = stmt.with_for_update(of=Partner)
        partner: Partner | None = self.session.scalar(stmt)
        return partner

    def list_(self, f: PartnerFilter, page: PageRequest) -> RawPage[Partner]:
        stmt = self._select().where(*filter_conditions(self.company_id, f))
        return paginate(self.session, stmt, sorting=PARTNER_SORTING, request=page)

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

    def add_stage_change(
        self,
        partner: Partner,
        *,
        previous: str | None,
        reason: str,
        actor_id: uuid.UUID | None,
        at: datetime,
    ) -> None:
        self.session.add(
            StageChange(
                company_id=self.company_id,
                partner_id=partner.id,
                seq=partner.version,
                previous_stage=previous,
                stage=partner.customer_stage,
                reason=reason,
                changed_at=at,
                changed_by_id=actor_id,
            )
        )

    def count_matching(self, conditions: list[Any]) -> int:
        """How many partners match: one COUNT, no row locks."""
        stmt = (
            select(func.count())
            .select_from(Partner)
            .where(Partner.company_id == self.company_id, *conditions)
        )
        return int(self.session.scalar(stmt) or 0)

    def stage_rows(
        self,
        *,
        numbers: list[int] | None = None,
        conditions: list[Any] | None = None,
        lock: bool,
        limit: int | None = None,
    ) -> list[Any]:
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
        return list(self.session.execute(stmt).all())

    def bulk_set_stage(
        self,
        rows: list[Any],
        *,
        stage: str,
        reason: str,
        actor_id: uuid.UUID | None,
        at: datetime,
    ) -> None:
        """Set-based: one INSERT of history and one UPDATE per chunk of partners.

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
        self.session.expire_all()

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
