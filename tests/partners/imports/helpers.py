"""Files for the import tests, and the one way they are posted."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

import xlsxwriter

from app.partners.columns import HEADER
from tests.conftest import Api

IMPORT = "/api/v1/partners/import"
EXPORT = "/api/v1/partners.csv"
CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def csv_file(rows: Sequence[Mapping[str, Any]], header: Sequence[str] | None = None) -> bytes:
    """A CSV of these rows (column -> cell); the header is the given columns, or every column
    any row names, in the template's order."""
    if header is None:
        named = {key for row in rows for key in row}
        header = [c for c in HEADER if c in named] + sorted(named - set(HEADER))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else str(row[c]) for c in header])
    return buffer.getvalue().encode("utf-8")


def xlsx_file(rows: Sequence[Sequence[Any]]) -> bytes:
    """A workbook whose first sheet holds these rows; numbers are written as number cells."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet()
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, int | float):
                sheet.write_number(r, c, value)
            elif value is not None:
                sheet.write_string(r, c, value)
    book.close()
    return buffer.getvalue()


def post_import(
    api: Api,
    data: bytes,
    *,
    content_type: str = CSV,
    headers: Mapping[str, str] | None = None,
    **params: Any,
) -> Any:
    query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
    return api.post(
        IMPORT,
        content=data,
        params=query,
        headers={"Content-Type": content_type, **(headers or {})},
    )


def import_ok(api: Api, data: bytes, **kwargs: Any) -> dict[str, Any]:
    r = post_import(api, data, **kwargs)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def export_rows(api: Api, **params: Any) -> list[dict[str, str]]:
    r = api.get(EXPORT, params=params)
    assert r.status_code == 200, r.text
    text = r.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:], newline="")))


def errors_of(body: Mapping[str, Any]) -> list[tuple[int, str | None, str]]:
    return [(e["row"], e["column"], e["code"]) for e in body["errors"]]
