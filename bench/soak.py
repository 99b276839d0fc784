"""Soak: mixed traffic from many concurrent clients against the server as in production.

A fresh company on a PostgreSQL database of its own (or SQLite), ``crm serve`` with several
workers, then for ``--seconds``: overview pages and CSV, partner reads and edits, order creation
and transitions on shared partners, bulk stage changes and balance pushes. Afterwards it checks
the data (``crm check``: maintained columns equal a recomputation) and prints p50/p99 per kind.
It fails (exit 1) on any 5xx, any transport error, any 4xx other than the intended ones
(409 for a transition that lost a race), or drift.

Run: ``python bench/soak.py --seconds 60 --clients 64`` (``make soak``).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import CRM, DATA, PG_ADMIN, pct, run, start_server

INTENDED = {409}  # a transition that another client made first


def database(backend: str) -> str:
    name = f"crm_soak_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        DATA.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{DATA / (name + '.db')}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    admin.dispose()
    return url


def drop(url: str) -> None:
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
        return
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[1]
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def soak_company(env: dict[str, str]) -> str:
    """Migrate, make the company `soak` with one user, and return an admin token of it."""
    run([CRM, "migrate"], env)
    run([CRM, "company", "create", "--slug", "soak", "--name", "Soak Foods"], env)
    run(
        [CRM, "user", "create", "--company", "soak", "--email", "s@soak.example", "--name", "S"],
        env,
    )
    token = [CRM, "token", "create", "--company", "soak", "--email", "s@soak.example"]
    return run([*token, "--scope", "admin"], env).stdout.strip()


def create_partners(base: str, headers: dict[str, str], partners: int) -> None:
    """The tag and the partners the traffic works on."""
    with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
        c.post("/api/v1/tags", json={"name": "Wholesale"}).raise_for_status()
        for i in range(partners):
            c.post(
                "/api/v1/partners",
                json={
                    "name": f"Soak Partner {i}",
                    "country": "DK",
                    "accounting_ref": f"S{i}",
                    "credit_limit": "5000.00",
                    "tags": ["Wholesale"] if i % 2 else [],
                },
            ).raise_for_status()


@dataclass
class Traffic:
    latencies: dict[str, list[float]]
    statuses: Counter[tuple[str, int]]
    problems: list[str]
    elapsed: float


def traffic(
    bases: list[str], headers: dict[str, str], *, seconds: float, clients: int, partners: int
) -> Traffic:
    """``clients`` threads of mixed traffic for ``seconds``, client i on ``bases[i % n]``."""
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: Counter[tuple[str, int]] = Counter()
    problems: list[str] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    shared = list(range(1, 11))  # the partners every client fights over

    def op(rng: random.Random, c: httpx.Client) -> tuple[str, httpx.Response]:
        roll = rng.random()
        number = rng.choice(shared) if rng.random() < 0.5 else rng.randint(1, partners)
        if roll < 0.30:
            sort = rng.choice(
                [
                    "number",
                    "-name",
                    "uninvoiced_total",
                    "-owner",
                    "customer_stage",
                    "-latest_sales_delivery_date",
                ]
            )
            return "overview", c.get("/api/v1/crm/overview", params={"sort": sort})
        if roll < 0.40:
            return "partner_get", c.get(f"/api/v1/partners/{number}")
        if roll < 0.50:
            return "partner_patch", c.patch(
                f"/api/v1/partners/{number}", json={"phone": str(rng.randint(1, 10**8))}
            )
        if roll < 0.68:
            return "order_create", c.post(
                "/api/v1/sales-orders",
                json={
                    "partner_number": number,
                    "currency": "DKK",
                    "delivery_date": f"2026-12-{rng.randint(1, 28):02d}",
                    "lines": [
                        {
                            "description": "Rye",
                            "quantity": str(rng.randint(1, 9)),
                            "unit_price": "18.50",
                        }
                    ],
                },
            )
        if roll < 0.82:
            orders = c.get("/api/v1/sales-orders", params={"status": "open", "limit": 20})
            items = orders.json()["items"] if orders.status_code == 200 else []
            if not items:
                return "order_list", orders
            target = rng.choice(items)["number"]
            action = rng.choice(["deliver", "invoice", "cancel"])
            return "order_transition", c.post(f"/api/v1/sales-orders/{target}/{action}")
        if roll < 0.88:
            return "bulk_stage", c.post(
                "/api/v1/partners/bulk/customer-stage",
                json={
                    "customer_stage": rng.choice(["lead", "potential", "inactive"]),
                    "numbers": rng.sample(range(1, partners + 1), 20),
                },
            )
        if roll < 0.94:
            return "balance_push", c.post(
                "/api/v1/accounting/balances",
                json={
                    "balances": [
                        {
                            "accounting_ref": f"S{i}",
                            "balance": f"{rng.randint(0, 900000) / 100:.2f}",
                        }
                        for i in rng.sample(range(partners), 10)
                    ],
                    "as_of": datetime.now(UTC).isoformat(),
                },
            )
        if roll < 0.97:
            return "summary", c.get("/api/v1/crm/summary")
        return "csv", c.get("/api/v1/crm/overview.csv", params={"tag": "Wholesale"})

    def client(index: int) -> None:
        rng = random.Random(index)
        with httpx.Client(base_url=bases[index % len(bases)], headers=headers, timeout=60) as c:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    kind, r = op(rng, c)
                except httpx.HTTPError as exc:
                    with lock:
                        problems.append(f"transport: {type(exc).__name__}: {exc}")
                    continue
                ms = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies[kind].append(ms)
                    statuses[(kind, r.status_code)] += 1
                    if r.status_code >= 500 or (
                        r.status_code >= 400 and r.status_code not in INTENDED
                    ):
                        problems.append(f"{kind}: {r.status_code} {r.text[:300]}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return Traffic(latencies, statuses, problems, elapsed)


def report(result: Traffic, title: str) -> None:
    """Throughput, p50/p99 overall, and a table per kind."""
    latencies, statuses, elapsed = result.latencies, result.statuses, result.elapsed
    total = sum(statuses.values())
    everything = [ms for values in latencies.values() for ms in values]
    print(
        f"{title}, {elapsed:.0f} s, {total} requests ({total / elapsed:.0f}/s), "
        f"p50 {pct(everything, 0.5):.1f} ms, p99 {pct(everything, 0.99):.1f} ms"
    )
    print("| kind | requests | p50 ms | p99 ms | statuses |")
    print("|---|---:|---:|---:|---|")
    for kind in sorted(latencies):
        codes = {s: n for (k, s), n in statuses.items() if k == kind}
        print(
            f"| {kind} | {len(latencies[kind])} | {pct(latencies[kind], 0.5):.1f} | "
            f"{pct(latencies[kind], 0.99):.1f} | {codes} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--partners", type=int, default=200)
    args = parser.parse_args()

    url = database(args.backend)
    env = {**os.environ, "CRM_DATABASE_URL": url, "CRM_LOG_LEVEL": "WARNING", "CRM_RATE_LIMIT": "0"}
    proc = None
    try:
        token = soak_company(env)
        proc, base = start_server(env, args.workers)
        headers = {"Authorization": f"Bearer {token}"}
        create_partners(base, headers, args.partners)
        result = traffic(
            [base], headers, seconds=args.seconds, clients=args.clients, partners=args.partners
        )
        statuses, problems = result.statuses, result.problems
        check = subprocess.run(
            [CRM, "check", "--company", "soak"], env=env, text=True, capture_output=True
        )
        report(result, f"soak: {args.backend}, {args.clients} clients, {args.workers} workers")
        five = sum(n for (_, s), n in statuses.items() if s >= 500)
        print(
            f"5xx: {five}; unintended errors: {len(problems)}; "
            f"crm check: {check.stderr.strip()} (exit {check.returncode})"
        )
        for line in problems[:10]:
            print("  " + line)
        if problems or check.returncode != 0:
            raise SystemExit(1)
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        drop(url)


if __name__ == "__main__":
    main()
