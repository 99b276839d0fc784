"""GET /api/v1/crm/overview.xlsx: a real spreadsheet, opened with openpyxl and compared cell by
cell with the JSON overview (typed cells, frozen header, widths, autofilter), with the same
filters, sort and saved views as the CSV, and text that is never a formula."""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.orm import Session

from app.crm import xlsx
from tests.conftest import Api, assert_problem
from tests.crm import dataset
from tests.helpers import OVERVIEW, OVERVIEW_FIELDS, create_partner, numbers, ok, walk

XLSX = f"{OVERVIEW}.xlsx"
MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def data(api: Api, session: Session) -> dataset.Dataset:
    return dataset.build(api, session)


def sheet_of(api: Api, **params: Any) -> Worksheet:
    r = api.get(XLSX, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MEDIA_TYPE
    assert int(r.headers["content-length"]) == len(r.content)
    book = openpyxl.load_workbook(io.BytesIO(r.content))
    assert len(book.worksheets) == 1
    return book.worksheets[0]


def rows_of(sheet: Worksheet) -> list[list[Any]]:
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def _utc_naive(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def expected_cell(name: str, value: Any) -> Any:
    """What the spreadsheet holds for a JSON overview value (None: an empty cell)."""
    if value is None:
        return None
    if name in ("credit_limit", "debtor_balance", "uninvoiced_total"):
        return float(Decimal(value))
    if name == "latest_sales_delivery_date":
        return datetime.combine(date.fromisoformat(value), datetime.min.time())
    if name == "debtor_balance_synced_at":
        return _utc_naive(value)
    if name == "tags":
        return ";".join(value) or None
    if name == "owner":
        return value["name"]
    return value


def test_the_spreadsheet_matches_the_json_overview_cell_by_cell(
    api: Api, data: dataset.Dataset
) -> None:
    r = api.get(XLSX)
    disposition = r.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="crm-overview-acme-')
    assert disposition.endswith('.xlsx"')
    sheet = sheet_of(api)
    rows = rows_of(sheet)
    json_rows = walk(api, OVERVIEW, limit=500)
    assert rows[0] == OVERVIEW_FIELDS
    assert len(rows) == len(json_rows) + 1
    for line, row in zip(rows[1:], json_rows, strict=True):
        assert line == [expected_cell(name, row[name]) for name in OVERVIEW_FIELDS], row
    # Typed cells: numbers are numbers, money has two decimals, dates are dates.
    by_name = {name: index + 1 for index, name in enumerate(OVERVIEW_FIELDS)}
    checked = set()
    for index, row in enumerate(json_rows, start=2):

        def cell(name: str, index: int = index) -> Any:
            return sheet.cell(row=index, column=by_name[name])

        assert cell("number").data_type == "n"
        assert isinstance(cell("number").value, int)
        assert cell("credit_limit_exceeded").data_type == "b"
        assert cell("name").data_type == "s"
        assert cell("uninvoiced_total").data_type == "n"
        assert cell("uninvoiced_total").number_format == "#,##0.00"
        if row["latest_sales_delivery_date"]:
            assert cell("latest_sales_delivery_date").is_date
            assert cell("latest_sales_delivery_date").number_format == "yyyy-mm-dd"
            checked.add("date")
        if row["debtor_balance_synced_at"]:
            assert cell("debtor_balance_synced_at").is_date
            checked.add("datetime")
        if row["credit_limit"]:
            assert cell("credit_limit").number_format == "#,##0.00"
            checked.add("money")
    assert checked == {"date", "datetime", "money"}


def test_the_header_is_frozen_filterable_and_columns_have_widths(
    api: Api, data: dataset.Dataset
) -> None:
    sheet = sheet_of(api)
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:L{len(data.rows) + 1}"
    assert all(cell.font.b for cell in sheet[1])
    widths = {letter: dim.width for letter, dim in sheet.column_dimensions.items()}
    assert widths["A"] > 5  # number
    assert widths["B"] > 30  # name


def test_filters_and_sort_apply_as_in_the_csv(api: Api, data: dataset.Dataset) -> None:
    params = {"customer_stage": ["lead", "active"], "sort": "-uninvoiced_total"}
    sheet = sheet_of(api, **params)
    assert [row[0] for row in rows_of(sheet)[1:]] == numbers(
        walk(api, OVERVIEW, limit=500, **params)
    )


def test_a_views_columns_filters_and_sort_shape_the_spreadsheet(
    api: Api, data: dataset.Dataset
) -> None:
    columns = ["uninvoiced_total", "name", "latest_sales_delivery_date", "number"]
    view = ok(
        api.post(
            "/api/v1/crm/views",
            json={
                "name": "Uninvoiced",
                "filters": {"country": "DK"},
                "sort": "-uninvoiced_total",
                "columns": columns,
            },
        ),
        201,
    )
    rows = rows_of(sheet_of(api, view=view["id"]))
    expected = walk(api, OVERVIEW, limit=500, country="DK", sort="-uninvoiced_total")
    assert rows[0] == columns
    assert rows[1:] == [[expected_cell(name, row[name]) for name in columns] for row in expected]
    # Explicit parameters replace the view's.
    rows = rows_of(sheet_of(api, view=view["id"], country="SE", sort="number"))
    assert [row[3] for row in rows[1:]] == numbers(
        walk(api, OVERVIEW, limit=500, country="SE", sort="number")
    )


def test_text_is_written_as_text_never_as_a_formula(api: Api) -> None:
    names = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2", "@SUM(A1)"]
    for name in names:
        create_partner(api, name=name, customer_stage="lead")
    sheet = sheet_of(api)
    cells = [sheet.cell(row=index, column=2) for index in range(2, len(names) + 2)]
    assert [c.value for c in cells] == names
    assert all(c.data_type == "s" for c in cells)


def test_no_rows_is_a_header_alone(api: Api) -> None:
    assert rows_of(sheet_of(api)) == [OVERVIEW_FIELDS]


def test_bad_parameters_are_422_before_any_byte(api: Api) -> None:
    assert_problem(api.get(XLSX, params={"sort": "balance"}), 422)
    assert_problem(api.get(XLSX, params={"country": "XX"}), 422)
    assert_problem(api.get(XLSX, params={"limit": "5"}), 422, "unknown_query_parameter")


def test_more_rows_than_a_worksheet_holds_is_422(
    api: Api, data: dataset.Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xlsx, "MAX_ROWS", 3)
    assert_problem(api.get(XLSX), 422, "too_many_rows")
    assert len(rows_of(sheet_of(api, customer_stage="lead"))) == 3  # two rows fit
