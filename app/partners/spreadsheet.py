"""Partner spreadsheets as files: reading an uploaded CSV or XLSX into rows of text cells, and
writing the import template and the ``partners.csv`` export. What each column means is
``app.partners.columns``; what a row does is ``app.partners.imports``.

CSV is UTF-8 (a byte-order mark is accepted and written), comma-separated, or
semicolon-separated when the header line has semicolons and no commas (what a spreadsheet in
a Danish or German locale saves). XLSX is read with python-calamine: the Rust reader
(calamine) parses a 50,000-row sheet several times faster and in a fraction of the memory of
the pure-Python openpyxl, reads values only (a formula cell gives its stored result, nothing
is ever evaluated) and raises on a damaged file instead of reading part of it. It does hold
the sheet's whole used range in memory, densely: a tiny file with one cell at the far corner
of a sheet would ask for billions of cells, so the sheet's cell references are checked
(``_check_xlsx``) before calamine sees the file. Written XLSX (the template) comes from
xlsxwriter, with every column formatted as text so that numbers typed into it (postal codes,
phone numbers) stay as typed.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import xlsxwriter
from python_calamine import CalamineWorkbook

from app.core.errors import FieldError, ValidationFailed
from app.core.money import CENT
from app.partners.columns import EXAMPLE_ROW, HEADER, export_cells, guarded

CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEDIA_TYPES = (CSV, XLSX)
BOM = "\ufeff"

MAX_COLUMNS = 200  # far more than the partner columns: a wider sheet is no partner import
# An XLSX whose parts would expand to more than this many times the upload limit is refused
# before it is opened (a "zip bomb").
MAX_EXPANSION = 20
# Blank rows tolerated below the last row of data in an XLSX's used range.
BLANK_ROW_SLACK = 10_000


@dataclass(frozen=True)
class RowError(FieldError):
    """A problem of one cell (``column``) or one whole row (``column`` None), by its row
    number as a spreadsheet shows it (the header is row 1)."""

    row: int
    column: str | None

    @classmethod
    def at(cls, row: int, column: str | None, code: str, message: str) -> RowError:
        loc: tuple[str | int, ...] = ("body", row) if column is None else ("body", row, column)
        return cls(loc, message, code, row, column)

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "column": self.column,
            "code": self.code,
            "message": self.message,
            "loc": list(self.loc),
        }


# The most errors one answer lists; ``error_count`` always counts them all.
MAX_ERRORS_LISTED = 1000


def import_invalid(errors: list[RowError]) -> ValidationFailed:
    """422 ``import_invalid``: nothing was stored; ``errors`` names each row and column."""
    errors = sorted(errors, key=lambda e: (e.row, e.column or ""))
    first = errors[0]
    where = f"row {first.row}" + (f", column {first.column}" if first.column else "")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return ValidationFailed(
        f"The file has errors; nothing was imported. {where}: {first.message}{more}",
        code="import_invalid",
        errors=errors[:MAX_ERRORS_LISTED],
        extra={
            "error_count": len(errors),
            "errors_truncated": len(errors) > MAX_ERRORS_LISTED,
        },
    )


def unreadable(message: str) -> ValidationFailed:
    return ValidationFailed(
        f"The file cannot be read: {message}.",
        code="unreadable_file",
        errors=[FieldError(("body",), message, "unreadable_file")],
    )


def too_many_rows(max_rows: int) -> ValidationFailed:
    return ValidationFailed(
        f"The file has more than {max_rows:,} data rows, the most one import may hold. "
        "Split it into several files; nothing was imported.",
        code="too_many_rows",
        errors=[
            FieldError(("body",), f"more than {max_rows} data rows", "too_many_rows"),
        ],
        extra={"max_rows": max_rows},
    )


@dataclass
class Sheet:
    """A file's header (row 1) and its data rows that are not blank, each with its row number
    and its cells as text (``""`` for an empty cell)."""

    header: list[str]
    rows: list[tuple[int, list[str]]]


def read(data: bytes, media_type: str, *, max_rows: int, max_bytes: int) -> Sheet:
    if media_type == XLSX:
        return read_xlsx(data, max_rows=max_rows, max_bytes=max_bytes)
    return read_csv(data, max_rows=max_rows)


def _blank(cells: list[str]) -> bool:
    return all(not c.strip() for c in cells)


def _collect(rows: Iterable[tuple[int, list[str]]], max_rows: int) -> Sheet:
    header: list[str] | None = None
    data: list[tuple[int, list[str]]] = []
    for number, cells in rows:
        if header is None:
            header = [c.strip() for c in cells]
            continue
        if _blank(cells):
            continue
        if len(data) == max_rows:
            raise too_many_rows(max_rows)
        data.append((number, cells))
    if header is None or _blank(header):
        raise import_invalid(
            [RowError.at(1, None, "missing_header", "row 1 must name the columns")]
        )
    return Sheet(header, data)


# --- CSV ------------------------------------------------------------------------------------


def _delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    return ";" if ";" in first and "," not in first else ","


def read_csv(data: bytes, *, max_rows: int) -> Sheet:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _not_utf8(data, exc.start) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    records = enumerate(reader, start=1)
    try:
        return _collect(records, max_rows)
    except csv.Error as exc:
        row = reader.line_num or 1
        raise import_invalid([RowError.at(row, None, "malformed_csv", str(exc))]) from None


def _not_utf8(data: bytes, offset: int) -> ValidationFailed:
    """The row (and column) of the first byte that is not UTF-8: the records before it."""
    prefix = data[:offset].decode("utf-8-sig")
    records = list(csv.reader(io.StringIO(prefix, newline=""), delimiter=_delimiter(prefix)))
    if not prefix or prefix.endswith("\n") or not records:
        row, index = len(records) + 1, 0
    else:
        row, index = len(records), len(records[-1]) - 1
    header = [c.strip() for c in records[0]] if records and row > 1 else []
    column = header[index] if index < len(header) and header[index] else None
    return import_invalid(
        [
            RowError.at(
                row,
                column,
                "invalid_encoding",
                "the text is not UTF-8: save the file as CSV UTF-8",
            )
        ]
    )


# --- XLSX -----------------------------------------------------------------------------------

# A cell that holds something (not self-closing): its reference.
_CELL_REF = re.compile(
    rb'<(?:[A-Za-z_][\w.-]*:)?c\s[^>]*?\br="([A-Z]{1,3})([0-9]{1,7})"[^>]*?(?<!/)>'
)
_FIRST_SHEET = re.compile(rb'<(?:\w+:)?sheet\s[^>]*?\br:id="([^"]+)"')
_SHEET_TARGET = rb'<Relationship\s[^>]*?Id="%s"[^>]*?Target="([^"]+)"'


def _column_index(letters: bytes) -> int:
    index = 0
    for ch in letters:
        index = index * 26 + (ch - 64)
    return index


def _first_sheet(book: zipfile.ZipFile) -> str | None:
    workbook = book.read("xl/workbook.xml")
    found = _FIRST_SHEET.search(workbook)
    if found is None:
        return None
    rels = book.read("xl/_rels/workbook.xml.rels")
    target = re.search(_SHEET_TARGET % re.escape(found.group(1)), rels)
    if target is None:
        target = re.search(
            rb'<Relationship\s[^>]*?Target="([^"]+)"[^>]*?Id="%s"' % re.escape(found.group(1)),
            rels,
        )
    if target is None:
        return None
    path = target.group(1).decode()
    return path.lstrip("/") if path.startswith("/") else "xl/" + path


def _check_xlsx(data: bytes, *, max_rows: int, max_bytes: int) -> None:
    """Refuse, before calamine reads it, a workbook that would expand far beyond its size or
    whose first sheet reaches further than any partner import does."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as book:
            if sum(i.file_size for i in book.infolist()) > MAX_EXPANSION * max_bytes:
                raise unreadable("its parts expand to far more than an import can hold")
            path = _first_sheet(book)
            if path is None:
                return  # calamine decides
            last_row = last_column = 0
            with book.open(path) as sheet:
                tail = b""
                while chunk := sheet.read(1 << 20):
                    block = tail + chunk
                    cut = block.rfind(b"<")
                    for match in _CELL_REF.finditer(block, 0, cut if cut > 0 else len(block)):
                        last_column = max(last_column, _column_index(match.group(1)))
                        last_row = max(last_row, int(match.group(2)))
                    tail = block[cut:] if cut > 0 else b""
                for match in _CELL_REF.finditer(tail):
                    last_column = max(last_column, _column_index(match.group(1)))
                    last_row = max(last_row, int(match.group(2)))
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, zipfile.LargeZipFile):
        raise unreadable("it is not an XLSX workbook") from None
    if last_column > MAX_COLUMNS:
        raise unreadable(f"its first sheet has cells beyond column {MAX_COLUMNS}")
    if last_row > max_rows + 1 + BLANK_ROW_SLACK:
        raise too_many_rows(max_rows)


def _xlsx_text(value: Any, money: bool) -> str:
    """A cell's value as the text a CSV would hold: numbers without a float's noise (an
    integer-valued cell without ".0"; money with two decimals)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}.00" if money else str(value)
    if isinstance(value, float):
        try:
            exact = Decimal(repr(value))
        except InvalidOperation:
            return repr(value)
        if money:
            cents = exact.quantize(CENT) if exact.is_finite() and abs(exact) < 10**15 else exact
            return f"{cents:.2f}" if abs(exact - cents) < Decimal("1e-9") else str(exact)
        if value.is_integer() and abs(value) < 10**16:
            return str(int(value))
        return format(exact, "f")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


def read_xlsx(data: bytes, *, max_rows: int, max_bytes: int) -> Sheet:
    _check_xlsx(data, max_rows=max_rows, max_bytes=max_bytes)
    try:
        sheet = CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0)
        raw_rows = sheet.iter_rows()
        header_values = next(raw_rows, None)
    except Exception as exc:  # calamine raises its own errors, and others, on damaged files
        raise unreadable(f"it is not a readable XLSX workbook ({type(exc).__name__})") from None
    if header_values is None:
        raise import_invalid([RowError.at(1, None, "missing_header", "the sheet is empty")])
    header = [_xlsx_text(v, False).strip() for v in header_values]
    money = [name.lower() == "credit_limit" for name in header]

    def rows() -> Iterator[tuple[int, list[str]]]:
        yield 1, header
        # iter_rows yields every row from the sheet's first (leading blank rows included).
        for number, values in enumerate(raw_rows, start=2):
            yield (
                number,
                [
                    _xlsx_text(v, money[i] if i < len(money) else False)
                    for i, v in enumerate(values)
                ],
            )

    try:
        return _collect(rows(), max_rows)
    except ValidationFailed:
        raise
    except Exception as exc:
        raise unreadable(f"it is not a readable XLSX workbook ({type(exc).__name__})") from None


# --- writing --------------------------------------------------------------------------------


def _csv_lines(rows: Iterable[Iterable[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue()


def template_csv() -> bytes:
    """The header and one example row (text guarded as the export guards it)."""
    return (BOM + _csv_lines([HEADER, [guarded(v) for v in EXAMPLE_ROW]])).encode("utf-8")


def template_xlsx() -> bytes:
    """The header (bold, frozen) and one example row, every column formatted as text."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet("partners")
    as_text = book.add_format({"num_format": "@"})
    bold = book.add_format({"bold": True, "num_format": "@"})
    for index, (name, example) in enumerate(zip(HEADER, EXAMPLE_ROW, strict=True)):
        sheet.set_column(index, index, max(12, len(name) + 2, len(example) + 2), as_text)
        sheet.write_string(0, index, name, bold)
        if example:
            sheet.write_string(1, index, example, as_text)
    sheet.freeze_panes(1, 0)
    book.close()
    return buffer.getvalue()


def stream_export(rows: Iterable[Any], *, flush_every: int = 500) -> Iterator[bytes]:
    """``partners.csv``: a BOM, the header, then one line per partner, in bounded chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow(HEADER)
    for count, row in enumerate(rows, start=1):
        writer.writerow(export_cells(row))
        if count % flush_every == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")
