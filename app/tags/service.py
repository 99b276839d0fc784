"""Tag use-cases."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.dependencies import Principal
from app.core.errors import Conflict, FieldError, NotFound
from app.core.etags import etag, moment
from app.core.pagination import PageRequest, RawPage
from app.idempotency.service import Idempotency
from app.models import Tag
from app.tags.repository import TagRepository
from app.tags.schemas import TagCreate, tag_key


def etag_of(tag: Tag) -> str:
    """Tags do not change once made; one deleted and made again has another moment."""
    return etag(moment(tag.created_at))


def _not_found(name: str) -> NotFound:
    return NotFound(f"Tag {name!r} does not exist.", code="tag_not_found")


def get(*, session: Session, principal: Principal, name: str) -> Tag:
    tag = TagRepository(session, principal.company_id).get(name)
    if tag is None:
        raise _not_found(name)
    return tag


def list_(*, session: Session, principal: Principal, page: PageRequest) -> RawPage[Tag]:
    return TagRepository(session, principal.company_id).list_(page)


def create(
    *,
    session: Session,
    principal: Principal,
    data: TagCreate,
    idempotency: Idempotency[Tag] | None = None,
) -> Tag:
    repo = TagRepository(session, principal.company_id)
    taken = Conflict(
        f"A tag named {data.name!r} exists already (names ignore case).",
        code="tag_exists",
        errors=[FieldError(("body", "name"), "already exists", "tag_exists")],
    )
    if repo.get(data.name) is not None:
        raise taken
    tag = Tag(company_id=principal.company_id, name=data.name, name_key=tag_key(data.name))
    try:
        repo.add(tag)
        if idempotency is not None:
            idempotency.record(session, tag)
        session.commit()
    except IntegrityError as exc:  # created by a concurrent request in the meantime
        session.rollback()
        raise taken from exc
    return tag


def delete(*, session: Session, principal: Principal, name: str) -> None:
    """Deletes the tag and takes it off every partner that has it."""
    repo = TagRepository(session, principal.company_id)
    tag = repo.get(name)
    if tag is None:
        raise _not_found(name)
    repo.touch_partners_of(tag)  # their representation changes: "changed since" must see it
    repo.delete(tag)
    session.commit()
