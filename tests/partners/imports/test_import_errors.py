"""Every bad file answers 422 (or 413/415) naming the row and column, and stores nothing."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.conftest import Api, RollbackDatabase, assert_problem
from tests.events.test_feed import drain
from tests.factories import Tenant
from tests.helpers import PARTNERS, create_partner, create_tag, get_partner
from tests.partners.imports.helpers import XLSX, csv_file, post_import, xlsx_file


@pytest.fixture
def existing(api: Api) -> dict[str, Any]:
    create_tag(api, "Organic")
    return create_partner(api, name="Existing", accounting_ref="REF-1")


def _stored_nothing(api: Api, existing: dict[str, Any], cursor: str) -> None:
    assert get_partner(api, existing["number"]) == existing
    assert api.get(PARTNERS, params={"include_total": "true"}).json()["total"] == 1
    assert drain(api, cursor)[0] == []


GOOD = {"name": "Good Row", "country": "DK"}

# (rows after a good first row, the error expected: (row, column, code))
MATRIX: dict[str, tuple[list[dict[str, Any]], tuple[int, str | None, str]]] = {
    "bad country": ([{"name": "X", "country": "XX"}], (3, "country", "value_error")),
    "unknown tag": (
        [{"name": "X", "country": "DK", "tags": "Organic;Nope"}],
        (3, "tags", "unknown_tag"),
    ),
    "unknown owner": (
        [{"name": "X", "country": "DK", "owner": "nobody@example.com"}],
        (3, "owner", "unknown_owner"),
    ),
    "bad money": (
        [{"name": "X", "country": "DK", "credit_limit": "12,5x"}],
        (3, "credit_limit", "value_error"),
    ),
    "negative money": (
        [{"name": "X", "country": "DK", "credit_limit": "-1"}],
        (3, "credit_limit", "value_error"),
    ),
    "empty required cell": ([{"country": "DK", "vat_id": "DK1"}], (3, "name", "missing")),
    "formula": (
        [{"name": '=HYPERLINK("http://evil")', "country": "DK"}],
        (3, "name", "formula_not_allowed"),
    ),
    "bad email": (
        [{"name": "X", "country": "DK", "email": "not-an-email"}],
        (3, "email", "value_error"),
    ),
    "bad stage": (
        [{"name": "X", "country": "DK", "customer_stage": "vip"}],
        (3, "customer_stage", "enum"),
    ),
    "bad number": ([{"number": "12a", "name": "X"}], (3, "number", "invalid_number")),
    "number that does not exist": (
        [{"number": 999, "name": "X"}],
        (3, "number", "partner_not_found"),
    ),
    "bad location": (
        [{"name": "X", "country": "DK", "postal_code": "x" * 21}],
        (3, "postal_code", "string_too_long"),
    ),
    "accounting_ref taken": (
        [{"name": "X", "country": "DK", "accounting_ref": "REF-1"}],
        (3, "accounting_ref", "accounting_ref_taken"),
    ),
}


@pytest.mark.parametrize("case", list(MATRIX))
def test_a_bad_cell_is_named_by_row_and_column_and_nothing_is_stored(
    api: Api, existing: dict[str, Any], case: str
) -> None:
    rows, expected = MATRIX[case]
    _, cursor = drain(api)
    r = post_import(api, csv_file([GOOD, *rows]))
    body = assert_problem(r, 422, "import_invalid")
    assert [(e["row"], e["column"], e["code"]) for e in body["errors"]] == [expected], body
    assert body["error_count"] == 1
    assert body["errors"][0]["message"]
    _stored_nothing(api, existing, cursor)


def test_a_dry_run_reports_the_same_errors(api: Api, existing: dict[str, Any]) -> None:
    for case, (rows, expected) in MATRIX.items():
        r = post_import(api, csv_file([GOOD, *rows]), dry_run=True)
        body = assert_problem(r, 422, "import_invalid")
        assert [(e["row"], e["column"], e["code"]) for e in body["errors"]] == [expected], case


def test_a_number_twice_in_the_file_is_named_at_its_second_row(
    api: Api, existing: dict[str, Any]
) -> None:
    n = existing["number"]
    r = post_import(api, csv_file([{"number": n, "name": "A"}, {"number": n, "name": "B"}]))
    body = assert_problem(r, 422, "import_invalid")
    assert [(e["row"], e["column"], e["code"]) for e in body["errors"]] == [
        (3, "number", "duplicate_number")
    ]


def test_an_accounting_ref_twice_in_the_file(api: Api, existing: dict[str, Any]) -> None:
    rows = [{**GOOD, "accounting_ref": "NEW"}, {**GOOD, "accounting_ref": "NEW"}]
    body = assert_problem(post_import(api, csv_file(rows)), 422, "import_invalid")
    assert [(e["row"], e["column"], e["code"]) for e in body["errors"]] == [
        (3, "accounting_ref", "duplicate_accounting_ref")
    ]


def test_an_accounting_ref_passed_on_within_the_file_is_allowed(
    api: Api, existing: dict[str, Any]
) -> None:
    other = create_partner(api, name="Other", accounting_ref="REF-2")
    rows = [
        {"number": existing["number"], "accounting_ref": "REF-2"},
        {"number": other["number"], "accounting_ref": "REF-1"},
    ]
    r = post_import(api, csv_file(rows))
    assert r.status_code == 200, r.text
    assert get_partner(api, existing["number"])["accounting_ref"] == "REF-2"
    assert get_partner(api, other["number"])["accounting_ref"] == "REF-1"


def test_an_unknown_column_is_named_on_the_header_row(api: Api, existing: dict[str, Any]) -> None:
    data = csv_file([{**GOOD, "colour": "red"}])
    body = assert_problem(post_import(api, data), 422, "import_invalid")
    assert [(e["row"], e["column"], e["code"]) for e in body["errors"]] == [
        (1, "colour", "unknown_column")
    ]


def test_every_bad_row_is_listed(api: Api, existing: dict[str, Any]) -> None:
    rows = [GOOD, {"name": "", "country": "XX"}, GOOD, {"name": "Y", "country": "ZZ"}]
    body = assert_problem(post_import(api, csv_file(rows)), 422, "import_invalid")
    assert [(e["row"], e["column"]) for e in body["errors"]] == [
        (3, "country"),
        (3, "name"),
        (5, "country"),
    ]
    assert body["error_count"] == 3
    assert body["errors_truncated"] is False
    # loc keeps the shared problem shape too
    assert body["errors"][0]["loc"] == ["body", 3, "country"]


def test_errors_are_listed_up_to_a_bound_and_counted_in_full(api: Api) -> None:
    rows = [{"name": "X", "country": "XX"}] * 1200
    body = assert_problem(post_import(api, csv_file(rows)), 422, "import_invalid")
    assert len(body["errors"]) == 1000
    assert body["error_count"] == 1200
    assert body["errors_truncated"] is True


def test_a_quoted_formula_is_text(api: Api) -> None:
    r = post_import(api, csv_file([{"name": "'=SUM(A1)", "country": "DK"}]))
    assert r.status_code == 200, r.text
    assert get_partner(api, r.json()["numbers_created"][0])["name"] == "=SUM(A1)"


def test_a_csv_that_is_not_utf8_names_its_row_and_column(
    api: Api, existing: dict[str, Any]
) -> None:
    data = "name,country,city\r\nGood,DK,Aarhus\r\nBad,DK,K\xf8ge\r\n".encode("latin-1")
    _, cursor = drain(api)
    body = assert_problem(post_import(api, data), 422, "import_invalid")
    assert [(e["row"], e["column"], e["code"]) for e in body["errors"]] == [
        (3, "city", "invalid_encoding")
    ]
    _stored_nothing(api, existing, cursor)


def test_a_broken_xlsx_is_unreadable(api: Api, existing: dict[str, Any]) -> None:
    good = xlsx_file([["name", "country"], ["X", "DK"]])
    for data in (b"not a workbook", good[: len(good) // 2], b"PK\x03\x04" + b"\0" * 100):
        assert_problem(post_import(api, data, content_type=XLSX), 422, "unreadable_file")


def test_an_xlsx_reaching_far_beyond_its_rows_is_refused_before_it_is_read(api: Api) -> None:
    buffer = io.BytesIO()
    import xlsxwriter

    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet()
    sheet.write_string(0, 0, "name")
    sheet.write_string(1_048_575, 16_383, "far away")  # calamine would allocate every cell
    book.close()
    r = post_import(api, buffer.getvalue(), content_type=XLSX)
    assert_problem(r, 422, "unreadable_file")


def test_an_xlsx_that_expands_enormously_is_refused(api: Api) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("xl/workbook.xml", b" " * (500 * 1024 * 1024))
    r = post_import(api, buffer.getvalue(), content_type=XLSX)
    assert_problem(r, 422, "unreadable_file")


def test_other_media_types_answer_415(api: Api) -> None:
    data = csv_file([GOOD])
    for content_type in ("application/json", "text/plain", ""):
        r = post_import(api, data, content_type=content_type)
        assert_problem(r, 415, "unsupported_media_type")
    r = post_import(api, data, content_type="text/csv; charset=utf-8")
    assert r.status_code == 200, r.text


def test_an_empty_file_has_no_header(api: Api) -> None:
    body = assert_problem(post_import(api, b""), 422, "import_invalid")
    assert [(e["row"], e["code"]) for e in body["errors"]] == [(1, "missing_header")]


@pytest.fixture
def small(settings: Settings, db: RollbackDatabase, tenant: Tenant) -> Iterator[Api]:
    limited = settings.model_copy(
        update={"import_max_rows": 3, "import_max_bytes": 16384, "max_body_bytes": 1024}
    )
    with TestClient(create_app(limited, database=db), raise_server_exceptions=False) as client:
        yield Api(client, tenant)


def test_more_rows_than_the_limit_answer_422_naming_it(small: Api) -> None:
    body = assert_problem(post_import(small, csv_file([GOOD] * 4)), 422, "too_many_rows")
    assert body["max_rows"] == 3
    assert "3" in body["detail"]
    assert post_import(small, csv_file([GOOD] * 3)).status_code == 200
    data = xlsx_file([["name", "country"], *[["X", "DK"]] * 4])
    assert_problem(post_import(small, data, content_type=XLSX), 422, "too_many_rows")


def test_the_import_alone_may_send_more_than_the_body_limit(small: Api) -> None:
    rows = [{**GOOD, "address": "Vej " + "1" * 400}] * 3
    data = csv_file(rows)
    assert 1024 < len(data) < 16384
    assert post_import(small, data).status_code == 200
    too_big = data + b" " * 16384
    body = assert_problem(post_import(small, too_big), 413, "payload_too_large")
    assert "16384" in body["detail"]
    # every other route keeps the general limit
    r = small.post(PARTNERS, json={"name": "X" * 2000, "country": "DK"})
    assert_problem(r, 413, "payload_too_large")


def test_a_location_without_a_country_names_the_country_once(api: Api) -> None:
    body = assert_problem(post_import(api, csv_file([{"name": "X", "city": "Aarhus"}])), 422)
    assert [(e["row"], e["column"], e["code"]) for e in body["errors"]] == [
        (2, "country", "missing")
    ]
