"""The ``headwater`` console script, run as a user runs it: a subprocess of the installed script."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

HEADWATER = shutil.which("headwater", path=str(Path(sys.executable).parent)) or str(
    Path(sys.executable).parent / "headwater"
)
PROJECT_COMMANDS = [
    "apply",
    "run",
    "backfill",
    "materialize",
    "stream",
    "get",
    "history",
    "status",
    "check",
    "quality",
    "views",
    "describe",
    "runs",
    "quarantine",
    "serve",
]
COMMANDS = ["init", "quickstart", *PROJECT_COMMANDS]
HEAVY_MODULES = [
    "duckdb",
    "pyarrow",
    "deltalake",
    "pandas",
    "polars",
    "fastapi",
    "psycopg",
    "redis",
]
PASSWORD = "hunter2-Secret"


def environment() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200", "HEADWATER_LOG_LEVEL": "WARNING"}
    for name in ("HEADWATER_DEBUG", "HEADWATER_LOG_FORMAT", "HW_CLI_TEST_UNSET"):
        env.pop(name, None)
    return env


def headwater(
    *args: str | Path, cwd: Path | None = None, timeout: int = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEADWATER, *map(str, args)],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def fails(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line of a failed command."""
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


# ---------------------------------------------------------------------- help and start-up
def test_the_console_script_is_installed() -> None:
    assert Path(HEADWATER).is_file()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    text = ok(headwater(command, "--help"))
    assert "Usage:" in text
    if command in PROJECT_COMMANDS:
        assert "--repo" in text


def test_top_level_help_lists_the_commands() -> None:
    text = ok(headwater("--help"))
    for command in COMMANDS:
        assert command in text


def test_help_is_fast() -> None:
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        ok(headwater("--help"))
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 1.0, timings


def test_the_cli_module_imports_no_heavy_library() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import headwater.cli.main"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            imported.add(name.split(".")[0])
    assert "typer" in imported  # the output was parsed
    assert imported.isdisjoint(HEAVY_MODULES), sorted(imported & set(HEAVY_MODULES))


def test_version() -> None:
    assert ok(headwater("--version")).strip() == "0.1.0"


# ---------------------------------------------------------------------- the init template
@dataclass
class Template:
    root: Path
    outputs: dict[str, str]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """``headwater init``, then apply, run and materialize, each from another folder via --repo."""
    root = tmp_path_factory.mktemp("cli") / "proj"
    outputs = {"init": ok(headwater("init", root))}
    for command in ("apply", "run", "materialize"):
        outputs[command] = ok(headwater(command, "--repo", root))
    return Template(root, outputs)


def test_init_then_apply_run_materialize(template: Template) -> None:
    root, outputs = template.root, template.outputs
    assert f"created {root / 'headwater.yaml'}" in outputs["init"]
    assert f"created {root / 'features.py'}" in outputs["init"]
    assert "+ feature_view user_events_daily" in outputs["apply"]
    assert "1 feature views valid" in outputs["apply"]
    assert "user_events_daily: 5 rows in, 4 inserted" in outputs["run"]
    assert "user_events_daily: 2 entities" in outputs["materialize"]
    assert "no changes" in ok(headwater("apply", "--repo", root, "--dry-run"))


def test_init_refuses_a_non_empty_folder(template: Template) -> None:
    line = fails(headwater("init", template.root))
    assert "exists and is not empty" in line
    assert "--force" in line


def test_status_from_inside_the_project(template: Template) -> None:
    text = ok(headwater("status", cwd=template.root))
    assert "user_events_daily" in text
    assert "aggregation" in text
    assert "success" in text


def test_get_as_json(template: Template) -> None:
    text = ok(
        headwater(
            "get",
            "user_events_daily:events",
            "user_events_daily:amount_sum",
            "--entity",
            "user_id=1",
            "--entity",
            "user_id=2",
            "--entity",
            "user_id=3",
            "--json",
            "--repo",
            template.root,
        )
    )
    # Yesterday's window (the latest complete one): user 1 has 3.0 + 7.25, user 2 has 1.0.
    assert json.loads(text) == {
        "user_id": [1, 2, 3],
        "events": [2, 1, None],
        "amount_sum": [10.25, 1.0, None],
    }


def test_history_writes_a_training_set(template: Template, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    entities = tmp_path / "entities.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1, 2, 1], pa.int64()),
                "event_timestamp": pa.array(
                    [now, now, now - timedelta(days=10)], pa.timestamp("us", tz="UTC")
                ),
            }
        ),
        entities,
    )
    output = tmp_path / "out" / "training.parquet"
    text = ok(
        headwater(
            "history",
            "--entities",
            entities,
            "--features",
            "user_events_daily:events,user_events_daily:amount_sum",
            "--output",
            output,
            "--repo",
            template.root,
        )
    )
    assert f"wrote 3 rows to {output}" in text
    table = pq.read_table(output)
    assert {"user_id", "event_timestamp", "events", "amount_sum"} <= set(table.column_names)
    assert table.num_rows == 3
    old = [r for r in table.to_pylist() if r["event_timestamp"] < now - timedelta(days=5)]
    assert old == [{**old[0], "events": None, "amount_sum": None}]


# ---------------------------------------------------------------------- quickstart
def test_quickstart(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    started = time.perf_counter()
    text = ok(headwater("quickstart", demo, "--users", "200", "--days", "3", timeout=120))
    assert time.perf_counter() - started < 60
    assert "online features" in text
    assert "user_id" in text
    assert "country" in text
    training = pq.read_table(demo / "data" / "training_set.parquet")
    assert training.num_rows > 0
    assert {"user_id", "event_timestamp", "age", "amount_sum", "clicks"} <= set(
        training.column_names
    )
    line = fails(headwater("quickstart", demo))
    assert "exists and is not empty" in line


# ---------------------------------------------------------------------- failures
def broken_project(root: Path, config: str, definitions: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "headwater.yaml").write_text(config)
    (root / "features.py").write_text(
        definitions
        or (
            "from headwater import Count, Entity, FeatureView, FileSource\n"
            'user = Entity("user", join_keys=["user_id"])\n'
            'src = FileSource("events", path="data/events.parquet", '
            'timestamp_field="event_timestamp")\n'
            'v = FeatureView("v", entity=user, source=src, features=[Count()])\n'
        )
    )
    return root


def test_malformed_yaml(tmp_path: Path) -> None:
    root = broken_project(tmp_path, "project: p\nonline_store: {type: sqlite\n")
    line = fails(headwater("apply", "--repo", root))
    assert "headwater.yaml is not valid YAML at line 3, column 1" in line


def test_unknown_key(tmp_path: Path) -> None:
    root = broken_project(tmp_path, "project: p\nonline_store:\n  type: redis\n  urll: x\n")
    line = fails(headwater("run", "--repo", root))
    assert "online_store.urll: unknown key" in line
    assert "url" in line.split("valid keys", 1)[1]


def test_missing_env_var(tmp_path: Path) -> None:
    root = broken_project(
        tmp_path,
        "project: p\nconnections:\n  app_db:\n    type: postgres\n"
        '    dsn: "postgresql://app:${HW_CLI_TEST_UNSET}@127.0.0.1/shop"\n',
    )
    result = headwater("apply", "--repo", root)
    line = fails(result)
    assert "connections.app_db.dsn uses ${HW_CLI_TEST_UNSET}" in line
    assert "export HW_CLI_TEST_UNSET=" in line


def test_unknown_column_in_a_feature_expression(tmp_path: Path) -> None:
    root = broken_project(
        tmp_path,
        "project: p\n",
        "from headwater import Entity, FeatureView, FileSource\n"
        'user = Entity("user", join_keys=["user_id"])\n'
        'src = FileSource("events", path="data/events.parquet", '
        'timestamp_field="event_timestamp")\n'
        'v = FeatureView("profile", entity=user, source=src, '
        'features={"spend": "amount * quantity"})\n',
    )
    (root / "data").mkdir()
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([1], pa.int64()),
                "amount": pa.array([2.0]),
                "event_timestamp": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
            }
        ),
        root / "data" / "events.parquet",
    )
    line = fails(headwater("apply", "--repo", root))
    assert "view 'profile': feature 'spend'" in line
    assert "quantity" in line
    assert "user_id, amount, event_timestamp" in line


@pytest.mark.postgres
def test_unreachable_postgres_never_shows_the_password(tmp_path: Path) -> None:
    root = broken_project(
        tmp_path,
        "project: p\nconnections:\n  app_db:\n    type: postgres\n"
        f'    dsn: "postgresql://app:{PASSWORD}@127.0.0.1:1/shop"\n'
        "    connect_timeout_s: 2\n",
        "from headwater import Count, Entity, FeatureView, PostgresSource\n"
        'user = Entity("user", join_keys=["user_id"])\n'
        'orders = PostgresSource("orders", connection="app_db", table="public.orders", '
        'timestamp_field="created_at")\n'
        'v = FeatureView("v", entity=user, source=orders, features=[Count()])\n',
    )
    result = headwater("apply", "--repo", root)
    line = fails(result)
    assert PASSWORD not in result.stdout + result.stderr
    assert "source 'orders': cannot connect to PostgreSQL at" in line
    assert "postgresql://app:***@127.0.0.1:1/shop" in line


def test_unknown_view_name_to_run(template: Template) -> None:
    line = fails(headwater("run", "nope", "--repo", template.root))
    assert "no feature view named 'nope'" in line
    assert "user_events_daily" in line


@pytest.mark.parametrize("spec", ["user_id", "user_id=1,broken"])
def test_bad_entity_syntax(template: Template, spec: str) -> None:
    line = fails(
        headwater("get", "user_events_daily:events", "--entity", spec, "--repo", template.root)
    )
    assert "is not of the form key=value" in line
    assert "--entity user_id=1" in line


def test_a_missing_project(tmp_path: Path) -> None:
    line = fails(headwater("status", "--repo", tmp_path / "nowhere"))
    assert "no headwater.yaml in" in line
    assert "headwater init" in line


def test_a_broken_definition_module(tmp_path: Path) -> None:
    root = broken_project(tmp_path, "project: p\n", "import json\n\njson.loads('{')\n")
    line = fails(headwater("apply", "--repo", root))
    assert "importing features.py failed at line 3: JSONDecodeError" in line


def test_an_unexpected_error_is_still_one_line(template: Template, tmp_path: Path) -> None:
    entities = tmp_path / "entities.csv"
    entities.write_text("user_id,event_timestamp\n1,2024-01-01T00:00:00Z\nx,2024-01-01\n")
    line = fails(
        headwater(
            "history",
            "--entities",
            entities,
            "-f",
            "user_events_daily:events",
            "--output",
            tmp_path / "o.parquet",
            "--repo",
            template.root,
        )
    )
    assert "'x'" in line
