"""The overview's columns are declared once (``OVERVIEW_COLUMNS``): the row schema, the CSV
header, the sorts and the sort indexes all follow that one list."""

from __future__ import annotations

from app.crm.csv import HEADER
from app.crm.repository import OVERVIEW_SORTING
from app.models.partner import OVERVIEW_SORT_COLUMNS
from app.partners.overview import OVERVIEW_COLUMNS, OverviewRow

NAMES = [column.name for column in OVERVIEW_COLUMNS]


def test_the_row_schema_and_the_csv_header_are_the_columns_in_order() -> None:
    assert list(OverviewRow.model_fields) == NAMES
    assert HEADER == NAMES


def test_the_sorts_are_the_sortable_columns() -> None:
    assert list(OVERVIEW_SORTING.fields) == [c.name for c in OVERVIEW_COLUMNS if c.sort]


def test_every_sort_but_the_number_has_its_index() -> None:
    sorted_on = {c.sort.expression.key for c in OVERVIEW_COLUMNS if c.sort and c.name != "number"}
    assert sorted_on == set(OVERVIEW_SORT_COLUMNS)
