"""The overview as CSV: UTF-8 with a byte-order mark (so spreadsheets read it as UTF-8), one
header line of the JSON field names, streamed in keyset batches so memory stays flat. The
columns, and how each renders as a cell, are the overview's own (``OVERVIEW_COLUMNS``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from app.partners.overview import OVERVIEW_COLUMNS, Column

BOM = "\ufeff"
HEADER = [column.name for column in OVERVIEW_COLUMNS]
_CELLS = [column.csv for column in OVERVIEW_COLUMNS]


def csv_cells(row: Any) -> list[str]:
    return [cell(row) for cell in _CELLS]


def stream_csv(
    rows: Iterable[Any],
    *,
    bom: bool = True,
    flush_every: int = 500,
    columns: Sequence[Column] = OVERVIEW_COLUMNS,
) -> Iterator[bytes]:
    """``columns``: these, in this order (a saved view's; default: all)."""
    cells = [column.csv for column in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if bom:
        buffer.write(BOM)
    writer.writerow([column.name for column in columns])
    for count, row in enumerate(rows, start=1):
        writer.writerow([cell(row) for cell in cells])
        if count % flush_every == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")
