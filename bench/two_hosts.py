"""Two hosts on one machine: two API processes and one worker behind PgBouncer (transaction
pooling), reading from a streaming replica, against one API process on the primary alone,
under the soak's mixed traffic.

    python bench/two_hosts.py --seconds 30 --clients 32

It starts a primary and its streaming replica (fresh clusters on free ports, as the tests
do) and a PgBouncer in front of the primary. Per round, interleaved, each on a fresh
database and company:
- one: `crm serve --workers 1` straight on the primary (its inline worker runs the jobs);
- two hosts: two `crm serve --workers 1` through PgBouncer with CRM_DATABASE_REPLICA_URL,
  CRM_DISPATCH_INLINE=false, and one `crm worker`; the clients alternate between the two.
Both see the same traffic (bench/soak.py). It prints throughput and p99 of each, their ratios,
and fails on any 5xx, unintended 4xx or drift (`crm check`). On one machine the two "hosts"
share its CPUs: the figure shows what the topology costs or saves here, not what a second
machine adds.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from run import CRM, pct, start_server
from soak import Traffic, create_partners, report, soak_company, traffic

from tests.ops import engines


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=30)


def one_round(
    primary: engines.Cluster,
    replica: engines.Cluster,
    bouncer: int,
    *,
    two: bool,
    args: argparse.Namespace,
) -> Traffic:
    name = f"crm_two_{uuid.uuid4().hex[:8]}"
    primary.sql(f'CREATE DATABASE "{name}"')
    direct = primary.url(name)
    base_env = {**os.environ, "CRM_LOG_LEVEL": "WARNING", "CRM_RATE_LIMIT": "0"}
    env = {**base_env, "CRM_DATABASE_URL": direct}
    token = soak_company(env)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        if two:
            pooled = {
                **base_env,
                "CRM_DATABASE_URL": direct.replace(f":{primary.port}/", f":{bouncer}/"),
                "CRM_DB_PGBOUNCER": "true",
                "CRM_DATABASE_REPLICA_URL": replica.url(name),
                "CRM_DISPATCH_INLINE": "false",
            }
            bases = []
            for _ in range(2):
                proc, base = start_server(pooled, 1)
                procs.append(proc)
                bases.append(base)
            procs.append(
                subprocess.Popen(
                    [CRM, "worker"],
                    env=pooled,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        else:
            proc, base = start_server(env, 1)
            procs.append(proc)
            bases = [base]
        headers = {"Authorization": f"Bearer {token}"}
        create_partners(bases[0], headers, args.partners)
        while replica.sql("SELECT count(*) FROM partners", name) < args.partners:
            time.sleep(0.05)  # the replica replays the partners (another process): polled
        result = traffic(
            bases, headers, seconds=args.seconds, clients=args.clients, partners=args.partners
        )
    finally:
        _stop(procs)
    check = subprocess.run(
        [CRM, "check", "--company", "soak"], env=env, text=True, capture_output=True
    )
    five = sum(n for (_, s), n in result.statuses.items() if s >= 500)
    title = "two hosts (2 API + worker, PgBouncer, replica)" if two else "one process"
    report(result, f"{title}: {args.clients} clients")
    print(
        f"5xx: {five}; unintended errors: {len(result.problems)}; crm check: {check.stderr.strip()}"
    )
    for line in result.problems[:5]:
        print("  " + line)
    if result.problems or check.returncode != 0:
        raise SystemExit(1)
    primary.sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--partners", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    tuning = "max_connections = 200\nshared_buffers = 256MB\n"
    with (
        engines.streaming_pair(tuning) as (primary, replica),
        engines.pgbouncer("127.0.0.1", primary.port, "postgres", pool_size=20) as bouncer,
    ):
        results: dict[bool, list[Traffic]] = {False: [], True: []}
        for _ in range(args.rounds):
            for two in (False, True):
                results[two].append(one_round(primary, replica, bouncer, two=two, args=args))

    def throughput(t: Traffic) -> float:
        return sum(t.statuses.values()) / t.elapsed

    def p99(t: Traffic, kind: str | None = None) -> float:
        samples = [ms for k, values in t.latencies.items() if kind in (None, k) for ms in values]
        return pct(samples, 0.99)

    one, two = results[False][-1], results[True][-1]
    print(
        f"two hosts / one process: throughput {throughput(two) / throughput(one):.2f}x "
        f"({throughput(two):.0f} vs {throughput(one):.0f} requests/s), p99 "
        f"{p99(two):.0f} vs {p99(one):.0f} ms, order_create p99 "
        f"{p99(two, 'order_create'):.0f} vs {p99(one, 'order_create'):.0f} ms"
    )


if __name__ == "__main__":
    main()
