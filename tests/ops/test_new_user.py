"""What a new user meets first: HEAD wherever GET is, one tag per operation in /docs, the
package's version in the contract, ``/`` leading to the docs, ``make run`` on the port asked for
and saying how to call ``crm``, a quiet install, and no stray virtual environment in git."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount

from app.core.config import Settings
from app.main import create_app, package_version
from tests.conftest import Api, RollbackDatabase, assert_problem

ROOT = Path(__file__).resolve().parents[2]
# Headers that differ between any two answers, or with the moment.
VOLATILE = {"x-request-id", "date"}


def _flat(routes: list[Any]) -> list[Any]:
    out = []
    for route in routes:
        included = getattr(route, "original_router", None)
        out.extend(_flat(included.routes) if included is not None else [route])
    return out


def _get_paths(app: Any) -> list[str]:
    paths = []
    for route in _flat(app.routes):
        if isinstance(route, Mount) or "GET" not in (getattr(route, "methods", None) or ()):
            continue
        paths.append(re.sub(r"\{[^}]+\}", "1", route.path_format))
    return sorted(set(paths))


@pytest.fixture
def seeded(api: Api) -> Api:
    """Partner 1, sales order 1 and a tag, so that GETs by key find something."""
    assert api.post("/api/v1/tags", json={"name": "Wholesale"}).status_code == 201
    r = api.post("/api/v1/partners", json={"name": "Nordic Deli A/S", "country": "DK"})
    assert r.status_code == 201, r.text
    order = {
        "partner_number": r.json()["number"],
        "lines": [{"description": "Rye bread", "quantity": "2", "unit_price": "10.00"}],
    }
    assert api.post("/api/v1/sales-orders", json=order).status_code == 201
    return api


# --- HEAD on every GET route ----------------------------------------------------------------


def test_every_get_route_answers_head_like_get_without_a_body(seeded: Api) -> None:
    paths = _get_paths(seeded.client.app)
    assert {"/", "/healthz", "/docs", "/api/v1/crm/overview.csv", "/api/v1/partners/1"} <= set(
        paths
    )
    answered = set()
    for path in paths:
        get = seeded.get(path)
        head = seeded.request("HEAD", path)
        assert head.status_code == get.status_code, (path, get.status_code, head.status_code)
        assert head.content == b"", path
        got, headed = dict(get.headers), dict(head.headers)
        for name in VOLATILE | ({"content-length"} if path == "/metrics" else set()):
            got.pop(name, None)
            headed.pop(name, None)
        assert headed == got, path
        answered.add(get.status_code)
    assert 200 in answered


def test_head_of_the_csv_export_has_its_type_and_no_rows(seeded: Api) -> None:
    r = seeded.request("HEAD", "/api/v1/crm/overview.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content == b""


def test_head_without_a_token_is_401_like_get(client: TestClient) -> None:
    r = client.head("/api/v1/partners")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.content == b""


def test_head_honours_if_none_match(seeded: Api) -> None:
    etag = seeded.get("/api/v1/partners/1").headers["etag"]
    r = seeded.request("HEAD", "/api/v1/partners/1", headers={"If-None-Match": etag})
    assert r.status_code == 304
    assert r.headers["etag"] == etag


def test_head_is_counted_and_logged_as_head(seeded: Api) -> None:
    seeded.request("HEAD", "/healthz")
    metrics = seeded.client.get("/metrics").text
    assert re.search(
        r'crm_http_requests_total\{method="HEAD",route="/healthz",status="200"\}', metrics
    )


def test_allow_lists_head_wherever_get_is(api: Api) -> None:
    r = api.request("POST", "/api/v1/crm/overview.csv")
    assert_problem(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "GET, HEAD"


def test_head_stays_out_of_the_contract(client: TestClient) -> None:
    contract = client.app.openapi()  # type: ignore[attr-defined]
    for path, item in contract["paths"].items():
        assert "head" not in item, path


# --- the contract as /docs shows it -----------------------------------------------------------


def test_every_operation_is_under_exactly_one_tag(client: TestClient) -> None:
    contract = client.app.openapi()  # type: ignore[attr-defined]
    tags = {}
    for path, item in contract["paths"].items():
        for method, operation in item.items():
            assert len(operation.get("tags", [])) == 1, (method, path, operation.get("tags"))
            tags[(method, path)] = operation["tags"][0]
    assert tags[("get", "/api/v1/tokens")] == "tokens"
    assert tags[("post", "/api/v1/tokens")] == "tokens"
    assert tags[("get", "/api/v1/me")] == "auth"
    assert tags[("post", "/api/v1/partners/bulk/customer-stage")] == "partners"


def test_the_contract_version_is_the_package_version(client: TestClient) -> None:
    contract = client.app.openapi()  # type: ignore[attr-defined]
    assert contract["info"]["version"] == version("crm-overview") == package_version()


def test_the_committed_contract_carries_the_package_version() -> None:
    text = (ROOT / "openapi" / "openapi.yaml").read_text(encoding="utf-8")
    assert f"\n  version: {version('crm-overview')}\n" in text


# --- / leads to the docs ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_root_redirects_to_the_docs(
    settings: Settings, db: RollbackDatabase, method: str
) -> None:
    app = create_app(settings, database=db)
    with TestClient(app, follow_redirects=False) as c:
        r = c.request(method, "/", headers={"Host": "evil.example"})
        assert r.status_code == 307
        assert r.headers["location"] == "/docs"
        assert "/" not in app.openapi()["paths"]
        docs = c.get(r.headers["location"])
        assert docs.status_code == 200
        assert docs.headers["content-type"].startswith("text/html")


# --- make run -------------------------------------------------------------------------------


def _make_run(**env: str) -> str:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    clean = {
        k: v
        for k, v in os.environ.items()
        # A make that runs these tests (CI: `make test VENV=.ci-venv`) exports its
        # command-line variables; the plan asked for is that of a plain `make run`.
        if k not in {"PORT", "CRM_PORT", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "VENV", "PYTHON"}
    }
    out = subprocess.run(
        [make, "--no-print-directory", "-n", "run"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout


@pytest.mark.parametrize(
    ("env", "port"),
    [({}, "8000"), ({"CRM_PORT": "9102"}, "9102"), ({"PORT": "9101", "CRM_PORT": "9102"}, "9101")],
)
def test_make_run_serves_on_port_then_crm_port(env: dict[str, str], port: str) -> None:
    plan = _make_run(**env)
    assert f"crm serve --port {port}\n" in plan
    assert "CRM_SECRET_KEY=" in plan  # a local key, so webhooks can be stored
    assert f"http://127.0.0.1:{port}" in plan


def test_make_run_says_how_to_call_crm_once_serving() -> None:
    plan = _make_run()
    hint = plan.index(".venv/bin/crm --help")
    assert plan.index("socket.create_connection") < hint  # after the server answers
    assert ". .venv/bin/activate" in plan


def test_the_readme_says_how_to_call_crm_and_pick_the_port() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "`.venv/bin/crm" in readme
    assert ". .venv/bin/activate" in readme
    assert "make run PORT=" in readme
    assert "`CRM_PORT`" in readme


# --- packaging and git --------------------------------------------------------------------------


def test_the_license_is_an_spdx_string() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["license"] == "MIT"
    # A license string needs setuptools 77 (PEP 639).
    assert "setuptools>=77" in pyproject["build-system"]["requires"]


def test_the_ci_virtual_environment_is_ignored_by_git() -> None:
    lines = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".ci-venv/" in lines
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ".ci-venv" in ci
