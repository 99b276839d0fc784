"""Errors in one place: every failure is problem+json built by ``problem_response``; the
framework's own HTTP errors are told apart by status, never by their message; the body limit
has one branch whatever the framing; and every status any route can answer (400
``invalid_host``, 429, 503 with ``Retry-After``) is declared in the contract."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.config import Settings
from app.core.errors import PROBLEM_TYPE_BASE, InternalError, NotFound, problem_response
from app.main import create_app
from tests.conftest import Api, RollbackDatabase, assert_problem

APP = Path(__file__).resolve().parents[2] / "app"
LIMIT = 4096


class _LockNotAvailable(Exception):
    sqlstate = "55P03"


class _SQLiteBusy(Exception):
    sqlite_errorname = "SQLITE_BUSY"


class _Unreachable(Exception):
    pass


RAISES: dict[str, Exception] = {
    "pg-lock-timeout": OperationalError("UPDATE partners", {}, _LockNotAvailable()),
    "sqlite-busy": OperationalError("UPDATE partners", {}, _SQLiteBusy()),
    "unreachable": OperationalError("SELECT 1", {}, _Unreachable()),
    "integrity": IntegrityError("INSERT", {}, Exception("duplicate key")),
    "stale": StaleDataError("UPDATE statement on table expected to update 1 row"),
    # Starlette's message text is irrelevant: only the status decides.
    "framework-400": StarletteHTTPException(400, detail="Something else entirely"),
    "framework-404": StarletteHTTPException(404, detail="Nothing here, says the framework"),
    "framework-406": StarletteHTTPException(406),
}


@pytest.fixture
def raising(settings: Settings, db: RollbackDatabase) -> Iterator[TestClient]:
    """An app with a throwaway route raising each exception of RAISES, and a small body limit."""
    app = create_app(settings.model_copy(update={"max_body_bytes": LIMIT}), database=db)

    @app.get("/test-only/raise/{name}", include_in_schema=False)
    def raise_(name: str) -> None:
        raise RAISES[name]

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("pg-lock-timeout", "lock_timeout"),
        ("sqlite-busy", "lock_timeout"),
        ("unreachable", "database_unavailable"),
    ],
)
def test_a_database_that_cannot_answer_is_503_with_retry_after(
    raising: TestClient, name: str, code: str
) -> None:
    r = raising.get(f"/test-only/raise/{name}")
    body = assert_problem(r, 503, code)
    assert body["title"] == "Service unavailable"
    assert body["type"] == PROBLEM_TYPE_BASE + code
    assert body["instance"] == f"/test-only/raise/{name}"
    assert int(r.headers["Retry-After"]) >= 1
    assert "UPDATE" not in r.text
    assert "SELECT" not in r.text


def test_integrity_and_stale_data_are_409(raising: TestClient) -> None:
    assert_problem(raising.get("/test-only/raise/integrity"), 409, "conflict")
    assert_problem(raising.get("/test-only/raise/stale"), 409, "concurrent_update")


def test_framework_errors_are_told_apart_by_status_not_message(raising: TestClient) -> None:
    # FastAPI's one 400 is a body it could not decode: as malformed as bad JSON.
    assert_problem(raising.get("/test-only/raise/framework-400"), 422, "invalid_json")
    r = raising.get("/test-only/raise/framework-404")
    body = assert_problem(r, 404, "not_found")
    assert body["detail"] == "No route matches GET /test-only/raise/framework-404."
    body = assert_problem(raising.get("/test-only/raise/framework-406"), 406, "not_acceptable")
    assert (body["title"], body["detail"]) == ("Not Acceptable", "Not Acceptable")


def test_no_route_and_wrong_method_are_problems(api: Api) -> None:
    body = assert_problem(api.get("/api/v1/no-such-thing"), 404, "not_found")
    assert body["detail"] == "No route matches GET /api/v1/no-such-thing."
    r = api.request("PUT", "/api/v1/crm/overview")
    body = assert_problem(r, 405, "method_not_allowed")
    assert body["detail"] == "PUT is not allowed on /api/v1/crm/overview."
    assert r.headers["Allow"] == "GET, HEAD"


def test_a_body_that_is_not_utf8_is_422_invalid_json(api: Api) -> None:
    r = api.post("/api/v1/tags", content=b"\xff\xfe{", headers={"Content-Type": "application/json"})
    assert_problem(r, 422, "invalid_json")


# --- the body limit: one branch, whatever the framing ------------------------------------------


def _chunks(total: int, size: int = 1000) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "GET"])
def test_a_body_over_the_limit_is_413_however_it_is_framed(
    raising: TestClient, api: Api, framing: str, method: str
) -> None:
    body: Any = b" " * (LIMIT + 1) if framing == "content-length" else _chunks(LIMIT + 1)
    path = {"GET": "/api/v1/tags", "PUT": "/api/v1/accounting/connection"}.get(
        method, "/api/v1/partners/1" if method == "PATCH" else "/api/v1/tags"
    )
    r = raising.request(
        method,
        path,
        content=body,
        headers={**api.headers(), "Content-Type": "application/json"},
    )
    problem = assert_problem(r, 413, "payload_too_large")
    assert str(LIMIT) in problem["detail"]
    assert r.headers["X-Request-ID"]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_at_the_limit_reaches_the_app(raising: TestClient, api: Api, framing: str) -> None:
    payload = b'{"name": "Fresh"}'
    padded = payload + b" " * (LIMIT - len(payload))
    body: Any = padded if framing == "content-length" else iter([padded[:100], padded[100:]])
    r = raising.post(
        "/api/v1/tags", content=body, headers={**api.headers(), "Content-Type": "application/json"}
    )
    assert r.status_code == 201, r.text


# --- one way to build a problem ------------------------------------------------------------------


def test_problem_response_is_the_one_renderer() -> None:
    r = problem_response(NotFound("No partner 7.", extra={"status": 1, "number": 7}), instance="/x")
    assert r.media_type == "application/problem+json"
    assert r.status_code == 404
    assert json.loads(r.body) == {
        "type": PROBLEM_TYPE_BASE + "not_found",
        "title": "Not found",
        "status": 404,  # extra members never replace the standard ones
        "detail": "No partner 7.",
        "code": "not_found",
        "instance": "/x",
        "number": 7,
    }
    assert problem_response(InternalError("boom")).status_code == 500


def _sources() -> Iterator[tuple[Path, str]]:
    for path in sorted(APP.rglob("*.py")):
        yield path, path.read_text(encoding="utf-8")


def test_no_problem_body_is_built_outside_core_errors() -> None:
    for path, source in _sources():
        if path == APP / "core" / "errors.py":
            continue
        assert "PROBLEM_TYPE_BASE" not in source, path
        assert "problem_body" not in source, path
        assert '"type": "urn:' not in source, path


def test_no_starlette_message_text_is_matched() -> None:
    for path, source in _sources():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                for operand in operands:
                    is_detail = isinstance(operand, ast.Attribute) and operand.attr == "detail"
                    is_text = isinstance(operand, ast.Constant) and operand.value in (
                        "Not Found",
                        "Method Not Allowed",
                        "There was an error parsing the body",
                    )
                    assert not is_detail, f"{path}:{node.lineno}"
                    assert not is_text, f"{path}:{node.lineno}"


def test_core_imports_nothing_of_the_app_but_core() -> None:
    for path in sorted((APP / "core").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name == "app" or name.startswith("app."):
                    assert name.startswith("app.core"), f"{path.name} imports {name}"


def test_the_handlers_live_in_core_errors_not_in_main() -> None:
    main = (APP / "main.py").read_text(encoding="utf-8")
    assert "exception_handler" not in main
    assert "install_error_handlers" in (APP / "core" / "errors.py").read_text(encoding="utf-8")


# --- the contract declares what every route can answer ----------------------------------------


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    app: FastAPI = create_app(Settings(database_url="sqlite://"))
    return app.openapi()


def _operations(contract: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in contract["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_api_operation_declares_429_and_503_with_retry_after(
    contract: dict[str, Any],
) -> None:
    checked = 0
    for path, method, operation in _operations(contract):
        if not path.startswith("/api/"):
            continue
        for status in ("429", "503"):
            declared = operation["responses"].get(status)
            assert declared is not None, (method, path, status)
            assert declared["headers"]["Retry-After"]["schema"] == {"type": "integer"}
            schema = declared["content"]["application/problem+json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Problem"}
        checked += 1
    assert checked > 30


def test_the_503_says_what_it_is(contract: dict[str, Any]) -> None:
    described = {
        operation["responses"]["503"]["description"]
        for path, _, operation in _operations(contract)
        if path.startswith("/api/")
    }
    assert (
        "Service unavailable: the database is busy or a lock wait timed out; retry after "
        "`Retry-After`"
    ) in described
    assert not any(d == "Not ready" for d in described)


def test_every_operation_declares_400_invalid_host(contract: dict[str, Any]) -> None:
    for path, method, operation in _operations(contract):
        declared = operation["responses"].get("400")
        assert declared is not None, (method, path)
        assert "invalid_host" in declared["description"], (method, path)
        assert "application/problem+json" in declared["content"]


def test_an_answered_invalid_host_is_a_declared_status(
    settings: Settings, db: RollbackDatabase, contract: dict[str, Any]
) -> None:
    app = create_app(settings.model_copy(update={"allowed_hosts": "api.example"}), database=db)
    with TestClient(app, raise_server_exceptions=False) as c:
        for path in ("/healthz", "/api/v1/crm/overview"):
            r = c.get(path, headers={"Host": "evil.example"})
            assert_problem(r, 400, "invalid_host")
            assert "400" in contract["paths"][path]["get"]["responses"]


def test_validation_errors_are_problems_in_the_contract(contract: dict[str, Any]) -> None:
    schemas = contract["components"]["schemas"]
    assert "Problem" in schemas
    assert "HTTPValidationError" not in schemas
    for _, _, operation in _operations(contract):
        declared = operation["responses"].get("422")
        if declared is not None:
            assert list(declared["content"]) == ["application/problem+json"]
