"""Saved views: who sees them (their creator; everyone of the company when shared), who
changes them (their creator, or an admin), and how the overview reads one. One commit per
write."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.auth.dependencies import Principal
from app.core.errors import Conflict, Forbidden, NotFound
from app.core.etags import check_if_match, etag
from app.core.pagination import PageRequest, RawPage, sort_values
from app.db.base import utcnow
from app.models import SavedView
from app.models.enums import Scope
from app.partners.overview import OVERVIEW_COLUMNS, OVERVIEW_SORTING
from app.partners.schemas import PartnerFilter
from app.views.repository import ViewRepository
from app.views.schemas import ViewCreate, ViewRead, ViewUpdate

MAX_VIEWS_PER_USER = 200
_SORTS = frozenset(sort_values(OVERVIEW_SORTING))
_COLUMN_NAMES = frozenset(column.name for column in OVERVIEW_COLUMNS)


@dataclass(frozen=True)
class Found:
    """A view with its creator's name (its `owner`)."""

    view: SavedView
    owner_name: str


def not_found(view_id: uuid.UUID) -> NotFound:
    # The same answer for a view that does not exist, one of another company and another
    # user's private view: nothing tells them apart.
    return NotFound(f"View {view_id} does not exist.", code="view_not_found")


def etag_of(found: Found) -> str:
    return etag(found.view.version)


# --- what a stored view holds ---------------------------------------------------------------


def _stored_filters(filters: PartnerFilter) -> str:
    return json.dumps(filters.model_dump(mode="json", exclude_none=True), sort_keys=True)


def _stored_columns(columns: list[Any] | None) -> str | None:
    return None if columns is None else json.dumps([str(c.value) for c in columns])


def filters_of(view: SavedView) -> PartnerFilter:
    """The view's filters, validated as when they were saved."""
    try:
        return PartnerFilter.model_validate(json.loads(view.filters or "{}"))
    except (ValueError, ValidationError):  # a filter rule tightened since it was saved
        raise Conflict(
            f"View {view.id} holds filters that are no longer valid; update its filters.",
            code="view_filters_invalid",
        ) from None


def sort_of(view: SavedView) -> str | None:
    """The view's sort; one the overview no longer offers reads as none."""
    return view.sort if view.sort in _SORTS else None


def columns_of(view: SavedView) -> tuple[str, ...] | None:
    """The view's columns in order; a column the overview no longer has is left out."""
    if view.columns is None:
        return None
    names = tuple(n for n in json.loads(view.columns) if n in _COLUMN_NAMES)
    return names or None


def read_of(found: Found) -> ViewRead:
    view = found.view
    return ViewRead.model_validate(
        {
            "id": view.id,
            "name": view.name,
            "filters": filters_of(view),
            "sort": sort_of(view),
            "columns": columns_of(view),
            "shared": view.shared,
            "owner": {"id": view.owner_id, "name": found.owner_name},
            "created_at": view.created_at,
            "updated_at": view.updated_at,
        }
    )


# --- reads ----------------------------------------------------------------------------------


def get(*, session: Session, principal: Principal, view_id: uuid.UUID) -> Found:
    """A view the principal may see (404 ``view_not_found`` otherwise)."""
    row = ViewRepository(session, principal.company_id).get(view_id, principal.user.id)
    if row is None:
        raise not_found(view_id)
    return Found(*row)


def list_(*, session: Session, principal: Principal, page: PageRequest) -> RawPage[Found]:
    """The views the principal may see: their own and the shared ones."""
    result = ViewRepository(session, principal.company_id).list_(principal.user.id, page)
    return RawPage(
        rows=[Found(row[0], row[1]) for row in result.rows],
        next_cursor=result.next_cursor,
        total=result.total,
    )


# --- writes ---------------------------------------------------------------------------------


def create(*, session: Session, principal: Principal, data: ViewCreate) -> Found:
    repo = ViewRepository(session, principal.company_id)
    if repo.count_owned(principal.user.id) >= MAX_VIEWS_PER_USER:
        raise Conflict(
            f"A user can save at most {MAX_VIEWS_PER_USER} views; delete one first.",
            code="too_many_views",
        )
    now = utcnow()
    view = SavedView(
        company_id=principal.company_id,
        id=uuid.uuid4(),
        owner_id=principal.user.id,
        name=data.name,
        filters=_stored_filters(data.filters),
        sort=data.sort.value if data.sort is not None else None,
        columns=_stored_columns(data.columns),
        shared=data.shared,
        version=1,
        created_at=now,
        updated_at=now,
    )
    repo.add(view)
    session.commit()
    return Found(view, principal.user.name)


def _changeable(
    session: Session, principal: Principal, view_id: uuid.UUID, if_match: str | None
) -> tuple[ViewRepository, Found]:
    """The view, locked, when the principal may change it: its creator or an admin (403
    ``not_view_owner`` for anyone else who sees it), and If-Match names its ETag."""
    repo = ViewRepository(session, principal.company_id)
    row = repo.get(view_id, principal.user.id, for_update=True)
    if row is None:
        raise not_found(view_id)
    found = Found(*row)
    if found.view.owner_id != principal.user.id and not principal.scope.allows(Scope.admin):
        raise Forbidden(
            "Only the view's creator, or a token with the 'admin' scope, can change or delete it.",
            code="not_view_owner",
        )
    check_if_match(if_match, etag_of(found))
    return repo, found


def update(
    *,
    session: Session,
    principal: Principal,
    view_id: uuid.UUID,
    data: ViewUpdate,
    if_match: str | None,
) -> Found:
    _, found = _changeable(session, principal, view_id, if_match)
    view = found.view
    sent = data.model_fields_set
    if not sent:
        return found
    if "name" in sent:
        view.name = data.name
    if "filters" in sent:
        view.filters = _stored_filters(data.filters)
    if "sort" in sent:
        view.sort = data.sort.value if data.sort is not None else None
    if "columns" in sent:
        view.columns = _stored_columns(data.columns)
    if "shared" in sent:
        view.shared = data.shared
    view.version += 1
    view.updated_at = utcnow()
    session.flush()
    session.commit()
    # Not read back through ``get``: an admin who made another user's view private no
    # longer sees it, but is answered with what they changed.
    return found


def delete(
    *, session: Session, principal: Principal, view_id: uuid.UUID, if_match: str | None
) -> None:
    repo, found = _changeable(session, principal, view_id, if_match)
    repo.delete(found.view)
    session.commit()
