"""GET /api/v1/crm/overview.csv: the same rows as the JSON overview, as spreadsheet-safe CSV."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from tests.conftest import Api, assert_problem
from tests.crm import dataset
from tests.helpers import (
    BOM,
    OVERVIEW,
    OVERVIEW_CSV,
    OVERVIEW_FIELDS,
    OVERVIEW_SORTS,
    STAGES,
    create_partner,
    create_tag,
    create_user,
    csv_cells_of,
    numbers,
    overview_csv,
    ref_sort,
    walk,
)


@pytest.fixture
def data(api: Api, session: Session) -> dataset.Dataset:
    return dataset.build(api, session)


def test_content_type_is_text_csv(api: Api, data: dataset.Dataset) -> None:
    r, _ = overview_csv(api)
    assert r.headers["content-type"].split(";")[0].strip() == "text/csv"
    assert "attachment" in r.headers.get("content-disposition", "")


def test_body_is_utf8_with_a_bom_by_default(api: Api, data: dataset.Dataset) -> None:
    r = api.get(OVERVIEW_CSV)
    assert r.status_code == 200
    assert r.content.startswith(BOM)
    assert not r.content[len(BOM) :].startswith(BOM)
    r.content.decode("utf-8")  # valid UTF-8 throughout
    assert api.get(OVERVIEW_CSV, params={"bom": "true"}).content.startswith(BOM)


def test_bom_false_omits_the_bom(api: Api, data: dataset.Dataset) -> None:
    r = api.get(OVERVIEW_CSV, params={"bom": "false"})
    assert r.status_code == 200
    assert r.content.startswith(b"number,")
    with_bom = api.get(OVERVIEW_CSV).content
    assert with_bom == BOM + r.content


def test_header_line_is_the_json_field_names(api: Api, data: dataset.Dataset) -> None:
    _, lines = overview_csv(api)
    assert lines[0] == OVERVIEW_FIELDS
    assert lines[0] == list(walk(api, OVERVIEW, limit=1)[0])


def test_header_only_when_nothing_matches(api: Api) -> None:
    _, lines = overview_csv(api)
    assert lines == [OVERVIEW_FIELDS]


def test_one_line_per_row_with_the_json_values(api: Api, data: dataset.Dataset) -> None:
    _, lines = overview_csv(api)
    rows = walk(api, OVERVIEW, limit=500)
    assert len(lines) == 1 + len(rows) == 10
    assert lines[1:] == [csv_cells_of(r) for r in rows]


def test_values_are_formatted_like_the_json(api: Api, data: dataset.Dataset) -> None:
    _, lines = overview_csv(api)
    by_number = {int(cells[0]): dict(zip(lines[0], cells, strict=True)) for cells in lines[1:]}
    first = by_number[1]
    assert first == {
        "number": "1",
        "name": "Alpha Foods",
        "country": "DK",
        "credit_limit": "1000.00",
        "debtor_balance": "1500.00",
        "debtor_balance_synced_at": "2025-02-01T08:30:00.000000Z",
        "credit_limit_exceeded": "true",
        "uninvoiced_total": "0.00",
        "tags": "Wholesale",
        "latest_sales_delivery_date": "",
        "owner": "Bea Berg",
        "customer_stage": "lead",
    }
    # Several tags are joined with ';', in the JSON order.
    assert by_number[2]["tags"] == "Organic;Wholesale"
    assert by_number[7]["tags"] == "export;Wholesale"
    # No owner, no limit: empty cells.
    assert by_number[2]["owner"] == ""
    assert by_number[2]["credit_limit"] == ""
    assert by_number[3]["debtor_balance"] == ""
    assert by_number[3]["debtor_balance_synced_at"] == ""
    assert by_number[3]["uninvoiced_total"] == "745.62"
    assert by_number[3]["latest_sales_delivery_date"] == "2025-05-01"
    assert by_number[7]["credit_limit_exceeded"] == "false"


def test_tags_with_separator_like_text_and_quotes_survive_csv_quoting(api: Api) -> None:
    create_tag(api, 'Say "hi", ok')
    create_tag(api, "Nordic")
    create_partner(
        api, name='Smith, "Jr" & Sons\nLtd', customer_stage="lead", tags=["Nordic", 'Say "hi", ok']
    )
    _, lines = overview_csv(api)
    assert len(lines) == 2
    row = walk(api, OVERVIEW, limit=10)[0]
    assert lines[1] == csv_cells_of(row)
    assert lines[1][1] == row["name"]
    assert lines[1][8] == 'Nordic;Say "hi", ok'


@pytest.mark.parametrize("name", ["=HYPERLINK(1)", "+1+2", "-3", "@SUM(A1)"])
def test_a_name_a_spreadsheet_would_run_is_prefixed_with_a_quote(api: Api, name: str) -> None:
    create_partner(api, name=name, customer_stage="lead")
    _, lines = overview_csv(api)
    assert lines[1][1] == "'" + name
    # The JSON keeps the name as it is.
    assert walk(api, OVERVIEW, limit=10)[0]["name"] == name


def test_an_owner_name_a_spreadsheet_would_run_is_prefixed_with_a_quote(api: Api) -> None:
    owner = create_user(api, "=cmd|' /C calc'!A0")
    create_partner(api, name="Safe", customer_stage="lead", owner_id=owner["id"])
    _, lines = overview_csv(api)
    assert lines[1][10] == "'=cmd|' /C calc'!A0"


def test_non_ascii_names_are_utf8(api: Api) -> None:
    create_partner(api, name="Ærø Ost & Smør", customer_stage="active", country="DK")
    r, lines = overview_csv(api)
    assert lines[1][1] == "Ærø Ost & Smør"
    assert "Ærø Ost & Smør".encode() in r.content


@pytest.mark.parametrize("sort", OVERVIEW_SORTS)
def test_same_order_as_the_json_for_every_sort(api: Api, data: dataset.Dataset, sort: str) -> None:
    _, lines = overview_csv(api, sort=sort)
    rows = walk(api, OVERVIEW, limit=500, sort=sort)
    assert [int(cells[0]) for cells in lines[1:]] == numbers(rows)
    assert lines[1:] == [csv_cells_of(r) for r in rows]


FILTERS: list[dict[str, Any]] = [
    {"q": "alpha"},
    {"customer_stage": ["lead", "lost"]},
    {"tag": ["Organic", "export"]},
    {"country": "DK"},
    {"credit_limit_exceeded": "true"},
    {"credit_limit_exceeded": "false"},
    {"updated_since": "2025-01-06T00:00:00Z"},
    {"country": "DK", "customer_stage": "lead", "tag": "Wholesale", "sort": "-name"},
    {"country": "US"},
]


@pytest.mark.parametrize("params", FILTERS, ids=[str(p) for p in FILTERS])
def test_same_rows_as_the_json_for_every_filter(
    api: Api, data: dataset.Dataset, params: dict[str, Any]
) -> None:
    _, lines = overview_csv(api, **params)
    rows = walk(api, OVERVIEW, limit=500, **params)
    assert lines[0] == OVERVIEW_FIELDS
    assert lines[1:] == [csv_cells_of(r) for r in rows]


@pytest.mark.parametrize("owner", ["admin", "bea", "carl"])
def test_same_rows_as_the_json_by_owner(api: Api, data: dataset.Dataset, owner: str) -> None:
    owner_id = data.users[owner]["id"]
    _, lines = overview_csv(api, owner_id=owner_id)
    rows = walk(api, OVERVIEW, limit=500, owner_id=owner_id)
    assert rows
    assert lines[1:] == [csv_cells_of(r) for r in rows]


def _insert_many_partners(session: Session, company_id: Any, count: int) -> None:
    """Many overview rows at once (straight into the table: the API would take minutes)."""
    from app.models import Partner

    now = datetime.now(UTC)
    session.execute(
        insert(Partner),
        [
            {
                "company_id": company_id,
                "id": uuid.uuid4(),
                "number": n,
                "name": f"Bulk {n % 97:02d}",
                "country": "DK",
                "currency": "DKK",
                "customer_stage": STAGES[n % 5],
                "credit_limit_exceeded": n % 3 == 0,
                "uninvoiced_total": Decimal(n % 7),
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
            for n in range(1, count + 1)
        ],
    )
    session.commit()


@pytest.mark.parametrize(
    "sort", ["number", "-name", "uninvoiced_total", "credit_limit_exceeded", "-customer_stage"]
)
def test_more_rows_than_one_batch_are_all_exported_in_order(
    api: Api, session: Session, sort: str
) -> None:
    _insert_many_partners(session, api.tenant.company.id, 2345)
    _, lines = overview_csv(api, sort=sort, bom="false")
    assert lines[0] == OVERVIEW_FIELDS
    rows = walk(api, OVERVIEW, limit=500)
    assert len(rows) == 2345
    assert [int(c[0]) for c in lines[1:]] == numbers(ref_sort(rows, sort))


@pytest.mark.parametrize("params", [{"sort": "balance"}, {"bom": "perhaps"}, {"country": "xx"}])
def test_bad_parameters_are_422_before_streaming(api: Api, params: dict[str, Any]) -> None:
    assert_problem(api.get(OVERVIEW_CSV, params=params), 422)
