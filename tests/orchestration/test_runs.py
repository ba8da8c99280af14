"""Recorded runs: one lifecycle for every kind of run — success, failure (redacted),
interruption — and runs whose process died found and marked ``aborted``. Against the real
registries."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.config import parse_config
from headwater.observability.metrics import REGISTRY as METRICS
from headwater.orchestration.runs import RecordedRun
from headwater.stores.registry import SCHEMA_VERSION, Registry


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    if request.param == "sqlite":
        config: dict[str, Any] = {"type": "sqlite", "path": "registry.db"}
    else:
        config = {"type": "postgres", "dsn": request.getfixturevalue("pg_dsn")}
    with Registry.open(parse_config({"project": "t", "registry": config}, tmp_path)) as opened:
        yield opened


def _count(view: str, kind: str, status: str) -> float:
    value = METRICS.get_sample_value(
        "headwater_runs_total", {"view": view, "kind": kind, "status": status}
    )
    return value or 0.0


def test_a_finished_run_is_recorded_with_its_rows_and_counted(registry: Registry) -> None:
    before = _count("v_ok", "run", "success")
    with RecordedRun(registry, "v_ok", "run", {"full_refresh": False}) as run:
        run.finish(rows_in=10, rows_out=7, details={"inserted": 7})
    (record,) = registry.runs("v_ok")
    assert (record.run_id, record.status, record.rows_in, record.rows_out) == (
        run.run_id,
        "success",
        10,
        7,
    )
    assert record.details == {"full_refresh": False, "inserted": 7}
    assert record.ended_at is not None and record.error is None
    assert _count("v_ok", "run", "success") == before + 1


def test_a_failed_run_is_recorded_redacted_and_its_error_goes_on(registry: Registry) -> None:
    with (
        pytest.raises(RuntimeError, match="secretpw"),
        RecordedRun(registry, "v_bad", "materialize"),
    ):
        raise RuntimeError("cannot reach redis://:secretpw@10.0.0.1:6379/0")
    (record,) = registry.runs("v_bad")
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.startswith("RuntimeError: cannot reach redis://")
    assert "secretpw" not in record.error
    assert _count("v_bad", "materialize", "failed") >= 1


def test_an_interrupted_run_is_not_left_running(registry: Registry) -> None:
    with pytest.raises(KeyboardInterrupt), RecordedRun(registry, "v_int", "stream"):
        raise KeyboardInterrupt
    (record,) = registry.runs("v_int")
    assert (record.status, record.error) == ("interrupted", "interrupted (KeyboardInterrupt)")


def test_a_run_left_without_finish_succeeds_empty(registry: Registry) -> None:
    with RecordedRun(registry, "v_empty", "backfill"):
        pass
    assert registry.runs("v_empty")[0].status == "success"


def test_the_heartbeat_is_refreshed_while_the_run_works(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "lease_s", 0.3)  # a beat every sixth of the lease
    assert registry.heartbeat_s == pytest.approx(0.05)
    beats: list[str] = []
    real = registry.heartbeat
    monkeypatch.setattr(registry, "heartbeat", lambda run_id: (beats.append(run_id), real(run_id)))
    with RecordedRun(registry, "v_beat", "stream") as run:
        deadline = time.monotonic() + 5
        while len(beats) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert beats[:3] == [run.run_id] * 3
    count = len(beats)
    time.sleep(0.2)
    assert len(beats) == count  # the beating stops with the run


KILLED = """
import os, signal, sys
from pathlib import Path
from headwater.config import parse_config
from headwater.orchestration.runs import RecordedRun
from headwater.stores.registry import Registry

project = parse_config({"project": "t", "registry": {"type": "sqlite", "path": "registry.db"}},
                       Path(sys.argv[1]))
registry = Registry.open(project)
with RecordedRun(registry, "v_killed", "run") as run:
    print(run.run_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_process_run_is_aborted_by_the_next_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -9, done.stderr
    killed = done.stdout.strip()
    project = parse_config(
        {"project": "t", "registry": {"type": "sqlite", "path": "registry.db"}}, tmp_path
    )
    with Registry.open(project) as registry:
        assert registry.runs("v_killed")[0].status == "running"  # nobody looked yet
        registry.start_run("other", "run")
        (record,) = registry.runs("v_killed")
        assert (record.run_id, record.status) == (killed, "aborted")
        assert record.error is not None and "ended without finishing it" in record.error
        assert record.ended_at is not None


def _own(registry: Registry, run_id: str, owner: str, seconds_ago: float) -> None:
    """Make ``run_id`` look owned by ``owner``, last heard of ``seconds_ago``."""
    from datetime import UTC, datetime, timedelta

    beat = registry._db.to_db_ts(datetime.now(UTC) - timedelta(seconds=seconds_ago))
    with registry._db.transaction():
        registry._db.run(
            "UPDATE {runs} SET owner = ?, heartbeat_at = ? WHERE run_id = ?",
            (owner, beat, run_id),
        )


def test_a_run_of_another_host_is_aborted_only_once_its_heartbeat_is_stale(
    registry: Registry,
) -> None:
    quiet = registry.start_run("v_far", "stream")
    recent = registry.start_run("v_near", "stream")
    _own(registry, quiet, "elsewhere.example:4242:99", seconds_ago=600)
    _own(registry, recent, "elsewhere.example:4343:99", seconds_ago=5)
    assert registry.abort_dead_runs() == [quiet]
    assert registry.runs("v_far")[0].status == "aborted"
    assert "no heartbeat for over 120s" in (registry.runs("v_far")[0].error or "")
    assert registry.runs("v_near")[0].status == "running"


def test_a_live_local_run_is_never_aborted_however_quiet(registry: Registry) -> None:
    from headwater.stores.registry._runs import process_owner

    mine = registry.start_run("v_live", "stream")
    _own(registry, mine, process_owner(), seconds_ago=3600)
    assert registry.abort_dead_runs() == []
    assert registry.runs("v_live")[0].status == "running"


def test_a_view_is_held_by_one_live_run_at_a_time(registry: Registry) -> None:
    import socket

    from headwater.errors import ViewBusy

    held = registry.start_run("v_lease", "run")
    with pytest.raises(ViewBusy) as caught:
        registry.start_run("v_lease", "backfill")
    message = str(caught.value)
    assert f"view 'v_lease' is busy: run {held} by {socket.gethostname()}:" in message
    assert "started at " in message and "--wait SECONDS" in message
    registry.start_run("v_lease", "materialize")  # another kind of work on the view
    registry.start_run("v_other", "run")  # another view
    registry.finish_run(held, "success")
    registry.start_run("v_lease", "run")  # free again


def test_a_silent_holder_of_another_host_frees_the_view_after_the_lease(
    registry: Registry,
) -> None:
    held = registry.start_run("v_far_lease", "run")
    _own(registry, held, "elsewhere.example:4242:99", seconds_ago=5)
    registry.lease_s = 30
    from headwater.errors import ViewBusy

    with pytest.raises(ViewBusy, match=r"by elsewhere\.example:4242, started at"):
        registry.start_run("v_far_lease", "run")
    _own(registry, held, "elsewhere.example:4242:99", seconds_ago=31)
    registry.start_run("v_far_lease", "run")
    assert registry.runs("v_far_lease")[-1].status == "aborted"


OLD_RUNS = (
    "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL UNIQUE,"
    " view_name TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,"
    " started_at TEXT NOT NULL, ended_at TEXT, rows_in BIGINT NOT NULL DEFAULT 0,"
    " rows_out BIGINT NOT NULL DEFAULT 0, error TEXT, details TEXT NOT NULL)"
)


def test_a_version_1_registry_is_migrated_and_its_stuck_runs_aborted(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute(OLD_RUNS)
        conn.execute(
            "INSERT INTO runs (run_id, view_name, kind, status, started_at, details) VALUES "
            "('old', 'v', 'stream', 'running', '2024-01-01T00:00:00.000000+00:00', '{}')"
        )
    conn.close()
    project = parse_config(
        {"project": "t", "registry": {"type": "sqlite", "path": "registry.db"}}, tmp_path
    )
    with Registry.open(project) as registry:
        registry.start_run("v", "run")
        old = [r for r in registry.runs("v") if r.run_id == "old"]
        assert old[0].status == "aborted"
    conn = sqlite3.connect(path)
    version = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    conn.close()
    assert version == (str(SCHEMA_VERSION),)
