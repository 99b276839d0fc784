"""On PostgreSQL a page of the overview leaves the database as JSON text, each row rendered by
the database (``overview_json_select``). It must be exactly the object ``row_of`` makes of the
same row in Python (the SQLite path, the exports and the partner events): the same fields in
the same order, the same values and types, for every column set a saved view may pick."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.core.pagination import PageRequest, paginate
from app.crm.repository import OVERVIEW_SORTING, OverviewRepository
from app.partners.overview import OVERVIEW_COLUMNS, row_of
from app.partners.schemas import PartnerFilter
from tests.factories import make_partner, make_tag, make_tenant, make_user

pytestmark = pytest.mark.postgres_only

# Tags whose order differs between a byte, a case-sensitive and a case-insensitive sort, and
# names that need escaping in JSON.
TAGS = ["zebra", "Äpfel", "Øko", "apple", "Banana", "éclair", 'quote "q"', "back\\slash"]


def _dataset(session: Session) -> Any:
    tenant = make_tenant(session)
    for name in TAGS:
        make_tag(session, tenant, name)
    seller = make_user(session, tenant.company, name='Søren "S" Ås')
    rows = [
        # every nullable value null, no tags, no owner
        {"name": "Ålborg Øl", "country": "DK"},
        {
            "name": 'Line\nbreak "quoted" \\ name',
            "country": "SE",
            "credit_limit": "99999999999999.99",
            "tags": TAGS,
            "owner_id": str(seller.id),
        },
        {"name": "=Formula", "country": "DE", "credit_limit": "0.00", "tags": ["apple"]},
        {"name": "Tiny", "country": "NO", "credit_limit": "0.01", "tags": ["Øko", "zebra"]},
    ]
    partners = [make_partner(session, tenant, customer_stage="active", **row) for row in rows]
    maintained = [
        (Decimal("-1234.50"), datetime(2026, 11, 29, 10, 0, 0, 123456, tzinfo=UTC)),
        (Decimal("99999999999999.99"), datetime(1999, 1, 1, tzinfo=UTC)),
        (Decimal("0.00"), datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=UTC)),
    ]
    for partner, (balance, synced) in zip(partners[1:], maintained, strict=True):
        partner.debtor_balance = balance
        partner.debtor_balance_synced_at = synced
        partner.uninvoiced_total = balance
        partner.latest_sales_delivery_date = date(2026, 12, 31)
        partner.credit_limit_exceeded = balance > 0
    session.flush()
    return tenant


def _request(sort: str) -> PageRequest[PartnerFilter]:
    return PageRequest(OVERVIEW_SORTING.parse(sort), 50, False, None, PartnerFilter(), {})


@pytest.mark.parametrize(
    "columns",
    [None, ("tags", "owner", "name"), ("debtor_balance_synced_at",), ("customer_stage", "number")],
)
@pytest.mark.parametrize("sort", ["number", "-name", "debtor_balance", "-owner"])
def test_the_database_renders_each_row_as_row_of_does(
    session: Session, sort: str, columns: tuple[str, ...] | None
) -> None:
    tenant = _dataset(session)
    repo = OverviewRepository(session, tenant.company.id)

    rendered = repo.page(PartnerFilter(), _request(sort), columns)
    here = paginate(
        session, repo.select_rows(PartnerFilter()), sorting=OVERVIEW_SORTING, request=_request(sort)
    )

    items = [json.loads(item) for item in rendered.rows]
    expected = [row_of(row, columns) for row in here.rows]
    assert len(items) == 4
    # Field for field, in order, with the same JSON types (a number stays a number, money
    # and instants are strings, tags a list in row_of's order).
    assert [list(item.items()) for item in items] == [list(e.items()) for e in expected]
    assert rendered.next_cursor == here.next_cursor is None
    names = columns or tuple(c.name for c in OVERVIEW_COLUMNS)
    assert all(tuple(item) == names for item in items)
    if columns is None or "tags" in columns:
        assert sorted(TAGS, key=str.lower) in [item["tags"] for item in items]


def test_a_page_of_json_rows_is_the_page_document(session: Session) -> None:
    """The answer is one JSON document: items, then the cursor and the total."""
    from app.core.pagination import page_json_response

    tenant = _dataset(session)
    repo = OverviewRepository(session, tenant.company.id)
    request = PageRequest(OVERVIEW_SORTING.parse("name"), 3, False, None, PartnerFilter(), {})
    page = repo.page(PartnerFilter(), request, ("name",))
    body = json.loads(page_json_response(page).body)
    assert list(body) == ["items", "next_cursor", "total"]
    assert body["items"] == [json.loads(item) for item in page.rows]
    assert len(body["items"]) == 3
    assert body["next_cursor"] == page.next_cursor is not None
    assert body["total"] is None
