"""Tag SQL, scoped by company."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.core.pagination import PageRequest, RawPage, SortField, Sorting, paginate
from app.db.base import utcnow
from app.models import Partner, PartnerTag, Tag
from app.partners.repository import PartnerRepository
from app.tags.schemas import tag_key

_KEY = SortField.of(Tag.name_key)
TAG_SORTING = Sorting(
    fields={
        "name": _KEY,
    },
    tiebreak=_KEY,
    default="name",
)


@dataclass
class TagRepository:
    session: Session
    company_id: uuid.UUID

    def get(self, name: str) -> Tag | None:
        return self.session.scalar(
            select(Tag).where(Tag.company_id == self.company_id, Tag.name_key == tag_key(name))
        )

    def list_(self, page: PageRequest) -> RawPage[Tag]:
        stmt = select(Tag).where(Tag.company_id == self.company_id)
        return paginate(self.session, stmt, sorting=TAG_SORTING, request=page)

    def add(self, tag: Tag) -> None:
        self.session.add(tag)
        self.session.flush()

    def touch_partners_of(self, tag: Tag) -> None:
        tagged = select(PartnerTag.partner_id).where(
            PartnerTag.company_id == self.company_id, PartnerTag.tag_id == tag.id
        )
        PartnerRepository(self.session, self.company_id).lock_in_number_order(
            Partner.id.in_(tagged)
        )
        self.session.execute(
            update(Partner)
            .where(Partner.company_id == self.company_id, Partner.id.in_(tagged))
            .values(updated_at=utcnow(), version=Partner.version + 1)
            .execution_options(synchronize_session=False)
        )

    def delete(self, tag: Tag) -> None:
        self.session.delete(tag)
        self.session.flush()
