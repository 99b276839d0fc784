"""The overview as CSV: UTF-8 with a byte-order mark (so spreadsheets read it as UTF-8), one
header line of the JSON field names, streamed in keyset batches so memory stays flat."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from app.core.money import format_money
from app.core.types import format_utc
from app.crm.repository import split_tags
from app.crm.schemas import OVERVIEW_FIELDS

BOM = "\ufeff"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str | None) -> str:
    """Text cells that a spreadsheet would run as a formula are prefixed with a quote."""
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _money(value: Any) -> str:
    return "" if value is None else format_money(value)


def csv_cells(row: Any) -> list[str]:
    return [
        str(row.number),
        _text(row.name),
        row.country,
        _money(row.credit_limit),
        _money(row.debtor_balance),
        format_utc(row.debtor_balance_synced_at) if row.debtor_balance_synced_at else "",
        "true" if row.credit_limit_exceeded else "false",
        _money(row.uninvoiced_total),
        _text(";".join(split_tags(row.tags))),
        row.latest_sales_delivery_date.isoformat() if row.latest_sales_delivery_date else "",
        _text(row.owner_name),
        row.customer_stage,
    ]


def stream_csv(rows: Iterable[Any], *, bom: bool = True, flush_every: int = 500) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if bom:
        buffer.write(BOM)
    writer.writerow(OVERVIEW_FIELDS)
    for count, row in enumerate(rows, start=1):
        writer.writerow(csv_cells(row))
        if count % flush_every == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")
