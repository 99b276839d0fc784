"""The overview as a spreadsheet (XLSX), in bounded memory.

xlsxwriter in ``constant_memory`` mode writes each row out as soon as the next one starts, to
a temporary file of its own, and the finished workbook goes into a spooled temporary file
(memory for a small one, disk past ``SPOOL_BYTES``) that is streamed back in chunks: memory
stays flat whatever the number of rows (see ``bench/xlsx.py``). A ZIP cannot be streamed
before it is complete, so the file is built first and then sent.

Cells are typed by the columns' own declaration (``Column.xlsx`` of ``OVERVIEW_COLUMNS``):
numbers and money as numbers (money with two decimals), dates and UTC datetimes as Excel
dates, booleans as booleans, text as strings. Text is written with ``write_string`` only, so
no cell is ever a formula (nothing to guard, unlike the CSV's leading quote). The header row
holds the JSON field names, is frozen and carries an autofilter.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import IO, Any

import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from app.partners.overview import OVERVIEW_COLUMNS, CellKind, Column

MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SHEET_NAME = "CRM overview"
SPOOL_BYTES = 4 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
# Excel's last row (1,048,576) minus the header.
MAX_ROWS = 1_048_575

_NUMBER_FORMATS: dict[CellKind, str | None] = {
    "integer": "0",
    "money": "#,##0.00",
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm:ss",  # in UTC: Excel has no time zones
    "boolean": None,
    "text": "@",
}


class TooManyRows(Exception):
    """More rows than a worksheet holds."""


def _utc_naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


Writer = Callable[[int, int, Any], Any]


def _writer(sheet: Worksheet, kind: CellKind, fmt: Any) -> Writer:
    if kind == "text":
        return lambda r, c, v: sheet.write_string(r, c, str(v), fmt)
    if kind == "integer":
        return lambda r, c, v: sheet.write_number(r, c, v, fmt)
    if kind == "money":
        return lambda r, c, v: sheet.write_number(r, c, float(v), fmt)
    if kind == "boolean":
        return lambda r, c, v: sheet.write_boolean(r, c, bool(v))
    if kind == "date":
        return lambda r, c, v: sheet.write_datetime(r, c, v, fmt)
    return lambda r, c, v: sheet.write_datetime(r, c, _utc_naive(v), fmt)


def write_xlsx(
    rows: Iterable[Any], out: IO[bytes], *, columns: Sequence[Column] = OVERVIEW_COLUMNS
) -> int:
    """Write the rows, in these columns, as a workbook to ``out``; answers the row count.
    Raises ``TooManyRows`` past a worksheet's last row (nothing usable is written then)."""
    book = xlsxwriter.Workbook(
        out,
        {
            "constant_memory": True,
            # Belt and braces: only write_string writes text, and it never converts.
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
        },
    )
    try:
        sheet = book.add_worksheet(SHEET_NAME)
        header = book.add_format({"bold": True, "bottom": 1})
        formats = {
            kind: book.add_format({"num_format": number_format}) if number_format else None
            for kind, number_format in _NUMBER_FORMATS.items()
        }
        plan: list[tuple[int, Callable[[Any], Any], Writer]] = []
        for index, column in enumerate(columns):
            cell = column.xlsx
            # Wide enough for the header and its autofilter button too.
            sheet.set_column(index, index, max(cell.width, len(column.name) + 3))
            plan.append((index, cell.value, _writer(sheet, cell.kind, formats[cell.kind])))
        sheet.freeze_panes(1, 0)
        for index, column in enumerate(columns):
            sheet.write_string(0, index, column.name, header)
        count = 0
        for count, row in enumerate(rows, start=1):
            if count > MAX_ROWS:
                raise TooManyRows
            for index, value_of, write in plan:
                value = value_of(row)
                if value is not None:
                    write(count, index, value)
        sheet.autofilter(0, 0, max(count, 1), max(len(columns) - 1, 0))
    finally:
        book.close()
    return count


def build_xlsx(rows: Iterable[Any], *, columns: Sequence[Column] = OVERVIEW_COLUMNS) -> IO[bytes]:
    """The workbook in a spooled temporary file, positioned at its start (the caller closes
    it; ``chunks`` does)."""
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed by chunks)
    try:
        write_xlsx(rows, out, columns=columns)
        out.seek(0)
    except BaseException:
        out.close()
        raise
    return out


def size_of(file: IO[bytes]) -> int:
    position = file.tell()
    file.seek(0, 2)
    size = file.tell()
    file.seek(position)
    return size


def chunks(file: IO[bytes]) -> Iterator[bytes]:
    """The file's bytes in chunks; closes (and so deletes) it at the end."""
    try:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk
    finally:
        file.close()
