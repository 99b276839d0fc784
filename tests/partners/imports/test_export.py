"""``GET /api/v1/partners.csv``: the import's columns, the list filters, and a file that
imports back without changing anything."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.partners.columns import HEADER
from tests.conftest import Api
from tests.events.test_feed import drain
from tests.helpers import PARTNERS, create_partner, create_tag, create_user, get_partner
from tests.partners.imports.helpers import EXPORT, csv_file, export_rows, import_ok


def _awkward(api: Api) -> list[dict[str, object]]:
    owner = create_user(api, name="Ærlig Ødegård", email="Owner.Person@Example.com")
    for name in ("Fresh Fish", "=Tag", "Økologi"):
        create_tag(api, name)
    return [
        create_partner(
            api,
            name="=SUM(A1)",
            phone="+45 1234",
            vat_id="-dash",
            email="first@example.com",
            website="https://www.example.com/a?b=c",
            owner_id=owner["id"],
            tags=["Fresh Fish", "=Tag", "Økologi"],
            customer_stage="active",
            credit_limit="1500.5",
            accounting_ref="@ref",
            locations=[
                {
                    "address": "Søndergade 1, 2. th\n(bagdør)",
                    "postal_code": "0800",
                    "city": "København",
                    "country": "DK",
                }
            ],
        ),
        create_partner(api, name="'Quoted' & \"double\", comma", country="SE", currency="SEK"),
        create_partner(api, name="Minimal", customer_stage="lead"),
        create_partner(
            api,
            name="Two places",
            locations=[
                {"city": "Odense", "country": "DE"},
                {"city": "Primary", "country": "DK", "is_primary": True},
            ],
        ),
    ]


def test_the_export_has_exactly_the_import_columns(api: Api) -> None:
    _awkward(api)
    r = api.get(EXPORT)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "partners-acme-" in r.headers["content-disposition"]
    rows = export_rows(api)
    assert list(rows[0]) == list(HEADER)
    first = rows[0]
    assert first["name"] == "'=SUM(A1)"  # guarded against formulas
    assert first["phone"] == "'+45 1234"
    assert first["vat_id"] == "'-dash"
    assert first["owner"] == "Owner.Person@example.com"
    assert first["tags"] == "'=Tag;Fresh Fish;Økologi"
    assert first["credit_limit"] == "1500.50"
    assert first["customer_stage"] == "active"
    assert (first["address"], first["postal_code"], first["city"]) == (
        "Søndergade 1, 2. th\n(bagdør)",
        "0800",
        "København",
    )
    assert rows[1]["name"] == "''Quoted' & \"double\", comma"  # a leading ' is doubled
    assert rows[2]["owner"] == rows[2]["tags"] == rows[2]["credit_limit"] == ""
    assert rows[3]["city"] == "Primary"


def test_a_file_exported_and_imported_back_changes_nothing(api: Api) -> None:
    partners = _awkward(api)
    r = api.get(EXPORT)
    _, cursor = drain(api)
    body = import_ok(api, r.content)
    assert body == {
        "dry_run": False,
        "created": 0,
        "updated": 0,
        "unchanged": len(partners),
        "numbers_created": [],
    }
    for partner in partners:
        assert get_partner(api, int(str(partner["number"]))) == partner
    assert drain(api, cursor)[0] == []


def test_an_exported_file_without_numbers_makes_the_same_partners_again(api: Api) -> None:
    partners = _awkward(api)
    rows = [
        {k: v for k, v in row.items() if k not in ("number", "accounting_ref")}
        for row in export_rows(api)
    ]
    made = import_ok(api, csv_file(rows))
    assert made["created"] == len(partners)
    for number, original in zip(made["numbers_created"], partners, strict=True):
        copy = get_partner(api, number)
        for field in ("name", "phone", "vat_id", "owner", "tags", "credit_limit", "currency"):
            assert copy[field] == original[field], field


def test_the_export_takes_the_list_filters(api: Api) -> None:
    create_tag(api, "Organic")
    create_partner(api, name="Tagged", tags=["Organic"], country="SE")
    create_partner(api, name="Plain")
    assert [r["name"] for r in export_rows(api, tag="organic")] == ["Tagged"]
    assert [r["name"] for r in export_rows(api, country="DK")] == ["Plain"]
    assert [r["name"] for r in export_rows(api, q="pla")] == ["Plain"]
    r = api.get(EXPORT, params={"colour": "red"})
    assert r.status_code == 422


def test_the_export_streams_every_partner_in_batches(api: Api, session: Session) -> None:
    rows = [{"name": f"P{i}", "country": "DK"} for i in range(2500)]
    import_ok(api, csv_file(rows))
    exported = export_rows(api)
    assert [int(r["number"]) for r in exported] == list(range(1, 2501))


def test_another_company_exports_only_its_own(api: Api, other_api: Api) -> None:
    create_partner(api, name="Ours")
    assert export_rows(other_api) == []
    assert api.get(PARTNERS).json()["items"][0]["name"] == "Ours"
