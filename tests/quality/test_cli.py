"""The `check` and `quality` commands, and quality in `status`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from headwater.cli.main import app
from tests.helpers import TS, write_project

DEFS = """
from headwater import Entity, FeatureView, FileSource, checks

user = Entity("user", join_keys=["user_id"])
events = FileSource("events", path="data/events.parquet", timestamp_field="ts", checks=[
    checks.not_null("user_id", severity="quarantine"),
    checks.between("amount", 0, 10, severity="{severity}"),
])
spend = FeatureView("spend", entity=user, source=events, features={{"amount": "amount"}})
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    ts = pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * 3, TS)
    data = pa.table(
        {"user_id": pa.array([1, None, 3], pa.int64()), "ts": ts, "amount": [1.0, 2.0, 99.0]}
    )
    return write_project(tmp_path, DEFS.format(severity="warn"), data={"data/events.parquet": data})


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    return result.exit_code, result.output


def test_check_is_a_dry_run(repo: Path) -> None:
    assert invoke("apply", "--repo", str(repo))[0] == 0
    code, output = invoke("check", "--repo", str(repo))
    assert code == 0, output
    assert "spend (dry run: nothing written)" in output
    assert "not_null(user_id)" in output and "quarantined" in output
    assert "between(amount)" in output and "warned" in output
    assert not (repo / "data" / "offline").exists()
    code, output = invoke("quality", "--repo", str(repo))
    assert "no check results recorded yet" in output


def test_check_exits_1_when_a_fail_check_fails(repo: Path) -> None:
    (repo / "defs.py").write_text(DEFS.format(severity="fail"))
    invoke("apply", "--repo", str(repo))
    code, output = invoke("check", "--repo", str(repo), "spend")
    assert code == 1
    assert "failed" in output


def test_quality_and_status_after_a_run(repo: Path) -> None:
    invoke("apply", "--repo", str(repo))
    code, output = invoke("run", "--repo", str(repo))
    assert code == 0, output
    assert "1 quarantined" in output
    code, output = invoke("quality", "spend", "--repo", str(repo))
    assert code == 0, output
    assert "not_null(user_id)" in output and "between(amount)" in output
    assert "warned source 'events': check 'between(amount)' on column 'amount'" in output
    code, output = invoke("quality", "--repo", str(repo), "--json")
    records = json.loads(output)
    assert [(r["check"], r["action"], r["rows_failed"]) for r in records] == [
        ("not_null(user_id)", "quarantined", 1),
        ("between(amount)", "warned", 1),
    ]
    code, output = invoke("status", "--repo", str(repo))
    assert "1 quarantined" in output and "1 warned" in output
    assert "1 rows set aside" in output


def test_help_lists_the_commands() -> None:
    for command in ("check", "quality"):
        code, output = invoke(command, "--help")
        assert code == 0
        assert "--repo" in output
