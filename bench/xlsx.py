"""Memory and speed of the XLSX export of the CRM overview (``GET /api/v1/crm/overview.xlsx``),
through the route's own code path: the overview's keyset batches from the database, written by
``app.crm.xlsx`` in constant-memory mode into a spooled temporary file, then read back in
the chunks the response streams.

    python bench/xlsx.py                       # 50,000 rows, a fresh SQLite database
    python bench/xlsx.py --rows 200000
    CRM_DATABASE_URL=postgresql+psycopg://... python bench/xlsx.py --company bench

With no ``CRM_DATABASE_URL`` the data goes into a temporary SQLite file. The company is seeded
(``crm seed``, in a child process, so the seeding's own memory is not counted) when it has
fewer overview rows than asked for. The export then runs in this process after a warm-up
(imports, first statements), and the script prints the peak RSS growth over the RSS before
the export (``ru_maxrss``, the kernel's high-water mark), rows per second and the file size.
``--tracemalloc`` runs it once more under tracemalloc for the Python heap's peak alone
(slower; its rows/s are not comparable).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from app.auth.dependencies import Principal
from app.core.config import Settings
from app.crm import service, xlsx
from app.db.session import Database, build_engine
from app.models import Company, Partner, User
from app.partners.schemas import PartnerFilter

STAGED_SHARE = 0.9  # ``crm seed`` gives nine partners in ten a customer stage
MB = 1024 * 1024


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def overview_rows(db: Database, slug: str) -> int:
    with db.session(write=False) as session:
        company_id = session.scalar(select(Company.id).where(Company.slug == slug))
        if company_id is None:
            return 0
        return int(
            session.scalar(
                select(func.count()).where(
                    Partner.company_id == company_id, Partner.customer_stage.is_not(None)
                )
            )
            or 0
        )


def crm(env: dict[str, str], *arguments: str) -> None:
    """The `crm` command, in a child process (its memory is not this one's)."""
    command = [sys.executable, "-c", "from app.cli import main; main()", *arguments]
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)


def seed(env: dict[str, str], slug: str, rows: int) -> None:
    partners = math.ceil(rows / STAGED_SHARE * 1.02)
    print(f"seeding {partners} partners ({partners // 2} orders) ...", flush=True)
    crm(env, "seed", "--company", slug, "--partners", str(partners), "--orders", str(partners // 2))


def principal_of(db: Database, slug: str) -> Principal:
    with db.session(write=False) as session:
        company = session.scalars(select(Company).where(Company.slug == slug)).one()
        user = session.scalars(select(User).where(User.company_id == company.id).limit(1)).one()
        return Principal.acting_as(company, user)


def export(db: Database, principal: Principal) -> int:
    """The route's path: rows from the database into the workbook, then streamed out.
    Answers the bytes streamed."""
    with db.session(write=False) as session:
        file = service.xlsx_file(
            session=session,
            principal=principal,
            filters=PartnerFilter(),
            sort="-uninvoiced_total",
            columns=None,
        )
        return sum(len(chunk) for chunk in xlsx.chunks(file))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="overview rows at least")
    parser.add_argument("--company", default="xlsxbench")
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="xlsx-bench-")
    try:
        run(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: str) -> None:
    env = dict(os.environ)
    env.setdefault("CRM_DATABASE_URL", f"sqlite:///{workdir}/bench.db")
    env["CRM_LOG_LEVEL"] = "WARNING"
    os.environ.update(env)
    crm(env, "migrate")
    db = Database(build_engine(Settings()))
    if overview_rows(db, args.company) < args.rows:
        started = time.perf_counter()
        seed(env, args.company, args.rows)
        print(f"seeded in {time.perf_counter() - started:.0f} s")
    rows = overview_rows(db, args.company)
    principal = principal_of(db, args.company)

    # Warm up: imports, the first statements, xlsxwriter's first workbook.
    with db.session(write=False) as session:
        xlsx.chunks(
            service.xlsx_file(
                session=session,
                principal=principal,
                filters=PartnerFilter(q="1"),
                sort=None,
                columns=None,
            )
        ).close()

    before = rss_bytes()
    began = time.perf_counter()
    size = export(db, principal)
    elapsed = time.perf_counter() - began
    growth = max(0, peak_rss_bytes() - before)
    backend = db.engine.dialect.name
    print(
        f"[{backend}] {rows} rows -> {size / MB:.1f} MB xlsx in {elapsed:.1f} s "
        f"({rows / elapsed:,.0f} rows/s); RSS before {before / MB:.0f} MB, "
        f"peak growth {growth / MB:.1f} MB (budget 100 MB)"
    )
    if args.tracemalloc:
        tracemalloc.start()
        export(db, principal)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"[{backend}] Python heap peak under tracemalloc: {peak / MB:.1f} MB")
    db.dispose()


if __name__ == "__main__":
    main()
