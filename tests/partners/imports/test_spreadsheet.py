"""Reading files into text cells: XLSX numbers without a float's noise, CSV positions."""

from __future__ import annotations

import io
from datetime import date

import pytest
import xlsxwriter

from app.core.errors import ValidationFailed
from app.partners.spreadsheet import _xlsx_text, read_csv, read_xlsx


@pytest.mark.parametrize(
    ("value", "money", "text"),
    [
        (12.5, True, "12.50"),
        (1500, True, "1500.00"),
        (1500.0, True, "1500.00"),
        (0.07000000000000001, True, "0.07"),
        (12.345, True, "12.345"),  # left for the schema to refuse
        (1234.0, False, "1234"),
        (4512345678.0, False, "4512345678"),
        (8000, False, "8000"),
        (2.5, False, "2.5"),
        (True, False, "true"),
        (date(2026, 1, 2), False, "2026-01-02"),
        ("0800", False, "0800"),
        (None, False, ""),
    ],
)
def test_xlsx_values_read_as_the_text_a_csv_would_hold(
    value: object, money: bool, text: str
) -> None:
    assert _xlsx_text(value, money) == text


def test_an_xlsx_formula_cell_gives_its_stored_result() -> None:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["name", "credit_limit"])
    sheet.write_string(1, 0, "Deli")
    sheet.write_formula(1, 1, "=1000+500", None, 1500)
    book.close()
    read = read_xlsx(buffer.getvalue(), max_rows=10, max_bytes=1 << 20)
    assert read.header == ["name", "credit_limit"]
    assert read.rows == [(2, ["Deli", "1500.00"])]


def test_xlsx_rows_keep_their_sheet_numbers_past_blank_rows() -> None:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["name", "country"])
    sheet.write_row(4, 0, ["Deli", "DK"])
    book.close()
    read = read_xlsx(buffer.getvalue(), max_rows=10, max_bytes=1 << 20)
    assert read.rows == [(5, ["Deli", "DK"])]


def test_a_csv_cell_spanning_lines_is_one_row() -> None:
    read = read_csv(b'name,city\r\n"Two\r\nlines",Aarhus\r\nNext,Odense\r\n', max_rows=10)
    assert read.rows == [(2, ["Two\r\nlines", "Aarhus"]), (3, ["Next", "Odense"])]


def test_a_byte_that_is_not_utf8_at_the_start_of_a_row() -> None:
    with pytest.raises(ValidationFailed) as caught:
        read_csv(b"name,city\r\nOne,A\r\n\xff,B\r\n", max_rows=10)
    [error] = caught.value.errors
    assert error.as_dict()["row"] == 3
    assert error.as_dict()["column"] == "name"
