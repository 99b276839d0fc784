"""``crm migrate`` as operators run it: several hosts at once against one PostgreSQL, and from
an installed wheel in a directory that holds nothing of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from app.db.migrations import head_revision
from tests.migrations.test_migrations import BACKEND, fresh_engine  # noqa: F401  (fixture)

PROJECT = Path(__file__).resolve().parents[2]
MIGRATE = "from app.cli import main; main()"


def _env(url: str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    return {**env, "CRM_DATABASE_URL": url, "CRM_LOG_JSON": "true", **more}


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


@pytest.mark.postgres_only
def test_three_hosts_migrating_at_once_all_succeed_and_migrate_once(
    fresh_engine: Engine,  # noqa: F811
    tmp_path: Path,
) -> None:
    url = fresh_engine.url.render_as_string(hide_password=False)
    hosts = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, "migrate"],
            cwd=tmp_path,
            env=_env(url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [host.communicate(timeout=120) for host in hosts]
    for host, (_, err) in zip(hosts, outcomes, strict=True):
        assert host.returncode == 0, err
    with fresh_engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [
            head_revision()
        ]
    assert {"companies", "partners", "sales_orders", "saved_views"} <= _tables(fresh_engine)


@pytest.mark.slow
def test_an_installed_wheel_migrates_from_an_empty_directory(tmp_path: Path) -> None:
    """The wheel carries its migrations: built from the project, unpacked, and run with
    nothing of the source tree on the path (PYTHONPATH precedes the editable install)."""
    if BACKEND != "sqlite":
        pytest.skip("packaging does not depend on the database: checked once, on SQLite")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT / name, source / name)
    shutil.copytree(PROJECT / "app", source / "app", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("*.whl")
    installed = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert "app/migrations/env.py" in names
        assert "app/migrations/script.py.mako" in names
        assert f"app/migrations/versions/{_newest_migration()}" in names
        archive.extractall(installed)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    database = empty / "crm.db"
    env = _env(f"sqlite:///{database}", PYTHONPATH=str(installed))
    where = subprocess.run(
        [sys.executable, "-c", "import app; print(app.__file__)"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(installed))
    result = subprocess.run(
        [sys.executable, "-c", MIGRATE, "migrate"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "database migrated to head" in result.stderr
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
                head_revision()
            )
    finally:
        engine.dispose()
    assert sorted(p.name for p in empty.iterdir()) == ["crm.db"]


def _newest_migration() -> str:
    return sorted(p.name for p in (PROJECT / "app" / "migrations" / "versions").glob("0*.py"))[-1]
