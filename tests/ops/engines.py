"""Real PostgreSQL engines for the scale-out tests and the two-host bench: a PgBouncer in
transaction pooling, and a primary with a streaming replica (``initdb`` and
``pg_basebackup`` in a temporary directory, as the database's system user, on free ports).
Each raises ``Unavailable`` when its binaries are missing."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text


class Unavailable(RuntimeError):
    """The engine's binaries are not installed here."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres() -> list[str]:
    # PgBouncer and initdb refuse to run as root: they run as the database's system user.
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@contextlib.contextmanager
def pgbouncer(host: str, port: int, user: str, *, pool_size: int = 8) -> Iterator[int]:
    """A PgBouncer in transaction pooling in front of ``host:port`` (trust auth for
    ``user``); yields the port it listens on."""
    binary = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if binary is None:
        raise Unavailable("pgbouncer is not installed (Debian package pgbouncer)")
    listen = free_port()
    folder = Path(tempfile.mkdtemp(prefix="crm-pgbouncer-"))
    (folder / "userlist.txt").write_text(f'"{user}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={host} port={port}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {listen}\n"
        "auth_type = trust\n"
        f"auth_file = {folder / 'userlist.txt'}\n"
        "pool_mode = transaction\n"
        "max_client_conn = 500\n"
        f"default_pool_size = {pool_size}\n"
        "unix_socket_dir =\n"
    )
    folder.chmod(0o755)
    for file in folder.iterdir():
        file.chmod(0o644)
    as_user = ["-u", "postgres"] if os.geteuid() == 0 else []
    proc = subprocess.Popen(
        [binary, *as_user, str(folder / "pgbouncer.ini")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", listen), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    output = proc.stdout.read().decode() if proc.stdout else ""
                    raise RuntimeError(f"pgbouncer did not start: {output[-2000:]}") from None
                time.sleep(0.05)  # another process starting: polled
        yield listen
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Cluster:
    bindir: Path
    data: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*_as_postgres(), str(self.bindir / tool), *args],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-l", f"{self.data}.log", "-w", "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def sql(self, statement: str, database: str = "postgres") -> Any:
        engine = create_engine(self.url(database), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                result = conn.execute(text(statement))
                return result.scalar() if result.returns_rows else None
        finally:
            engine.dispose()


@contextlib.contextmanager
def streaming_pair(settings: str = "") -> Iterator[tuple[Cluster, Cluster]]:
    """A primary and its streaming replica, each a fresh cluster on a free port;
    ``settings`` are extra postgresql.conf lines for both."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise Unavailable("PostgreSQL server binaries (initdb) not found")
    bindir = Path(found[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="crm-replica-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    folder.chmod(0o755)
    primary = Cluster(bindir, folder / "primary", free_port())
    replica = Cluster(bindir, folder / "replica", free_port())
    try:
        primary.run(
            "initdb",
            "-D",
            str(primary.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        with (primary.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {primary.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{folder}'\nfsync = off\n{settings}\n"
            )
        primary.start()
        replica.run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(replica.data),
            "-R",
            "-X",
            "stream",
        )
        with (replica.data / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {replica.port}\n")
        replica.start()
        if replica.sql("SELECT pg_is_in_recovery()") is not True:
            raise RuntimeError("the replica is not in recovery")
        yield primary, replica
    finally:
        for cluster in (replica, primary):
            with contextlib.suppress(subprocess.SubprocessError):
                cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
