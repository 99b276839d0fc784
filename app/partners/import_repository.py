"""The SQL of partner imports and of the ``partners.csv`` export: set-based reads of what a
file refers to, and batched writes (one statement per chunk of rows, never one per partner).
Every query is scoped by the company the repository was built for."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ARRAY, and_, any_, bindparam, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session

from app.core.pagination import iterate
from app.models import Partner, PartnerLocation, PartnerTag, Tag, User
from app.partners.overview import TAG_SEPARATOR
from app.partners.repository import PARTNER_SORTING, filter_conditions
from app.partners.schemas import PartnerFilter

CHUNK = 5000  # rows per statement (and bound parameters well within every driver's limit)
_partners: Any = Partner.__table__
_locations: Any = PartnerLocation.__table__


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class Current:
    """A partner as an import row compares with it: its columns, owner, tags and primary
    location."""

    id: uuid.UUID
    number: int
    version: int
    name: str
    country: str
    vat_id: str | None
    currency: str
    email: str | None
    phone: str | None
    website: str | None
    owner_id: uuid.UUID | None
    owner_name: str | None
    customer_stage: str | None
    credit_limit: Decimal | None
    accounting_ref: str | None
    credit_limit_exceeded: bool
    debtor_balance: Decimal | None
    uninvoiced_total: Decimal
    tag_ids: frozenset[uuid.UUID]
    location_id: uuid.UUID | None = None
    address: str | None = None
    postal_code: str | None = None
    city: str | None = None


# The fields of Current that are columns of the partner itself.
_CURRENT_COLUMNS = [
    name
    for name in Current.__dataclass_fields__
    if name not in ("tag_ids", "location_id", "address", "postal_code", "city")
]


@dataclass
class ImportRepository:
    session: Session
    company_id: uuid.UUID

    def in_(self, column: Any, values: Sequence[Any]) -> Any:
        """``column IN values``; on PostgreSQL ``column = ANY(:array)``, one parameter however
        many values (a thousand separate parameters cost more to send than to look up)."""
        if self.session.get_bind().dialect.name == "postgresql":
            return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
        return column.in_(values)

    # --- the export -------------------------------------------------------------------------

    def export_rows(self, f: PartnerFilter) -> Iterator[Any]:
        """Every partner matching ``f`` with its owner's email, its tags (joined by
        ``TAG_SEPARATOR``) and its primary location, by number, in keyset batches."""
        dialect = self.session.get_bind().dialect.name
        names = select(Tag.name).join(
            PartnerTag, (PartnerTag.company_id == Tag.company_id) & (PartnerTag.tag_id == Tag.id)
        )
        names = names.where(
            PartnerTag.company_id == Partner.company_id, PartnerTag.partner_id == Partner.id
        )
        if dialect == "postgresql":
            agg = func.string_agg(Tag.name, literal(TAG_SEPARATOR))
        else:
            agg = func.group_concat(Tag.name, TAG_SEPARATOR)
        tags = names.with_only_columns(agg).scalar_subquery().label("tags")
        stmt = (
            select(
                Partner.number,
                Partner.name,
                Partner.country,
                Partner.vat_id,
                Partner.currency,
                Partner.email,
                Partner.phone,
                Partner.website,
                User.email.label("owner"),
                Partner.customer_stage,
                Partner.credit_limit,
                Partner.accounting_ref,
                tags,
                PartnerLocation.address,
                PartnerLocation.postal_code,
                PartnerLocation.city,
            )
            .select_from(Partner)
            .outerjoin(
                User, and_(User.company_id == Partner.company_id, User.id == Partner.owner_id)
            )
            .outerjoin(
                PartnerLocation,
                and_(
                    PartnerLocation.company_id == Partner.company_id,
                    PartnerLocation.partner_id == Partner.id,
                    PartnerLocation.is_primary.is_(True),
                ),
            )
            .where(Partner.company_id == self.company_id, *filter_conditions(self.company_id, f))
        )
        return iterate(self.session, stmt, sorting=PARTNER_SORTING, sort=None)

    # --- what a file refers to --------------------------------------------------------------

    def current(self, numbers: Sequence[int]) -> dict[int, Current]:
        """These partners as they are now (those that exist), with tags and primary location."""
        found: dict[int, Current] = {}
        columns = [getattr(_partners.c, name) for name in _CURRENT_COLUMNS]
        for chunk in _chunks(sorted(numbers)):
            rows = self.session.execute(
                select(*columns).where(
                    _partners.c.company_id == self.company_id, self.in_(_partners.c.number, chunk)
                )
            ).all()
            by_id: dict[uuid.UUID, Current] = {}
            tag_ids: dict[uuid.UUID, set[uuid.UUID]] = {}
            for row in rows:
                by_id[row.id] = Current(**row._mapping, tag_ids=frozenset())
                tag_ids[row.id] = set()
            ids = list(by_id)
            if not ids:
                continue
            for partner_id, tag_id in self.session.execute(
                select(PartnerTag.partner_id, PartnerTag.tag_id).where(
                    PartnerTag.company_id == self.company_id, self.in_(PartnerTag.partner_id, ids)
                )
            ):
                tag_ids[partner_id].add(tag_id)
            for location in self.session.execute(
                select(
                    _locations.c.partner_id,
                    _locations.c.id,
                    _locations.c.address,
                    _locations.c.postal_code,
                    _locations.c.city,
                ).where(
                    _locations.c.company_id == self.company_id,
                    self.in_(_locations.c.partner_id, ids),
                    _locations.c.is_primary.is_(True),
                )
            ):
                partner = by_id[location.partner_id]
                partner.location_id = location.id
                partner.address = location.address
                partner.postal_code = location.postal_code
                partner.city = location.city
            for partner_id, partner in by_id.items():
                partner.tag_ids = frozenset(tag_ids[partner_id])
                found[partner.number] = partner
        return found

    def users_by_email(self, emails: Iterable[str]) -> dict[str, tuple[uuid.UUID, str]]:
        """The company's users by lowercased email: (id, name)."""
        keys = sorted({e.lower() for e in emails})
        out: dict[str, tuple[uuid.UUID, str]] = {}
        for chunk in _chunks(keys):
            for key, user_id, name in self.session.execute(
                select(User.email_key, User.id, User.name).where(
                    User.company_id == self.company_id, self.in_(User.email_key, chunk)
                )
            ):
                out[key] = (user_id, name)
        return out

    def tags_by_key(self, keys: Iterable[str]) -> dict[str, uuid.UUID]:
        out: dict[str, uuid.UUID] = {}
        for chunk in _chunks(sorted(set(keys))):
            for key, tag_id in self.session.execute(
                select(Tag.name_key, Tag.id).where(
                    Tag.company_id == self.company_id, self.in_(Tag.name_key, chunk)
                )
            ):
                out[key] = tag_id
        return out

    def ref_holders(self, refs: Iterable[str]) -> dict[str, int]:
        """accounting_ref -> the number of the partner that has it."""
        out: dict[str, int] = {}
        for chunk in _chunks(sorted(set(refs))):
            for ref, number in self.session.execute(
                select(Partner.accounting_ref, Partner.number).where(
                    Partner.company_id == self.company_id, self.in_(Partner.accounting_ref, chunk)
                )
            ):
                if ref is not None:
                    out[ref] = number
        return out

    # --- writes -----------------------------------------------------------------------------

    def insert_tags(self, names: Sequence[tuple[str, str]]) -> dict[str, uuid.UUID]:
        """New tags from (name, name_key) pairs; returns their ids by key."""
        ids = {key: uuid.uuid4() for _, key in names}
        rows = [
            {"company_id": self.company_id, "id": ids[key], "name": name, "name_key": key}
            for name, key in names
        ]
        for chunk in _chunks(rows):
            self.session.execute(insert(Tag), list(chunk))
        return ids

    def insert_partners(self, rows: Sequence[dict[str, Any]]) -> None:
        for chunk in _chunks(rows):
            self.session.execute(insert(_partners), list(chunk))

    def insert_locations(self, rows: Sequence[dict[str, Any]]) -> None:
        full = [
            {"company_id": self.company_id, "id": uuid.uuid4(), "position": 0, "name": None, **r}
            for r in rows
        ]
        for chunk in _chunks(full):
            self.session.execute(insert(_locations), list(chunk))

    def insert_partner_tags(self, pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]) -> None:
        rows = [{"company_id": self.company_id, "partner_id": p, "tag_id": t} for p, t in pairs]
        for chunk in _chunks(rows):
            self.session.execute(insert(PartnerTag), list(chunk))

    def clear_accounting_refs(self, ids: Sequence[uuid.UUID]) -> None:
        """Free the refs these partners give up before any other partner takes one of them
        in the same import (the unique index holds at every statement)."""
        for chunk in _chunks(ids):
            self.session.execute(
                update(_partners)
                .where(_partners.c.company_id == self.company_id, self.in_(_partners.c.id, chunk))
                .values(accounting_ref=None)
            )

    def update_partners(self, rows: Sequence[dict[str, Any]]) -> None:
        """Set the given columns of each partner (``b_id`` names it; every row gives the same
        columns), bump its version: one executemany per chunk."""
        if not rows:
            return
        stmt = (
            update(_partners)
            .where(
                _partners.c.company_id == bindparam("b_company_id"),
                _partners.c.id == bindparam("b_id"),
            )
            .values(version=_partners.c.version + 1)
        )
        for chunk in _chunks(rows):
            self.session.execute(stmt, [{"b_company_id": self.company_id, **row} for row in chunk])

    def replace_tags(
        self, partner_ids: Sequence[uuid.UUID], pairs: Sequence[tuple[uuid.UUID, uuid.UUID]]
    ) -> None:
        for chunk in _chunks(partner_ids):
            self.session.execute(
                delete(PartnerTag).where(
                    PartnerTag.company_id == self.company_id, self.in_(PartnerTag.partner_id, chunk)
                )
            )
        self.insert_partner_tags(pairs)

    def update_locations(self, rows: Sequence[dict[str, Any]]) -> None:
        """Set address, postal_code, city and country of locations by ``b_id``."""
        if not rows:
            return
        stmt = update(_locations).where(
            _locations.c.company_id == bindparam("b_company_id"),
            _locations.c.id == bindparam("b_id"),
        )
        for chunk in _chunks(rows):
            self.session.execute(stmt, [{"b_company_id": self.company_id, **row} for row in chunk])
