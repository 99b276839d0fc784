"""The partner import over HTTP: a generated file of N rows (default 50,000, the default
``CRM_IMPORT_MAX_ROWS``) imported as a dry run, for real (every row a new partner), and again
with every row's number (every partner updated), printing rows/s for each.

It seeds nothing: point it at a company of its own (the import adds N partners to it each run)
and give it a write token of that company.

    crm company create --slug imp --name "Import Bench ApS"
    crm user create --company imp --email bench@imp.example --name Bench
    crm token create --company imp --email bench@imp.example --scope write

    # against a running server (crm serve):
    python bench/imports.py --url http://127.0.0.1:8000 --token crm_...
    # or in process (the app on CRM_DATABASE_URL, through Starlette's TestClient):
    CRM_DATABASE_URL=postgresql+psycopg://... python bench/imports.py --token crm_...

Each row has a name, country, VAT id, email, phone, credit limit, a stage (every other row),
a tag (``--tag``, created by the first run with ``create_tags=true``) and a primary location:
the import's whole path (validation, numbers, partners, locations, tags, stage history,
events).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.partners.columns import HEADER

IMPORT = "/api/v1/partners/import"


def generate(rows: int, tag: str, numbers: list[int] | None = None) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    for i in range(rows):
        cells = {
            "number": str(numbers[i]) if numbers else "",
            "name": f"Bench Partner {i} {'updated' if numbers else ''}".strip(),
            "country": "DK",
            "vat_id": f"DK{10000000 + i}",
            "email": f"orders{i}@bench.example",
            "phone": f"+45 {20000000 + i}",
            "customer_stage": "lead" if i % 2 else "",
            "credit_limit": f"{1000 + i % 5000}.50",
            "tags": tag,
            "address": f"Benchvej {i % 300 + 1}",
            "postal_code": f"{1000 + i % 8999}",
            "city": "Aarhus" if numbers else "København",
        }
        writer.writerow([cells.get(name, "") for name in HEADER])
    return buffer.getvalue().encode("utf-8")


def timed(client: Any, token: str, data: bytes, **params: str) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    r = client.post(
        IMPORT,
        content=data,
        params=params,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
    )
    elapsed = time.perf_counter() - began
    if r.status_code != 200:
        raise SystemExit(f"{r.status_code}: {r.text[:2000]}")
    body: dict[str, Any] = r.json()
    return elapsed, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--token", required=True, help="a write token of the bench company")
    parser.add_argument("--url", help="a running server (default: the app in process)")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--tag", default="Bench")
    args = parser.parse_args()

    if args.url:
        client: Any = httpx.Client(base_url=args.url, timeout=600)
        where = args.url
    else:
        from fastapi.testclient import TestClient

        from app.core.config import Settings
        from app.main import create_app

        settings = Settings(dispatch_inline=False)
        client = TestClient(create_app(settings))
        where = f"in process on {settings.database_url.split('@')[-1]}"
    created_file = generate(args.rows, args.tag)
    print(f"{args.rows:,} rows, {len(created_file) / 1e6:.1f} MB CSV, {where}")
    with client:
        results = []
        seconds, body = timed(client, args.token, created_file, dry_run="true", create_tags="true")
        results.append(("dry run (create)", seconds, body["created"]))
        seconds, body = timed(client, args.token, created_file, create_tags="true")
        results.append(("create", seconds, body["created"]))
        updated_file = generate(args.rows, args.tag, numbers=body["numbers_created"])
        seconds, body = timed(client, args.token, updated_file)
        results.append(("update", seconds, body["updated"]))
        seconds, body = timed(client, args.token, updated_file)
        results.append(("unchanged", seconds, body["unchanged"]))
    for label, seconds, count in results:
        print(f"{label:18} {count:>7,} rows  {seconds:7.2f} s  {count / seconds:9,.0f} rows/s")


if __name__ == "__main__":
    main()
