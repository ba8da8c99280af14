"""Registry schema versions: ordered migrations in one transaction, recorded; a registry written
by an earlier release is upgraded in place and its project keeps running; a newer one is
refused."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from headwater.config import parse_config
from headwater.errors import ConfigError
from headwater.stores.registry import SCHEMA_VERSION, Registry, _sql
from tests.conftest import RESOURCES

OLD_PROJECT = RESOURCES / "registry_v2"
"""A project as commit da7a999 (schema version 2) left it; see its README."""
ROOT = Path(__file__).resolve().parents[2]


def headwater(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI of this checkout, in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "headwater", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def old_project(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Path:
    """A copy of the old project; for PostgreSQL its registry restored from the dump."""
    project = tmp_path / "project"
    shutil.copytree(OLD_PROJECT, project)
    if backend == "postgres":
        import psycopg

        dsn = request.getfixturevalue("pg_dsn")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute((OLD_PROJECT / "registry_pg.sql").read_text())  # type: ignore[arg-type]
            conn.execute("SET search_path TO public")
        (project / "headwater.yaml").write_text(
            f"project: t\nregistry:\n  type: postgres\n  dsn: {dsn}\n"
        )
        (project / "registry.db").unlink()
    return project


def meta(project: Path) -> dict[str, str]:
    config = parse_config(
        __import__("yaml").safe_load((project / "headwater.yaml").read_text()), project
    )
    with Registry.open(config) as registry:
        rows = registry._db.run("SELECT name, value FROM {meta}")
    return {str(r[0]): str(r[1]) for r in rows}


def test_migrations_are_numbered_in_order_up_to_the_schema_version() -> None:
    assert sorted(_sql.MIGRATIONS) == list(range(1, SCHEMA_VERSION))
    assert _sql.BASELINE in _sql.MIGRATIONS
    assert SCHEMA_VERSION >= 3  # the view table versions came after the baseline


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_registry_of_schema_2_is_upgraded_in_place_and_its_project_keeps_running(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    project = old_project(tmp_path, backend, request)
    out = ok(headwater(project, "apply"))
    assert "no changes" in out  # the definitions recorded by the old release are the same
    found = meta(project)
    assert found["schema_version"] == str(SCHEMA_VERSION)
    assert {f"migrated:{v}" for v in range(3, SCHEMA_VERSION + 1)} <= set(found)
    # What the old release recorded is still there: its runs, definitions and marks.
    out = ok(headwater(project, "status"))
    assert "user_orders" in out
    ok(headwater(project, "run"))
    ok(headwater(project, "materialize"))
    values = json.loads(
        ok(headwater(project, "get", "user_orders:amount_sum", "-e", "user_id=1", "--json"))
    )
    assert values["amount_sum"] == [15.0]
    config = parse_config(
        __import__("yaml").safe_load((project / "headwater.yaml").read_text()), project
    )
    with Registry.open(config) as registry:
        assert [r.version for r in registry.history("feature_view", "user_orders")] == [1]
        kinds = [r.kind for r in registry.runs("user_orders")]
        assert kinds.count("run") == 2 and kinds.count("materialize") == 2  # old and new


def test_a_fresh_registry_has_the_tables_and_columns_of_an_upgraded_one(tmp_path: Path) -> None:
    """A table or column added to the baseline instead of to a migration shows up here."""
    upgraded = tmp_path / "old"
    shutil.copytree(OLD_PROJECT, upgraded)
    assert meta(upgraded)["schema_version"] == str(SCHEMA_VERSION)
    fresh = tmp_path / "new"
    fresh.mkdir()
    (fresh / "headwater.yaml").write_text((OLD_PROJECT / "headwater.yaml").read_text())
    meta(fresh)

    def columns(path: Path) -> dict[str, list[Any]]:
        conn = sqlite3.connect(path / "registry.db")
        try:
            tables = [
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            return {
                t: sorted(r[1:4] for r in conn.execute(f'PRAGMA table_info("{t}")'))
                for t in tables
                if not t.startswith("sqlite_")
            }
        finally:
            conn.close()

    assert columns(fresh) == columns(upgraded)


def test_a_newer_registry_is_refused_with_one_line_before_anything_is_written(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    shutil.copytree(OLD_PROJECT, project)
    conn = sqlite3.connect(project / "registry.db")
    with conn:
        conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
        conn.execute("DROP TABLE counters")
    conn.close()
    result = headwater(project, "status")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "schema version 99" in errors[0], result.stderr
    conn = sqlite3.connect(project / "registry.db")
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert "counters" not in tables and "view_tables" not in tables


def test_a_failing_migration_leaves_the_registry_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    shutil.copytree(OLD_PROJECT, project)
    config = parse_config(
        {"project": "t", "registry": {"type": "sqlite", "path": "registry.db"}}, project
    )
    broken = (*_sql.MIGRATIONS[2], "ALTER TABLE {runs} ADD COLUMN nonsense NOT A TYPE (")
    monkeypatch.setitem(_sql.MIGRATIONS, 2, broken)
    with pytest.raises(sqlite3.OperationalError):
        Registry.open(config)
    conn = sqlite3.connect(project / "registry.db")
    version = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert version == ("2",)
    assert "view_tables" not in tables
    monkeypatch.undo()
    with Registry.open(config) as registry:
        assert registry.definition("feature_view", "user_orders") is not None
    assert meta(project)["schema_version"] == str(SCHEMA_VERSION)


def test_an_older_registry_without_a_known_migration_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '0')")
    conn.close()
    config = parse_config(
        {"project": "t", "registry": {"type": "sqlite", "path": "registry.db"}}, tmp_path
    )
    with pytest.raises(ConfigError, match="schema version 0, which this headwater cannot"):
        Registry.open(config)
