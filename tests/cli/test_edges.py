"""Values that used to reach libraries unchecked: each is one ``error:`` line naming the key or
flag, and a feature expression never runs a second SQL statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.cli.test_cli import fails, headwater, ok

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The console script imports headwater from this checkout (not another editable one)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def project(root: Path, *, config: str = "project: p\n", feature: str = "x * 2") -> Path:
    """A projection view over a two-row Parquet file."""
    (root / "data").mkdir(parents=True)
    (root / "headwater.yaml").write_text(config)
    (root / "features.py").write_text(
        "from headwater import Entity, FeatureView, FileSource\n"
        'user = Entity("user", join_keys=["user_id"])\n'
        'src = FileSource("e", path="data/e.parquet", timestamp_field="ts")\n'
        f'v = FeatureView("v", entity=user, source=src, features={{"a": {feature!r}}})\n'
    )
    now = datetime.now(UTC)
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1, 2], pa.int64()),
                "x": [1.0, 2.0],
                "ts": pa.array([now - timedelta(hours=2), now], pa.timestamp("us", "UTC")),
            }
        ),
        root / "data" / "e.parquet",
    )
    return root


@pytest.mark.parametrize(
    ("engine", "key", "says"),
    [
        ("memory_limit: lots", "engine.memory_limit", "'lots' is not a memory size"),
        ("memory_limit: 10MB", "engine.memory_limit", "at least 64MiB"),
        ("threads: 0", "engine.threads", "greater than or equal to 1"),
    ],
)
def test_engine_settings_are_checked(tmp_path: Path, engine: str, key: str, says: str) -> None:
    root = project(tmp_path, config=f"project: p\nengine: {{type: duckdb, {engine}}}\n")
    line = fails(headwater("run", "--repo", root))
    assert f"{key}: " in line
    assert says in line
    assert "unexpected" not in line


@pytest.mark.parametrize(
    "feature",
    [
        "sum(x); COPY (SELECT 42) TO '{target}'",
        "1); COPY (SELECT 42) TO '{target}'; SELECT (1",
    ],
)
def test_a_second_statement_in_an_expression_never_runs(tmp_path: Path, feature: str) -> None:
    target = tmp_path / "written-by-the-expression.csv"
    root = project(tmp_path / "p", feature=feature.format(target=target))
    for command in ("apply", "run"):
        line = fails(headwater(command, "--repo", root))
        assert "view 'v': feature 'a'" in line
        assert "SQL statements, not one expression" in line
        assert not target.exists()


def test_an_expression_with_a_clause_of_its_own_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path, feature="x) FROM e -- ")
    line = fails(headwater("apply", "--repo", root))
    assert "is not one SQL expression" in line


def test_history_output_of_an_unknown_kind(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    ok(headwater("apply", "--repo", root))
    entities = tmp_path / "entities.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1], pa.int64()),
                "event_timestamp": pa.array([datetime.now(UTC)], pa.timestamp("us", "UTC")),
            }
        ),
        entities,
    )
    output = tmp_path / "x.txt"
    line = fails(
        headwater("history", "--entities", entities, "-f", "v:a", "--output", output,
                  "--repo", root)
    )  # fmt: skip
    assert f"--output {output}: cannot write .txt" in line
    assert ".parquet or .csv" in line
    assert not output.exists()


def test_an_unknown_run_id(tmp_path: Path) -> None:
    root = project(tmp_path)
    ok(headwater("apply", "--repo", root))
    ok(headwater("run", "--repo", root))
    line = fails(headwater("quality", "--run", "no-such-run", "--repo", root))
    assert "--run 'no-such-run': no run has this id" in line
