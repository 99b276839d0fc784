from pathlib import Path

import yaml

from app.cli import render_openapi

CONTRACT = Path(__file__).resolve().parents[2] / "openapi" / "openapi.yaml"


def test_committed_contract_matches_the_app() -> None:
    committed = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    generated = yaml.safe_load(render_openapi("yaml"))
    assert committed == generated, "openapi/openapi.yaml is stale: run `make openapi` and commit"


def test_every_operation_declares_its_errors() -> None:
    schema = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    for path, item in schema["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            if path.startswith("/api/"):
                assert {"401", "403"} <= set(responses), (method, path)
            if "{" in path and path.startswith("/api/"):
                assert "404" in responses, (method, path)
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in responses, (method, path)
