"""Partner import from a spreadsheet, its template, and the ``partners.csv`` export.

A row without a ``number`` creates a partner, a row with one updates that partner; an empty
cell leaves the field as it is (on a create: the field's default). Each row is validated by the
very schemas of ``POST /partners`` (``PartnerCreate``) and ``PATCH /partners/{number}``
(``PartnerUpdate``), and every error is reported by row and column. All or nothing: one bad
row stores nothing (422 ``import_invalid``); a dry run checks everything a real run does (the
owners, tags and numbers named, duplicates in the file, ``accounting_ref`` clashes) and
stores nothing.

Cells: a leading ``'`` is the spreadsheet's text marker and is dropped (the export writes it
before text a spreadsheet would take for a formula, so an exported file reads back as it was
written); a cell that starts with ``=`` is refused (``formula_not_allowed``): whatever a
formula meant, the file holds no value for it.

The primary location is ``address``, ``postal_code`` and ``city``. An import writes it only
when one of the three differs from what the partner has (so a round trip leaves partners with
locations made through the API alone), and then gives it the partner's country.

Writes are set-based: the numbers of new partners in one block, partners, locations and tags
inserted in chunks, changed partners updated in chunks (locked first, in number order, as
every multi-partner writer locks), stage changes through ``change_stage`` (history ``reason:
import``) and the partner events through ``app.partners.events`` as a create or an update
makes them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import SimpleNamespace
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.dependencies import Principal
from app.core.errors import Conflict, FieldError, UnsupportedMediaType
from app.core.types import tag_key
from app.db.base import utcnow
from app.idempotency.service import Idempotency
from app.models import Partner
from app.models.enums import CustomerStage, StageChangeReason
from app.numbers.repository import next_numbers
from app.partners import credit, events, spreadsheet
from app.partners.columns import BY_NAME, LOCATION_FIELDS, TAG_SEPARATOR
from app.partners.import_repository import CHUNK, Current, ImportRepository
from app.partners.repository import PartnerRepository, StageRow
from app.partners.schemas import ImportResult, PartnerCreate, PartnerFilter, PartnerUpdate
from app.partners.spreadsheet import RowError, import_invalid
from app.partners.stages import change_stage

# Columns whose cell is the schema field of the same name.
FIELDS = tuple(c.name for c in BY_NAME.values() if c.kind == "field")
# The partner columns an update may set (with the maintained ones it moves).
UPDATED_COLUMNS = (
    "name",
    "country",
    "vat_id",
    "currency",
    "email",
    "phone",
    "website",
    "owner_id",
    "owner_name",
    "credit_limit",
    "accounting_ref",
)
MAX_NUMBER = 2_147_483_647


def template(kind: str) -> bytes:
    """The import template (header and one example row) as ``csv`` or ``xlsx``."""
    return spreadsheet.template_xlsx() if kind == "xlsx" else spreadsheet.template_csv()


def export_csv(
    *, session: Session, principal: Principal, filters: PartnerFilter
) -> Iterator[bytes]:
    """``partners.csv``: every partner matching the list filters, in the import's columns."""
    rows = ImportRepository(session, principal.company_id).export_rows(filters)
    return spreadsheet.stream_export(rows)


def media_type_of(content_type: str | None) -> str:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in spreadsheet.MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"Send the file as {spreadsheet.CSV} or {spreadsheet.XLSX} (got {media or 'none'}).",
            errors=[
                FieldError(("header", "Content-Type"), "not a CSV or XLSX file", "unsupported")
            ],
        )
    return media


# --- reading the rows -----------------------------------------------------------------------


@dataclass
class _Row:
    line: int  # the spreadsheet row number
    cells: dict[str, str]  # column -> text, the non-empty cells only


@dataclass
class _Plan:
    """What one row does, once valid."""

    row: _Row
    model: PartnerCreate | PartnerUpdate
    current: Current | None = None  # the partner a row with a number updates
    owner: tuple[uuid.UUID, str] | None = None
    tag_keys: list[str] | None = None  # the row's tags (None: the row leaves them)
    changes: dict[str, Any] = field(default_factory=dict)  # partner columns that change
    stage: str | None = None  # the stage it moves to, if it moves
    tags_change: bool = False
    location: tuple[str | None, str | None, str | None] | None = None  # to write, if it moves

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.stage or self.tags_change or self.location)


class _Errors:
    def __init__(self) -> None:
        self.items: list[RowError] = []
        self._seen: set[tuple[int, str | None, str, str]] = set()
        self.rows: set[int] = set()

    def add(self, row: int, column: str | None, code: str, message: str) -> None:
        key = (row, column, code, message)
        if key not in self._seen:
            self._seen.add(key)
            self.items.append(RowError.at(row, column, code, message))
            self.rows.add(row)


def _columns(header: list[str], errors: _Errors) -> list[str | None]:
    """Each header cell's column (None: an unnamed column, which must stay empty)."""
    names: list[str | None] = []
    seen: set[str] = set()
    for text in header:
        name = text.strip().lower()
        if not name:
            names.append(None)
        elif name not in BY_NAME:
            errors.add(1, text, "unknown_column", f"unknown column {text!r}")
            names.append(None)
        elif name in seen:
            errors.add(1, text, "duplicate_column", f"column {name!r} appears twice")
            names.append(None)
        else:
            seen.add(name)
            names.append(name)
    return names


def _cell(raw: str) -> tuple[str, bool]:
    """The cell's text, and whether it is a formula (refused)."""
    if raw.startswith("'"):
        return raw[1:].strip(), False
    text = raw.strip()
    return text, text.startswith("=")


def _rows(sheet: spreadsheet.Sheet, names: list[str | None], errors: _Errors) -> list[_Row]:
    rows: list[_Row] = []
    width = len(names)
    for line, raw in sheet.rows:
        cells: dict[str, str] = {}
        for index, value in enumerate(raw):
            name = names[index] if index < width else None
            text, formula = _cell(value)
            if not text:
                continue
            if name is None:
                if index >= width or not sheet.header[index].strip():
                    errors.add(line, None, "cell_outside_columns", "a cell under no column")
                continue  # an unknown column: reported once, on row 1
            if formula:
                errors.add(
                    line,
                    name,
                    "formula_not_allowed",
                    "a formula is not a value: enter the value (a leading ' keeps text "
                    "starting with = as text)",
                )
                continue
            cells[name] = text
        rows.append(_Row(line, cells))
    return rows


def _number(row: _Row, errors: _Errors) -> int | None:
    text = row.cells.get("number")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_NUMBER:
        errors.add(row.line, "number", "invalid_number", "must be a partner number (1 or more)")
        return None
    return int(text)


def _tag_names(text: str) -> list[str]:
    return [name.strip(" ") for name in text.split(TAG_SEPARATOR) if name.strip()]


def _column_of(loc: Sequence[Any]) -> str | None:
    if not loc:
        return None
    head = loc[0]
    if head == "owner_id":
        return "owner"
    if head == "locations":
        return str(loc[2]) if len(loc) > 2 and str(loc[2]) in BY_NAME else None
    return str(head) if str(head) in BY_NAME else None


def _validate(
    schema: type[PartnerCreate] | type[PartnerUpdate],
    payload: dict[str, Any],
    line: int,
    errors: _Errors,
) -> PartnerCreate | PartnerUpdate | None:
    try:
        return schema.model_validate(payload)
    except ValidationError as exc:
        flagged = {e.column for e in errors.items if e.row == line}  # e.g. a formula cell
        for error in exc.errors():
            column = _column_of(error["loc"])
            if error["loc"][:1] == ("locations",) and column == "country":
                continue  # the location's country is the row's: its error is the country's
            if column not in flagged or column is None:
                errors.add(line, column, error["type"], error["msg"])
        return None


def _payload(
    row: _Row, current: Current | None, owner: tuple[uuid.UUID, str] | None
) -> dict[str, Any]:
    """The row as the body of ``POST /partners`` (no current partner) or of ``PATCH``."""
    cells = row.cells
    payload: dict[str, Any] = {name: cells[name] for name in FIELDS if name in cells}
    if owner is not None:
        payload["owner_id"] = owner[0]
    if "tags" in cells:
        payload["tags"] = _tag_names(cells["tags"])
    if any(name in cells for name in LOCATION_FIELDS):
        location: dict[str, Any] = {
            name: cells.get(name, getattr(current, name) if current else None)
            for name in LOCATION_FIELDS
        }
        location["country"] = cells.get("country", current.country if current else None)
        location["is_primary"] = True
        payload["locations"] = [location]
    return payload


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _diff(plan: _Plan, current: Current, tag_ids: dict[str, uuid.UUID]) -> None:
    """What the row changes of its partner."""
    model = plan.model
    given = model.model_fields_set
    for name in FIELDS:
        if name in given and name != "customer_stage":
            value = _plain(getattr(model, name))
            if value != getattr(current, name):
                plan.changes[name] = value
    if plan.owner is not None and plan.owner[0] != current.owner_id:
        plan.changes["owner_id"], plan.changes["owner_name"] = plan.owner
    if "customer_stage" in given and model.customer_stage is not None:
        stage = model.customer_stage.value
        plan.stage = stage if stage != current.customer_stage else None
    if plan.tag_keys is not None:
        wanted = {tag_ids.get(key) for key in plan.tag_keys}
        plan.tags_change = None in wanted or wanted != set(current.tag_ids)
    if model.locations:
        new = model.locations[0]
        location = (new.address, new.postal_code, new.city)
        if location != (current.address, current.postal_code, current.city):
            plan.location = location


# --- the use-case ---------------------------------------------------------------------------


def import_partners(
    *,
    session: Session,
    principal: Principal,
    data: bytes,
    media_type: str,
    dry_run: bool,
    create_tags: bool,
    max_rows: int,
    max_bytes: int,
    idempotency: Idempotency[ImportResult] | None = None,
) -> ImportResult:
    sheet = spreadsheet.read(data, media_type, max_rows=max_rows, max_bytes=max_bytes)
    errors = _Errors()
    names = _columns(sheet.header, errors)
    rows = _rows(sheet, names, errors)
    company_id = principal.company_id
    repo = ImportRepository(session, company_id)

    # The partners named: each once, existing, locked (in number order) unless a dry run.
    numbers: dict[int, int] = {}  # row -> partner number
    first_row: dict[int, int] = {}
    for row in rows:
        number = _number(row, errors)
        if number is None:
            continue
        if number in first_row:
            errors.add(
                row.line,
                "number",
                "duplicate_number",
                f"partner {number} is already in row {first_row[number]}",
            )
            continue
        first_row[number] = row.line
        numbers[row.line] = number
    wanted = sorted(numbers.values())
    if not dry_run:
        partners = PartnerRepository(session, company_id)
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            partners.stage_rows(conditions=[repo.in_(Partner.number, chunk)], lock=True)
    current = repo.current(wanted)

    # Owners and tags, each looked up once for the whole file.
    users = repo.users_by_email(r.cells["owner"] for r in rows if "owner" in r.cells)
    tag_ids = repo.tags_by_key(
        tag_key(name) for r in rows if "tags" in r.cells for name in _tag_names(r.cells["tags"])
    )

    plans: list[_Plan] = []
    for row in rows:
        if "number" in row.cells and row.line not in numbers:
            continue  # an invalid or repeated number: reported
        number = numbers.get(row.line)
        partner = current.get(number) if number is not None else None
        if number is not None and partner is None:
            errors.add(row.line, "number", "partner_not_found", f"partner {number} does not exist")
            continue
        owner = None
        if "owner" in row.cells:
            owner = users.get(row.cells["owner"].lower())
            if owner is None:
                errors.add(
                    row.line,
                    "owner",
                    "unknown_owner",
                    f"no user has the email {row.cells['owner']!r}",
                )
        schema = PartnerCreate if partner is None else PartnerUpdate
        model = _validate(schema, _payload(row, partner, owner), row.line, errors)
        if model is None or (owner is None and "owner" in row.cells):
            continue
        plan = _Plan(row, model, partner, owner)
        if "tags" in model.model_fields_set and model.tags is not None:
            plan.tag_keys = [tag_key(name) for name in model.tags]
        plans.append(plan)

    # Tags nobody has made yet: an error, or made by this import.
    new_tags: dict[str, str] = {}  # key -> name, as first written
    for plan in plans:
        for name, key in zip(plan.model.tags or [], plan.tag_keys or [], strict=True):
            if key in tag_ids:
                continue
            if create_tags:
                new_tags.setdefault(key, name)
            else:
                errors.add(
                    plan.row.line, "tags", "unknown_tag", f"unknown tag {name!r}: create it first"
                )

    for plan in plans:
        if plan.current is not None:
            _diff(plan, plan.current, tag_ids)
    _check_refs(plans, repo, errors)
    if errors.items:
        raise import_invalid(errors.items)

    creates = [p for p in plans if p.current is None]
    updates = [p for p in plans if p.current is not None and p.changed]
    result = ImportResult(
        dry_run=dry_run,
        created=len(creates),
        updated=len(updates),
        unchanged=len(plans) - len(creates) - len(updates),
        numbers_created=[],
    )
    if dry_run:
        if idempotency is not None:  # a dry run with a key replays its answer too
            idempotency.record(session, result)
            session.commit()
        return result
    try:
        if new_tags:
            tag_ids.update(repo.insert_tags(_pairs(new_tags)))
        _write_updates(session, principal, repo, updates, tag_ids)
        result.numbers_created = _write_creates(session, principal, repo, creates, tag_ids)
        if idempotency is not None:
            idempotency.record(session, result)
        session.commit()
    except IntegrityError as exc:  # e.g. an accounting_ref taken by a concurrent change
        session.rollback()
        raise Conflict(
            "The import conflicts with a change made at the same time (e.g. an "
            "accounting_ref taken meanwhile); nothing was imported. Retry.",
            code="conflict",
        ) from exc
    return result


def _pairs(new_tags: dict[str, str]) -> list[tuple[str, str]]:
    return [(name, key) for key, name in new_tags.items()]


def _check_refs(plans: list[_Plan], repo: ImportRepository, errors: _Errors) -> None:
    """accounting_ref stays unique: not twice in the file, nor held by another partner that
    keeps it."""
    given: dict[str, _Plan] = {}
    for plan in plans:
        ref = plan.model.accounting_ref
        if ref is None or "accounting_ref" not in plan.model.model_fields_set:
            continue
        if ref in given:
            errors.add(
                plan.row.line,
                "accounting_ref",
                "duplicate_accounting_ref",
                f"accounting_ref {ref!r} is already in row {given[ref].row.line}",
            )
            continue
        given[ref] = plan
    holders = repo.ref_holders(given)
    leaving = {
        p.current.number for p in plans if p.current is not None and "accounting_ref" in p.changes
    }
    for ref, plan in given.items():
        holder = holders.get(ref)
        mine = plan.current.number if plan.current is not None else None
        if holder is not None and holder != mine and holder not in leaving:
            errors.add(
                plan.row.line,
                "accounting_ref",
                "accounting_ref_taken",
                f"partner {holder} already has accounting_ref {ref!r}",
            )


def _write_updates(
    session: Session,
    principal: Principal,
    repo: ImportRepository,
    updates: list[_Plan],
    tag_ids: dict[str, uuid.UUID],
) -> None:
    if not updates:
        return
    company_id = principal.company_id
    now = utcnow()
    olds = [p.current for p in updates if p.current is not None]
    events.touched(session, company_id, olds)
    by_stage: dict[str, list[StageRow]] = defaultdict(list)
    for plan in updates:
        old = plan.current
        assert old is not None
        if plan.stage is not None:
            by_stage[plan.stage].append(
                StageRow(old.id, old.number, old.customer_stage, old.version)
            )
    for stage, stage_rows in by_stage.items():
        change_stage(
            session=session,
            company_id=company_id,
            partners=stage_rows,
            stage=CustomerStage(stage),
            reason=StageChangeReason.import_,
            actor=principal.user,
            at=now,
        )
    moved = [p for p in updates if p.changes or p.tags_change or p.location]
    repo.clear_accounting_refs(
        [p.current.id for p in moved if p.current is not None and "accounting_ref" in p.changes]
    )
    rows: list[dict[str, Any]] = []
    for plan in moved:
        old = plan.current
        assert old is not None
        values = {name: plan.changes.get(name, getattr(old, name)) for name in UPDATED_COLUMNS}
        values["credit_limit_exceeded"] = credit.is_exceeded(
            balance=old.debtor_balance,
            limit=values["credit_limit"],
            uninvoiced=old.uninvoiced_total,
            check=principal.company.credit_check,
        )
        rows.append({"b_id": old.id, **values, "updated_at": now})
    repo.update_partners(rows)
    retagged = [p for p in moved if p.tags_change]
    repo.replace_tags(
        [p.current.id for p in retagged if p.current is not None],
        [
            (p.current.id, tag_ids[key])
            for p in retagged
            if p.current is not None
            for key in p.tag_keys or []
        ],
    )
    changed_places = [
        (p, p.changes.get("country", p.current.country))
        for p in moved
        if p.location is not None and p.current is not None
    ]
    repo.update_locations(
        [
            {
                "b_id": p.current.location_id,
                "address": p.location[0],
                "postal_code": p.location[1],
                "city": p.location[2],
                "country": country,
            }
            for p, country in changed_places
            if p.current is not None and p.location is not None and p.current.location_id
        ]
    )
    repo.insert_locations(
        [
            {
                "partner_id": p.current.id,
                "address": p.location[0],
                "postal_code": p.location[1],
                "city": p.location[2],
                "country": country,
                "is_primary": True,
            }
            for p, country in changed_places
            if p.current is not None and p.location is not None and not p.current.location_id
        ]
    )


def _write_creates(
    session: Session,
    principal: Principal,
    repo: ImportRepository,
    creates: list[_Plan],
    tag_ids: dict[str, uuid.UUID],
) -> list[int]:
    if not creates:
        return []
    company_id = principal.company_id
    now = utcnow()
    numbers = list(next_numbers(session, company_id, "partner", len(creates)))
    partners: list[dict[str, Any]] = []
    locations: list[dict[str, Any]] = []
    tags: list[tuple[uuid.UUID, uuid.UUID]] = []
    staged: dict[str, list[StageRow]] = defaultdict(list)
    for plan, number in zip(creates, numbers, strict=True):
        data = plan.model
        assert isinstance(data, PartnerCreate)
        partner_id = uuid.uuid4()
        partners.append(
            {
                "company_id": company_id,
                "id": partner_id,
                "number": number,
                "name": data.name,
                "country": _plain(data.country),
                "vat_id": data.vat_id,
                "currency": _plain(data.currency) or principal.company.base_currency,
                "email": data.email,
                "phone": data.phone,
                "website": data.website,
                "owner_id": plan.owner[0] if plan.owner else None,
                "owner_name": plan.owner[1] if plan.owner else None,
                "customer_stage": None,  # set below, with its history
                "credit_limit": data.credit_limit,
                "accounting_ref": data.accounting_ref,
                "credit_limit_exceeded": False,  # no debtor balance yet
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
        if data.locations:
            place = data.locations[0]
            locations.append(
                {
                    "partner_id": partner_id,
                    "address": place.address,
                    "postal_code": place.postal_code,
                    "city": place.city,
                    "country": _plain(data.country),
                    "is_primary": True,
                }
            )
        tags.extend((partner_id, tag_ids[key]) for key in plan.tag_keys or [])
        if data.customer_stage is not None:
            staged[data.customer_stage.value].append(StageRow(partner_id, number, None, 1))
    repo.insert_partners(partners)
    events.touched(
        session,
        company_id,
        [SimpleNamespace(number=n, version=1, credit_limit_exceeded=False) for n in numbers],
        created=True,
    )
    repo.insert_locations(locations)
    repo.insert_partner_tags(tags)
    for stage, rows in staged.items():
        change_stage(
            session=session,
            company_id=company_id,
            partners=rows,
            stage=CustomerStage(stage),
            reason=StageChangeReason.import_,
            actor=principal.user,
            at=now,
        )
    return numbers
