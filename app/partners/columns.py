"""The partner spreadsheet columns, declared once, in order: the import template's header and
example row, the ``partners.csv`` export's header and cells, and what the import reads from each
column all come from ``PARTNER_COLUMNS``.

The columns are the fields of ``PartnerCreate`` by their JSON names, with three translations a
spreadsheet needs: ``number`` (present: update that partner; empty: create one), ``owner`` (the
user's email instead of ``owner_id``) and the primary location as ``address``, ``postal_code``
and ``city`` (its country is the partner's ``country``) instead of ``locations``. ``tags`` are
``;``-separated. tests/partners/imports checks that every field of ``PartnerCreate`` has its
column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from app.core.money import format_money
from app.partners.overview import split_tags, text_cell

# How the import reads a column: ``field`` is the schema field of the same name, ``number``
# picks the partner to update, ``owner`` is looked up by email, ``tags`` is split on ";",
# ``location`` is a field of the primary location.
ColumnKind = Literal["number", "field", "owner", "tags", "location"]
TAG_SEPARATOR = ";"
Row = Any  # a row of the export statement (``ImportRepository.export_rows``): columns by name


def guarded(value: str | None) -> str:
    """A text cell as the export writes it: ``text_cell``'s formula guard (a leading ``'``),
    and a text that starts with ``'`` itself gets one more, so the import, which strips one
    leading ``'`` (the spreadsheet text marker), reads every text back as it was."""
    if value and value.startswith("'"):
        return "'" + value
    return text_cell(value)


def _money(value: Decimal | None) -> str:
    return "" if value is None else format_money(value)


def _plain(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class PartnerColumn:
    name: str  # the header, and the JSON name it stands for
    kind: ColumnKind
    schema_field: str | None  # the field of PartnerCreate/PartnerUpdate it feeds
    cell: Callable[[Row], str]  # its export cell, from an export row
    example: str = ""  # the template's example row


def _column(
    name: str,
    kind: ColumnKind = "field",
    *,
    field: str | None = None,
    render: Callable[[Any], str] = guarded,
    example: str = "",
) -> PartnerColumn:
    def cell(row: Row) -> str:
        return render(getattr(row, name))

    schema_field = field if field is not None else (name if kind == "field" else None)
    return PartnerColumn(name, kind, schema_field, cell, example)


PARTNER_COLUMNS: tuple[PartnerColumn, ...] = (
    _column("number", "number", render=_plain),
    _column("name", example="Nordic Deli A/S"),
    _column("country", render=_plain, example="DK"),
    _column("vat_id", example="DK12345678"),
    _column("currency", render=_plain, example="DKK"),
    _column("email", example="orders@nordicdeli.example"),
    _column("phone", example="+45 33 12 34 56"),
    _column("website", example="https://www.nordicdeli.example"),
    _column("owner", "owner", field="owner_id"),
    _column("customer_stage", render=_plain, example="lead"),
    _column("credit_limit", render=_money, example="25000.00"),
    _column("accounting_ref"),
    PartnerColumn(
        "tags",
        "tags",
        "tags",
        lambda row: guarded(TAG_SEPARATOR.join(split_tags(row.tags))),
    ),
    _column("address", "location", field="locations", example="Vestergade 12"),
    _column("postal_code", "location", field="locations", example="1456"),
    _column("city", "location", field="locations", example="København K"),
)

HEADER: tuple[str, ...] = tuple(column.name for column in PARTNER_COLUMNS)
BY_NAME: dict[str, PartnerColumn] = {column.name: column for column in PARTNER_COLUMNS}
LOCATION_FIELDS: tuple[str, ...] = tuple(c.name for c in PARTNER_COLUMNS if c.kind == "location")
EXAMPLE_ROW: tuple[str, ...] = tuple(column.example for column in PARTNER_COLUMNS)


def export_cells(row: Row) -> list[str]:
    """One export row's cells, in column order."""
    return [column.cell(row) for column in PARTNER_COLUMNS]
