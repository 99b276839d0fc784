"""Saved views of the CRM overview: CRUD, who sees and who changes a view, validation naming
the field, and `view=` on the overview and the CSV export (filters, sort, columns, cursors)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.conftest import Api, assert_problem
from tests.crm import dataset
from tests.helpers import (
    OVERVIEW,
    OVERVIEW_FIELDS,
    assert_loc,
    create_token,
    create_user,
    numbers,
    ok,
    overview_csv,
    walk,
    with_token,
)

VIEWS = "/api/v1/crm/views"


def create_view(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"name": "My view", **fields}
    r = api.post(VIEWS, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def as_new_user(api: Api, scope: str, name: str = "Other Seller") -> Api:
    """A client with a token of another user of the same company."""
    user = create_user(api, name=name)
    return with_token(api, create_token(api, scope, user_id=user["id"])["token"])


@pytest.fixture
def data(api: Api, session: Session) -> dataset.Dataset:
    return dataset.build(api, session)


# --- CRUD ------------------------------------------------------------------------------------


def test_create_read_update_delete(api: Api) -> None:
    r = api.post(
        VIEWS,
        json={
            "name": "Danish leads",
            "filters": {"country": "DK", "customer_stage": ["lead", "potential"]},
            "sort": "-uninvoiced_total",
            "columns": ["name", "number", "uninvoiced_total"],
        },
    )
    assert r.status_code == 201, r.text
    view = r.json()
    assert r.headers["Location"] == f"{VIEWS}/{view['id']}"
    assert r.headers["ETag"] == '"1"'
    me = ok(api.get("/api/v1/me"))["user"]
    assert view["owner"] == {"id": me["id"], "name": me["name"]}
    assert view["name"] == "Danish leads"
    assert view["filters"]["country"] == "DK"
    assert view["filters"]["customer_stage"] == ["lead", "potential"]
    assert view["filters"]["q"] is None
    assert view["sort"] == "-uninvoiced_total"
    assert view["columns"] == ["name", "number", "uninvoiced_total"]
    assert view["shared"] is False
    assert view["created_at"] == view["updated_at"]
    assert ok(api.get(f"{VIEWS}/{view['id']}")) == view

    # PATCH changes only what is sent.
    r = api.patch(f"{VIEWS}/{view['id']}", json={"name": "DK leads", "columns": None})
    changed = ok(r)
    assert r.headers["ETag"] == '"2"'
    assert changed["name"] == "DK leads"
    assert changed["columns"] is None
    assert changed["filters"] == view["filters"]
    assert changed["sort"] == view["sort"]
    assert changed["updated_at"] > view["updated_at"]
    assert ok(api.get(f"{VIEWS}/{view['id']}")) == changed

    # `filters`, when sent, replaces the view's filters whole.
    changed = ok(api.patch(f"{VIEWS}/{view['id']}", json={"filters": {"tag": ["Organic"]}}))
    assert changed["filters"]["tag"] == ["Organic"]
    assert changed["filters"]["country"] is None

    assert api.delete(f"{VIEWS}/{view['id']}").status_code == 204
    assert_problem(api.get(f"{VIEWS}/{view['id']}"), 404, "view_not_found")
    assert_problem(api.delete(f"{VIEWS}/{view['id']}"), 404, "view_not_found")


def test_defaults_are_no_filters_default_sort_all_columns_private(api: Api) -> None:
    view = create_view(api)
    assert set(view["filters"].values()) == {None}
    assert view["sort"] is None
    assert view["columns"] is None
    assert view["shared"] is False


def test_every_filter_round_trips(api: Api) -> None:
    owner = create_user(api, name="Bea Berg")
    filters = {
        "q": "Alpha",
        "customer_stage": ["active", "lead"],
        "tag": ["Organic", "Wholesale"],
        "owner_id": owner["id"],
        "country": "SE",
        "credit_limit_exceeded": True,
        "updated_since": "2025-01-02T03:04:05Z",
    }
    view = create_view(api, filters=filters)
    assert view["filters"] == filters
    assert ok(api.get(f"{VIEWS}/{view['id']}"))["filters"] == filters


def test_etag_if_match_and_if_none_match(api: Api) -> None:
    view = create_view(api)
    path = f"{VIEWS}/{view['id']}"
    r = api.get(path)
    assert r.headers["ETag"] == '"1"'
    assert api.get(path, headers={"If-None-Match": '"1"'}).status_code == 304
    assert_problem(
        api.patch(path, json={"name": "x"}, headers={"If-Match": '"7"'}), 412, "etag_mismatch"
    )
    assert ok(api.patch(path, json={"name": "x"}, headers={"If-Match": '"1"'}))["name"] == "x"
    assert_problem(api.delete(path, headers={"If-Match": '"1"'}), 412, "etag_mismatch")
    assert api.delete(path, headers={"If-Match": '"2"'}).status_code == 204


def test_list_pages_and_sorts_by_name_and_created_at(api: Api) -> None:
    made = [create_view(api, name=name) for name in ("Charlie", "Alpha", "Bravo", "Delta")]
    by_name = walk(api, VIEWS, limit=3)
    assert [v["name"] for v in by_name] == ["Alpha", "Bravo", "Charlie", "Delta"]
    assert [v["name"] for v in walk(api, VIEWS, limit=1, sort="-name")] == [
        "Delta",
        "Charlie",
        "Bravo",
        "Alpha",
    ]
    oldest_first = walk(api, VIEWS, limit=2, sort="created_at")
    assert [v["id"] for v in oldest_first] == [v["id"] for v in made]
    assert ok(api.get(VIEWS, params={"include_total": "true"}))["total"] == 4
    assert_problem(api.get(VIEWS, params={"sort": "owner"}), 422)


# --- who sees, who changes -------------------------------------------------------------------


def test_read_scope_reads_write_scope_creates(api: Api) -> None:
    view = create_view(api, shared=True)
    reader = api.as_("read")
    assert ok(reader.get(f"{VIEWS}/{view['id']}"))["id"] == view["id"]
    assert [v["id"] for v in ok(reader.get(VIEWS))["items"]] == [view["id"]]
    assert_problem(reader.post(VIEWS, json={"name": "x"}), 403, "insufficient_scope")
    assert create_view(api.as_("write"))["owner"]["id"] == view["owner"]["id"]


def test_another_users_private_view_is_404_everywhere(api: Api, data: dataset.Dataset) -> None:
    private = create_view(api, name="Mine", filters={"country": "DK"})
    shared = create_view(api, name="Ours", shared=True)
    for scope in ("read", "write", "admin"):
        other = as_new_user(api, scope, name=f"Other {scope}")
        path = f"{VIEWS}/{private['id']}"
        assert_problem(other.get(path), 404, "view_not_found")
        if scope != "read":
            assert_problem(other.patch(path, json={"name": "x"}), 404, "view_not_found")
            assert_problem(other.delete(path), 404, "view_not_found")
        for export in (OVERVIEW, f"{OVERVIEW}.csv", f"{OVERVIEW}.xlsx"):
            assert_problem(other.get(export, params={"view": private["id"]}), 404, "view_not_found")
        assert [v["id"] for v in ok(other.get(VIEWS))["items"]] == [shared["id"]]
    # Still there, unchanged, for its creator.
    assert ok(api.get(f"{VIEWS}/{private['id']}")) == private


def test_another_companys_view_is_404(api: Api, other_api: Api) -> None:
    view = create_view(api, shared=True)
    path = f"{VIEWS}/{view['id']}"
    assert_problem(other_api.get(path), 404, "view_not_found")
    assert_problem(other_api.patch(path, json={"name": "x"}), 404, "view_not_found")
    assert_problem(other_api.delete(path), 404, "view_not_found")
    assert_problem(other_api.get(OVERVIEW, params={"view": view["id"]}), 404, "view_not_found")
    assert ok(other_api.get(VIEWS))["items"] == []
    assert ok(api.get(path)) == view


def test_a_shared_view_is_changed_only_by_its_creator_or_an_admin(api: Api) -> None:
    writer = as_new_user(api, "write", name="Writer")
    view = create_view(writer, name="Team view", shared=True)
    path = f"{VIEWS}/{view['id']}"

    colleague = as_new_user(api, "write", name="Colleague")
    assert ok(colleague.get(path))["name"] == "Team view"
    assert_problem(colleague.patch(path, json={"name": "Mine now"}), 403, "not_view_owner")
    assert_problem(colleague.delete(path), 403, "not_view_owner")

    # Its creator changes it.
    assert ok(writer.patch(path, json={"name": "Team view 2"}))["name"] == "Team view 2"
    # An admin token of another user changes it (and may make it private to its creator).
    admin = as_new_user(api, "admin", name="Boss")
    changed = ok(admin.patch(path, json={"shared": False}))
    assert changed["shared"] is False
    assert changed["owner"] == view["owner"]
    assert_problem(admin.get(path), 404, "view_not_found")
    assert ok(writer.get(path))["shared"] is False
    ok(writer.patch(path, json={"shared": True}))
    assert admin.delete(path).status_code == 204
    assert_problem(writer.get(path), 404, "view_not_found")


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"filters": {"country": "XX"}}, ["body", "filters", "country"]),
        ({"filters": {"customer_stage": ["vip"]}}, ["body", "filters", "customer_stage", 0]),
        (
            {"filters": {"credit_limit_exceeded": "maybe"}},
            ["body", "filters", "credit_limit_exceeded"],
        ),
        ({"filters": {"updated_since": "yesterday"}}, ["body", "filters", "updated_since"]),
        ({"filters": {"colour": "red"}}, ["body", "filters", "colour"]),
        ({"filters": None}, ["body", "filters"]),
        ({"sort": "balance"}, ["body", "sort"]),
        ({"sort": "-tags"}, ["body", "sort"]),
        ({"columns": ["name", "colour"]}, ["body", "columns", 1]),
        ({"columns": ["name", "number", "name"]}, ["body", "columns"]),
        ({"columns": []}, ["body", "columns"]),
        ({"name": ""}, ["body", "name"]),
        ({"shared": "yes"}, ["body", "shared"]),
        ({"owner": {"id": "x"}}, ["body", "owner"]),
    ],
)
def test_bad_fields_are_422_naming_the_field(
    api: Api, body: dict[str, Any], loc: list[Any]
) -> None:
    problem = assert_problem(api.post(VIEWS, json={"name": "v", **body}), 422)
    assert_loc(problem, *loc)
    view = create_view(api)
    problem = assert_problem(api.patch(f"{VIEWS}/{view['id']}", json=body), 422)
    assert_loc(problem, *loc)


def test_patch_cannot_null_a_field_that_has_no_empty_value(api: Api) -> None:
    view = create_view(api)
    for field in ("name", "filters", "shared"):
        problem = assert_problem(api.patch(f"{VIEWS}/{view['id']}", json={field: None}), 422)
        assert_loc(problem, "body", field)


def test_malformed_view_ids_are_422(api: Api) -> None:
    assert_problem(api.get(f"{VIEWS}/not-a-uuid"), 422)
    assert_problem(api.get(OVERVIEW, params={"view": "not-a-uuid"}), 422)


def test_unknown_view_is_404_on_the_overview_and_its_exports(api: Api) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    for path in (OVERVIEW, f"{OVERVIEW}.csv", f"{OVERVIEW}.xlsx"):
        assert_problem(api.get(path, params={"view": unknown}), 404, "view_not_found")


# --- applying a view -------------------------------------------------------------------------


def _rows(api: Api, **params: Any) -> list[dict[str, Any]]:
    return walk(api, OVERVIEW, limit=500, **params)


def test_a_view_applies_its_filters_and_sort(api: Api, data: dataset.Dataset) -> None:
    view = create_view(
        api, filters={"country": "DK", "customer_stage": ["lead", "active"]}, sort="-name"
    )
    expected = _rows(api, country="DK", customer_stage=["lead", "active"], sort="-name")
    assert len(expected) >= 3
    assert _rows(api, view=view["id"]) == expected
    # A view without a sort: the overview's default (by number).
    plain = create_view(api, filters={"tag": ["Organic"]})
    assert numbers(_rows(api, view=plain["id"])) == numbers(_rows(api, tag=["Organic"]))


def test_explicit_parameters_replace_the_views_one_by_one(api: Api, data: dataset.Dataset) -> None:
    view = create_view(
        api, filters={"country": "DK", "customer_stage": ["lead", "active"]}, sort="-name"
    )
    got = _rows(api, view=view["id"], country="SE")
    assert got == _rows(api, country="SE", customer_stage=["lead", "active"], sort="-name")
    assert got  # Bravo Dairy: SE, active
    got = _rows(api, view=view["id"], customer_stage="lost", sort="number")
    assert got == _rows(api, country="DK", customer_stage="lost", sort="number")
    got = _rows(api, view=view["id"], sort="-uninvoiced_total")
    assert numbers(got) == numbers(
        _rows(api, country="DK", customer_stage=["lead", "active"], sort="-uninvoiced_total")
    )


def test_columns_shape_the_json_rows(api: Api, data: dataset.Dataset) -> None:
    columns = ["uninvoiced_total", "name", "owner", "number"]
    view = create_view(api, columns=columns, sort="name")
    full = {row["number"]: row for row in _rows(api)}
    got = _rows(api, view=view["id"])
    assert [row["number"] for row in got] == numbers(_rows(api, sort="name"))
    for row in got:
        assert list(row) == columns
        assert row == {name: full[row["number"]][name] for name in columns}
    # Without the view: every field.
    assert all(list(row) == OVERVIEW_FIELDS for row in _rows(api))


def test_columns_shape_the_csv(api: Api, data: dataset.Dataset) -> None:
    view = create_view(
        api,
        filters={"customer_stage": ["active"]},
        columns=["tags", "number", "credit_limit_exceeded", "owner"],
        sort="-number",
    )
    _, lines = overview_csv(api, view=view["id"])
    assert lines[0] == ["tags", "number", "credit_limit_exceeded", "owner"]
    expected = _rows(api, customer_stage="active", sort="-number")
    assert len(lines) == len(expected) + 1
    for line, row in zip(lines[1:], expected, strict=True):
        assert line == [
            ";".join(row["tags"]),
            str(row["number"]),
            "true" if row["credit_limit_exceeded"] else "false",
            row["owner"]["name"] if row["owner"] else "",
        ]
    # Explicit parameters override the view's in the export too.
    _, lines = overview_csv(api, view=view["id"], customer_stage="lead", sort="number")
    assert [int(line[1]) for line in lines[1:]] == numbers(
        _rows(api, customer_stage="lead", sort="number")
    )


def test_a_cursor_continues_the_views_list(api: Api, data: dataset.Dataset) -> None:
    columns = ["name", "number", "uninvoiced_total"]
    view = create_view(
        api,
        filters={"customer_stage": ["lead", "active", "potential"]},
        sort="-uninvoiced_total",
        columns=columns,
    )
    expected = _rows(api, customer_stage=["lead", "active", "potential"], sort="-uninvoiced_total")
    assert len(expected) > 4
    want = [{name: row[name] for name in columns} for row in expected]

    # The cursor sent alone continues the same rows, in the view's columns.
    first = ok(api.get(OVERVIEW, params={"view": view["id"], "limit": 2}))
    items, cursor = list(first["items"]), first["next_cursor"]
    while cursor:
        page = ok(api.get(OVERVIEW, params={"cursor": cursor, "limit": 2}))
        items.extend(page["items"])
        cursor = page["next_cursor"]
    assert items == want

    # Sent with the view again, too.
    assert walk(api, OVERVIEW, limit=3, view=view["id"]) == want

    # Explicit parameters over the view, then the cursor alone: still that list.
    explicit = _rows(api, customer_stage=["lead", "active", "potential"], sort="name")
    first = ok(api.get(OVERVIEW, params={"view": view["id"], "sort": "name", "limit": 3}))
    second = ok(api.get(OVERVIEW, params={"cursor": first["next_cursor"], "limit": 100}))
    assert [r["number"] for r in first["items"] + second["items"]] == numbers(explicit)

    # Once the view's filters change, its old cursor sent with the view is refused (it would
    # be a page of another list); sent alone, it still continues the list it was made for.
    first = ok(api.get(OVERVIEW, params={"view": view["id"], "limit": 2}))
    ok(api.patch(f"{VIEWS}/{view['id']}", json={"filters": {"customer_stage": ["lead"]}}))
    stale = api.get(OVERVIEW, params={"view": view["id"], "cursor": first["next_cursor"]})
    assert_problem(stale, 422, "invalid_cursor")
    rest = ok(api.get(OVERVIEW, params={"cursor": first["next_cursor"], "limit": 100}))
    assert first["items"] + rest["items"] == want

    # A cursor is no way around a view one cannot see.
    other = as_new_user(api, "read")
    assert_problem(
        other.get(OVERVIEW, params={"cursor": first["next_cursor"]}), 404, "view_not_found"
    )
    # A cursor of a deleted view: its view is gone.
    assert api.delete(f"{VIEWS}/{view['id']}").status_code == 204
    assert_problem(
        api.get(OVERVIEW, params={"cursor": first["next_cursor"]}), 404, "view_not_found"
    )


def test_a_cursor_of_the_plain_overview_is_not_one_of_a_view(
    api: Api, data: dataset.Dataset
) -> None:
    view = create_view(api)  # no filters, no sort: the same rows as the plain overview
    plain = ok(api.get(OVERVIEW, params={"limit": 2}))
    assert_problem(
        api.get(OVERVIEW, params={"view": view["id"], "cursor": plain["next_cursor"]}),
        422,
        "invalid_cursor",
    )


def test_the_contract_says_a_row_may_hold_fewer_fields(api: Api) -> None:
    """With a view's `columns` a row holds only those fields: the row schema requires none,
    and each field that is there has its type (nullable only where its value can be null)."""
    schemas = api.client.app.openapi()["components"]["schemas"]  # type: ignore[attr-defined]
    row = schemas["OverviewRow"]
    assert "required" not in row
    assert list(row["properties"]) == OVERVIEW_FIELDS
    assert row["properties"]["number"] == {"type": "integer", "title": "Number"}
    assert "columns" in row["description"]
