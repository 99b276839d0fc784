"""Partner import: creates, updates, counts, dry runs, idempotency, stage history, events,
isolation, and the 5,000-row file."""

from __future__ import annotations

import csv
import io
from typing import Any

from python_calamine import CalamineWorkbook

from app.partners.columns import HEADER, PARTNER_COLUMNS
from app.partners.schemas import PartnerCreate
from tests.conftest import Api, assert_problem
from tests.events.test_feed import drain, types
from tests.helpers import PARTNERS, create_partner, create_tag, create_user, get_partner
from tests.partners.imports.helpers import (
    XLSX,
    csv_file,
    import_ok,
    post_import,
    xlsx_file,
)


def test_every_field_of_partner_create_has_its_column() -> None:
    assert {c.schema_field for c in PARTNER_COLUMNS if c.schema_field} == set(
        PartnerCreate.model_fields
    )
    assert HEADER[0] == "number"


def test_csv_template_is_the_header_and_an_example_that_imports(api: Api) -> None:
    r = api.get(f"{PARTNERS}/import-template.csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
    assert rows[0] == list(HEADER)
    assert len(rows) == 2
    assert import_ok(api, r.content, dry_run=True)["created"] == 1


def test_xlsx_template_is_the_header_and_an_example_that_imports(api: Api) -> None:
    r = api.get(f"{PARTNERS}/import-template.xlsx")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == XLSX
    sheet = CalamineWorkbook.from_filelike(io.BytesIO(r.content)).get_sheet_by_index(0)
    rows = sheet.to_python()
    assert rows[0] == list(HEADER)
    assert len(rows) == 2
    body = import_ok(api, r.content, content_type=XLSX, dry_run=True)
    assert body["created"] == 1


def test_rows_create_update_and_leave_unchanged(api: Api) -> None:
    owner = create_user(api, name="Mette", email="mette@example.com")
    create_tag(api, "Organic")
    create_tag(api, "Wholesale")
    first = create_partner(api, name="First ApS", customer_stage="lead")
    second = create_partner(api, name="Second ApS", email="a@second.example")
    data = csv_file(
        [
            {
                "name": "New Deli",
                "country": "SE",
                "owner": "METTE@example.com",
                "tags": "organic; Wholesale",
                "credit_limit": "1500",
                "customer_stage": "active",
                "address": "Storgatan 1",
                "postal_code": "111 22",
                "city": "Stockholm",
            },
            {"number": first["number"], "name": "First Renamed ApS", "city": "Aarhus"},
            {"number": second["number"], "name": "Second ApS"},
        ]
    )
    body = import_ok(api, data)
    assert body["dry_run"] is False
    assert (body["created"], body["updated"], body["unchanged"]) == (1, 1, 1)
    [number] = body["numbers_created"]
    assert number > second["number"]

    made = get_partner(api, number)
    assert made["name"] == "New Deli"
    assert made["currency"] == "DKK"  # the company's base currency, as POST /partners
    assert made["owner"] == {"id": owner["id"], "name": "Mette"}
    assert made["tags"] == ["Organic", "Wholesale"]
    assert made["credit_limit"] == "1500.00"
    assert made["customer_stage"] == "active"
    [place] = made["locations"]
    assert (place["address"], place["postal_code"], place["city"], place["country"]) == (
        "Storgatan 1",
        "111 22",
        "Stockholm",
        "SE",
    )
    assert place["is_primary"] is True

    renamed = get_partner(api, first["number"])
    assert renamed["name"] == "First Renamed ApS"
    assert renamed["customer_stage"] == "lead"  # empty cell: left as it is
    assert [p["city"] for p in renamed["locations"]] == ["Aarhus"]
    assert get_partner(api, second["number"]) == second  # untouched, version included


def test_update_of_a_partial_location_keeps_the_rest(api: Api) -> None:
    p = create_partner(
        api,
        locations=[{"address": "Vej 1", "postal_code": "8000", "city": "Aarhus", "country": "DK"}],
    )
    import_ok(api, csv_file([{"number": p["number"], "postal_code": "8200"}]))
    [place] = get_partner(api, p["number"])["locations"]
    assert (place["address"], place["postal_code"], place["city"]) == ("Vej 1", "8200", "Aarhus")
    assert place["id"] == p["locations"][0]["id"]


def test_dry_run_checks_everything_and_stores_nothing(api: Api) -> None:
    p = create_partner(api, name="Before")
    data = csv_file(
        [{"name": "Would Be New", "country": "DK"}, {"number": p["number"], "name": "After"}]
    )
    _, cursor = drain(api)
    body = import_ok(api, data, dry_run=True)
    assert body == {
        "dry_run": True,
        "created": 1,
        "updated": 1,
        "unchanged": 0,
        "numbers_created": [],
    }
    assert get_partner(api, p["number"]) == p
    listed = api.get(PARTNERS, params={"include_total": "true"}).json()
    assert listed["total"] == 1
    assert drain(api, cursor)[0] == []


def test_unknown_tags_are_created_with_create_tags(api: Api) -> None:
    create_tag(api, "Organic")
    data = csv_file([{"name": "Tagged", "country": "DK", "tags": "organic;Fresh Fish;fresh fish"}])
    r = post_import(api, data, create_tags=True)
    # "Fresh Fish" twice (any case) in one cell is the schema's duplicate_item
    assert_problem(r, 422, "import_invalid")
    data = csv_file(
        [
            {"name": "Tagged", "country": "DK", "tags": "organic;Fresh Fish"},
            {"name": "Also", "country": "DK", "tags": "FRESH FISH"},
        ]
    )
    assert import_ok(api, data, create_tags=True, dry_run=True)["created"] == 2
    assert api.get("/api/v1/tags/Fresh%20Fish").status_code == 404
    body = import_ok(api, data, create_tags=True)
    assert api.get("/api/v1/tags/fresh%20fish").json()["name"] == "Fresh Fish"
    assert get_partner(api, body["numbers_created"][0])["tags"] == ["Fresh Fish", "Organic"]
    assert get_partner(api, body["numbers_created"][1])["tags"] == ["Fresh Fish"]


def test_stage_changes_are_in_the_history_with_reason_import(api: Api) -> None:
    p = create_partner(api, customer_stage="lead")
    body = import_ok(
        api,
        csv_file(
            [
                {"number": p["number"], "customer_stage": "active"},
                {"name": "New", "country": "DK", "customer_stage": "potential"},
            ]
        ),
    )
    history = api.get(f"{PARTNERS}/{p['number']}/stage-history").json()["items"]
    assert [(h["previous_stage"], h["stage"], h["reason"]) for h in history] == [
        ("lead", "active", "import"),
        (None, "lead", "manual"),
    ]
    assert history[0]["changed_by"]["name"] == "Admin"
    made = body["numbers_created"][0]
    history = api.get(f"{PARTNERS}/{made}/stage-history").json()["items"]
    assert [(h["previous_stage"], h["stage"], h["reason"]) for h in history] == [
        (None, "potential", "import")
    ]


def test_events_are_written_as_create_and_update_write_them(api: Api) -> None:
    p = create_partner(api, customer_stage="lead")
    same = create_partner(api, name="Same")
    _, cursor = drain(api)
    body = import_ok(
        api,
        csv_file(
            [
                {"number": p["number"], "name": "Renamed", "customer_stage": "active"},
                {"number": same["number"], "name": "Same"},
                {"name": "New", "country": "DK"},
            ]
        ),
    )
    items, _ = drain(api, cursor)
    assert sorted(types(items)) == ["partner.created", "partner.stage_changed", "partner.updated"]
    by_type = {e["type"]: e["data"] for e in items}
    assert by_type["partner.updated"] == get_partner(api, p["number"])
    assert by_type["partner.created"] == get_partner(api, body["numbers_created"][0])
    assert by_type["partner.stage_changed"]["reason"] == "import"
    assert by_type["partner.stage_changed"]["previous_stage"] == "lead"


def test_an_update_bumps_the_version_and_the_etag(api: Api) -> None:
    p = create_partner(api)
    etag = api.get(f"{PARTNERS}/{p['number']}").headers["etag"]
    import_ok(api, csv_file([{"number": p["number"], "vat_id": "DK99999999"}]))
    assert api.get(f"{PARTNERS}/{p['number']}").headers["etag"] != etag


def test_idempotency_key_replays_the_answer_and_refuses_another_file(api: Api) -> None:
    data = csv_file([{"name": "Once", "country": "DK"}])
    key = {"Idempotency-Key": "import-1"}
    first = post_import(api, data, headers=key)
    assert first.status_code == 200, first.text
    again = post_import(api, data, headers=key)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    listed = api.get(PARTNERS, params={"include_total": "true"}).json()
    assert listed["total"] == 1
    other = post_import(api, csv_file([{"name": "Twice", "country": "DK"}]), headers=key)
    assert_problem(other, 422, "idempotency_key_reused")
    as_dry_run = post_import(api, data, headers=key, dry_run=True)
    assert_problem(as_dry_run, 422, "idempotency_key_reused")


def test_a_dry_run_with_a_key_replays_too(api: Api) -> None:
    data = csv_file([{"name": "Maybe", "country": "DK"}])
    key = {"Idempotency-Key": "dry-1"}
    first = post_import(api, data, headers=key, dry_run=True)
    assert first.status_code == 200, first.text
    again = post_import(api, data, headers=key, dry_run=True)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert api.get(PARTNERS).json()["items"] == []


def test_another_companys_number_is_not_found_and_not_changed(api: Api, other_api: Api) -> None:
    theirs = create_partner(other_api, name="Theirs")
    r = post_import(api, csv_file([{"number": theirs["number"], "name": "Mine now"}]))
    body = assert_problem(r, 422, "import_invalid")
    assert [(e["row"], e["column"], e["code"]) for e in body["errors"]] == [
        (2, "number", "partner_not_found")
    ]
    assert get_partner(other_api, theirs["number"]) == theirs


def test_another_companys_owner_and_tag_are_unknown(api: Api, other_api: Api) -> None:
    create_user(other_api, email="theirs@example.com")
    create_tag(other_api, "Theirs")
    r = post_import(api, csv_file([{"name": "X", "country": "DK", "owner": "theirs@example.com"}]))
    assert_problem(r, 422, "import_invalid")
    r = post_import(api, csv_file([{"name": "X", "country": "DK", "tags": "Theirs"}]))
    assert_problem(r, 422, "import_invalid")


def test_xlsx_numbers_come_back_as_their_text(api: Api) -> None:
    p = create_partner(api)
    data = xlsx_file(
        [
            ["number", "phone", "postal_code", "city", "credit_limit"],
            [p["number"], 4512345678, 8000, "Aarhus", 12.5],
        ]
    )
    assert import_ok(api, data, content_type=XLSX)["updated"] == 1
    got = get_partner(api, p["number"])
    assert got["phone"] == "4512345678"
    assert got["credit_limit"] == "12.50"
    assert got["locations"][0]["postal_code"] == "8000"


def test_a_semicolon_separated_csv_with_a_bom_is_read(api: Api) -> None:
    data = "\ufeffname;country;tags\r\nSemi Deli;DK;\r\n".encode()
    body = import_ok(api, data)
    assert body["created"] == 1
    assert get_partner(api, body["numbers_created"][0])["name"] == "Semi Deli"


def test_blank_rows_are_skipped_and_rows_keep_their_numbers(api: Api) -> None:
    data = b"name,country\r\nOne,DK\r\n,\r\n\r\nTwo,XX\r\n"
    body = assert_problem(post_import(api, data), 422, "import_invalid")
    assert [(e["row"], e["column"]) for e in body["errors"]] == [(5, "country")]


def test_five_thousand_rows_import_at_once(api: Api) -> None:
    create_tag(api, "Bulk")
    rows = [
        {
            "name": f"Partner {i}",
            "country": "DK",
            "credit_limit": f"{i}.50",
            "tags": "Bulk",
            "customer_stage": "lead" if i % 2 else "",
            "city": f"City {i}",
        }
        for i in range(5000)
    ]
    body = import_ok(api, csv_file(rows))
    assert body["created"] == 5000
    assert body["numbers_created"] == list(range(1, 5001))
    total = api.get(PARTNERS, params={"include_total": "true", "limit": 1}).json()["total"]
    assert total == 5000
    last = get_partner(api, 5000)
    assert (last["name"], last["credit_limit"], last["tags"]) == (
        "Partner 4999",
        "4999.50",
        ["Bulk"],
    )
    assert last["customer_stage"] == "lead"
    # and the same file with its numbers back: nothing changes
    numbered = [{**row, "number": n} for row, n in zip(rows, body["numbers_created"], strict=True)]
    again = import_ok(api, csv_file(numbered))
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 5000)


def test_an_empty_cell_never_clears_on_update(api: Api) -> None:
    p = create_partner(api, vat_id="DK1", email="x@example.com", credit_limit="10.00")
    header = list(HEADER)
    data = csv_file([{"number": p["number"]}], header=header)
    body = import_ok(api, data)
    assert body["unchanged"] == 1
    assert get_partner(api, p["number"]) == p


def _only(body: dict[str, Any]) -> tuple[int, str | None, str]:
    [error] = body["errors"]
    return error["row"], error["column"], error["code"]
