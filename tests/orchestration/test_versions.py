"""Definition changes: a change that alters rows gets a new offline table version, built by the
next run and switched to atomically; until then the old version serves; afterwards only the new
version's rows are read (training sets, online); ``prune`` removes the old version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import headwater
from headwater.errors import NotFound
from tests.helpers import TS, offline_rows, write_parquet

ROOT = Path(__file__).resolve().parents[2]
DEFS = """
from headwater import Entity, FeatureView, FileSource, Sum, Tumbling

user = Entity("user", join_keys=["user_id"])
orders = FileSource("orders", path="data/orders.parquet", timestamp_field="ts")
user_orders = FeatureView(
    "user_orders",
    entity=user,
    source=orders,
    window=Tumbling("{window}"),
    features=[Sum("amount", name="amount_sum")],{extra}
)
"""
DAY = datetime(2024, 1, 1, tzinfo=UTC)


def _at(hour: int, day: int = 1) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=UTC)


def define(root: Path, window: str, extra: str = "") -> None:
    (root / "defs.py").write_text(DEFS.format(window=window, extra=extra))


def make_project(
    root: Path, registry: dict[str, Any], online: dict[str, Any], offline: str = "delta"
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "project": "t",
        "registry": registry,
        "online_store": online,
        "offline_store": {"type": offline},
    }
    (root / "headwater.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    define(root, "1d")
    orders = pa.table(
        {
            "user_id": pa.array([1, 1, 2], pa.int64()),
            "ts": pa.array([_at(1), _at(5), _at(3)], TS),
            "amount": pa.array([10.0, 5.0, 7.0]),
        }
    )
    write_parquet(root, "data/orders.parquet", orders)
    return root


@pytest.fixture(
    params=[
        ("sqlite", "sqlite"),
        pytest.param(("sqlite", "redis"), marks=pytest.mark.redis),
        pytest.param(("postgres", "sqlite"), marks=pytest.mark.postgres),
        pytest.param(("postgres", "redis"), marks=[pytest.mark.postgres, pytest.mark.redis]),
    ],
    ids=lambda p: f"{p[0]}-registry-{p[1]}-online",
)
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    registry_kind, online_kind = request.param
    registry: dict[str, Any] = {"type": "sqlite", "path": "registry.db"}
    if registry_kind == "postgres":
        registry = {"type": "postgres", "dsn": request.getfixturevalue("pg_dsn")}
    online: dict[str, Any] = {"type": "sqlite", "path": "online.db"}
    if online_kind == "redis":
        online = {
            "type": "redis",
            "url": request.getfixturevalue("redis_url"),
            "key_prefix": request.getfixturevalue("redis_prefix"),
        }
    return make_project(tmp_path / "project", registry, online)


def training(store: headwater.FeatureStore, **kw: Any) -> list[Any]:
    entity_df = pa.table(
        {
            "user_id": pa.array([1, 2], pa.int64()),
            "event_timestamp": pa.array([_at(12, day=3), _at(12, day=3)], TS),
        }
    )
    table = store.get_historical_features(entity_df, ["user_orders:amount_sum"], **kw).to_arrow()
    return sorted(zip(table["user_id"].to_pylist(), table["amount_sum"].to_pylist(), strict=True))


def online(store: headwater.FeatureStore) -> list[Any]:
    rows = [{"user_id": 1}, {"user_id": 2}]
    return store.get_online_features(["user_orders:amount_sum"], rows).to_dict()["amount_sum"]


def served_rows(store: headwater.FeatureStore) -> list[tuple[int, datetime, float]]:
    table = store.registry.serving_table("user_orders")
    rows = offline_rows(store, table)
    return sorted((r["user_id"], r["event_timestamp"], r["amount_sum"]) for r in rows)


DAILY = [(1, _at(0, day=2), 15.0), (2, _at(0, day=2), 7.0)]
HOURLY = [(1, _at(2), 10.0), (1, _at(6), 5.0), (2, _at(4), 7.0)]


def test_a_window_change_is_built_as_a_new_version_and_switched_to_atomically(
    project: Path,
) -> None:
    with headwater.FeatureStore(project) as store:
        store.apply()
        store.run()
        store.materialize()
        assert served_rows(store) == DAILY
        assert online(store) == [15.0, 7.0]

    define(project, "1h")
    with headwater.FeatureStore(project) as store:
        report = store.apply()
        changes = report.fields[("feature_view", "user_orders")]
        assert [(c.path, c.changes_rows) for c in changes] == [("window.size_ms", True)]
        assert [(v.action, v.version, v.serving) for v in report.diff.versions] == [
            ("building", 2, 1)
        ]
        # Until the new version is built, the old one serves everything.
        assert training(store) == [(1, 15.0), (2, 7.0)]
        store.materialize()
        assert online(store) == [15.0, 7.0]

        store.run(full_refresh=True)
        assert [(v.version, v.status) for v in store.table_versions("user_orders")] == [
            (1, "retired"),
            (2, "active"),
        ]
        # Only the new version's rows: the old daily row (later than every hourly one) is gone.
        assert served_rows(store) == HOURLY
        assert training(store) == [(1, 5.0), (2, 7.0)]
        # Online still holds version 1 until materialize, which then reloads from version 2.
        assert online(store) == [15.0, 7.0]
        store.materialize()
        assert online(store) == [5.0, 7.0]
        store.materialize(full_refresh=True)  # as the issue did it: the same values
        assert online(store) == [5.0, 7.0]
        # A past training set is reproduced from the kept version.
        assert training(store, versions={"user_orders": 1}) == [(1, 15.0), (2, 7.0)]

        # A second run writes to version 2 (the switch is done), without a new version.
        store.run()
        assert served_rows(store) == HOURLY
        assert len(store.table_versions("user_orders")) == 2

        assert [(v.view, v.version) for v in store.prune(dry_run=True)] == [("user_orders", 1)]
        assert store.offline.dataset("user_orders") is not None  # a dry run removes nothing
        assert [v.version for v in store.prune()] == [1]
        assert store.offline.dataset("user_orders") is None
        assert [v.version for v in store.table_versions("user_orders")] == [2]
        with pytest.raises(NotFound, match="no table version 1"):
            training(store, versions={"user_orders": 1})
        assert training(store) == [(1, 5.0), (2, 7.0)]
        assert store.prune() == []


def test_a_ttl_change_does_not_change_rows_and_makes_no_version(tmp_path: Path) -> None:
    project = make_project(
        tmp_path, {"type": "sqlite", "path": "registry.db"}, {"type": "sqlite", "path": "o.db"}
    )
    with headwater.FeatureStore(project) as store:
        store.apply()
        store.run()
    define(project, "1d", extra='\n    ttl="400d",\n    description="orders per day",')
    with headwater.FeatureStore(project) as store:
        report = store.apply()
        changes = report.fields[("feature_view", "user_orders")]
        assert sorted((c.path, c.changes_rows) for c in changes) == [
            ("description", False),
            ("ttl_ms", False),
        ]
        assert [(v.action, v.version) for v in report.diff.versions] == [("same", 1)]
        assert report.diff.changed  # the definition itself has a new version
        store.run()
        assert [(v.version, v.status) for v in store.table_versions("user_orders")] == [
            (1, "active")
        ]
        assert served_rows(store) == DAILY


def test_a_backfill_while_a_version_waits_builds_it_whole(tmp_path: Path) -> None:
    project = make_project(
        tmp_path, {"type": "sqlite", "path": "registry.db"}, {"type": "sqlite", "path": "o.db"}
    )
    with headwater.FeatureStore(project) as store:
        store.apply()
        store.run()
    define(project, "1h")
    with headwater.FeatureStore(project) as store:
        store.apply()
        # A period of one hour: the build computes them all (a period of the old definition
        # beside rows of the new one would mix the two).
        (result,) = store.backfill(start=_at(1), end=_at(2))
        assert result.details["built"] and result.details["table_version"] == 2
        assert served_rows(store) == HOURLY
        (again,) = store.backfill(start=_at(1), end=_at(2))  # built: a period of version 2
        assert not again.details["built"] and (again.inserted, again.updated) == (0, 0)
        assert served_rows(store) == HOURLY


@pytest.mark.parametrize("offline", ["delta", "parquet"])
def test_a_plain_run_builds_the_new_version_and_a_full_refresh_replaces(
    tmp_path: Path, offline: str
) -> None:
    project = make_project(
        tmp_path,
        {"type": "sqlite", "path": "registry.db"},
        {"type": "sqlite", "path": "o.db"},
        offline,
    )
    with headwater.FeatureStore(project) as store:
        store.apply()
        store.run()
    # A change reverted before it was built leaves the old version serving.
    define(project, "1h")
    with headwater.FeatureStore(project) as store:
        assert [v.action for v in store.apply().diff.versions] == ["building"]
    define(project, "1d")
    with headwater.FeatureStore(project) as store:
        assert [v.action for v in store.apply().diff.versions] == ["abandoned"]
        assert served_rows(store) == DAILY
    define(project, "1h")
    with headwater.FeatureStore(project) as store:
        assert [(v.action, v.version) for v in store.apply().diff.versions] == [("building", 3)]
        store.run()  # no --full-refresh: the build reads the source in full all the same
        assert served_rows(store) == HOURLY
        # The source lost user 2's order: a full refresh replaces, nothing old stays beside.
        orders = pa.table(
            {
                "user_id": pa.array([1], pa.int64()),
                "ts": pa.array([_at(1)], TS),
                "amount": pa.array([10.0]),
            }
        )
        write_parquet(project, "data/orders.parquet", orders)
        store.run(full_refresh=True)
        assert served_rows(store) == [(1, _at(2), 10.0)]
        statuses = [(v.version, v.status) for v in store.table_versions("user_orders")]
        assert statuses == [(1, "retired"), (2, "abandoned"), (3, "retired"), (4, "active")]
        assert [v.version for v in store.prune(keep=1)] == [1, 2]
        assert [v.version for v in store.table_versions("user_orders")] == [3, 4]
        assert store.offline.dataset("user_orders") is None
        assert store.offline.dataset("user_orders__v3") is not None


def headwater_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
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


def test_apply_prints_each_changed_field_old_to_new_and_whether_it_changes_rows(
    tmp_path: Path,
) -> None:
    project = make_project(
        tmp_path, {"type": "sqlite", "path": "registry.db"}, {"type": "sqlite", "path": "o.db"}
    )
    assert headwater_cli(project, "apply").returncode == 0
    assert headwater_cli(project, "run").returncode == 0
    define(project, "1h", extra='\n    ttl="2d",')
    result = headwater_cli(project, "apply", "--dry-run")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "window.size_ms: 86400000 → 3600000  [rows]" in out
    assert "ttl_ms: (none) → 172800000  [no row change]" in out
    assert "new table version 2" in out and "version 1 serves until then" in out
    assert "(dry run)" in out
    # A dry run recorded nothing: the real apply reports the same version.
    out = headwater_cli(project, "apply").stdout
    assert "new table version 2" in out
    assert headwater_cli(project, "run").returncode == 0
    listed = json.loads(headwater_cli(project, "versions", "user_orders", "--json").stdout)
    assert [(v["version"], v["status"], v["table"]) for v in listed] == [
        (1, "retired", "user_orders"),
        (2, "active", "user_orders__v2"),
    ]
    entities = project / "entities.parquet"
    write_parquet(
        project,
        "entities.parquet",
        pa.table(
            {"user_id": pa.array([1], pa.int64()), "event_timestamp": pa.array([_at(1, 2)], TS)}
        ),
    )
    for pin, expected in (([], 5.0), (["--table-version", "user_orders=1"], 15.0)):
        result = headwater_cli(
            project, "history", "--entities", str(entities), "-f", "user_orders:amount_sum",
            "--output", "out.parquet", *pin,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert pq.read_table(project / "out.parquet")["amount_sum"].to_pylist() == [expected]
    bad = headwater_cli(
        project, "history", "--entities", str(entities), "-f", "user_orders:amount_sum",
        "--output", "out.parquet", "--table-version", "user_orders=v1",
    )  # fmt: skip
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "--table-version 'user_orders=v1' is not VIEW=N" in bad.stderr
    out = headwater_cli(project, "prune", "--dry-run").stdout
    assert "would remove user_orders table version 1 (retired, table user_orders)" in out
    out = headwater_cli(project, "prune").stdout
    assert "removed user_orders table version 1" in out
    assert not (project / "data" / "offline" / "user_orders").exists()
    assert (project / "data" / "offline" / "user_orders__v2").exists()
    assert "nothing to prune" in headwater_cli(project, "prune").stdout


def test_table_versions_show_in_run_views_describe_and_status(tmp_path: Path) -> None:
    project = make_project(
        tmp_path, {"type": "sqlite", "path": "registry.db"}, {"type": "sqlite", "path": "o.db"}
    )
    assert headwater_cli(project, "apply").returncode == 0
    out = headwater_cli(project, "run").stdout
    assert "✓ user_orders: " in out and "table version" not in out  # version 1 is written
    define(project, "1h")
    assert headwater_cli(project, "apply").returncode == 0

    def shown() -> tuple[Any, Any, Any, Any]:
        views = json.loads(headwater_cli(project, "views", "--json").stdout)
        described = json.loads(headwater_cli(project, "describe", "user_orders", "--json").stdout)
        status = json.loads(headwater_cli(project, "status", "--json").stdout)
        table = headwater_cli(project, "describe", "user_orders").stdout
        return views[0], described, status["views"][0], table

    # Version 2 waits to be built: version 1 serves.
    for document in shown()[:3]:
        assert document["table_version"] == 1
        assert document["building_table_version"] == 2
    assert "1 (2 building)" in shown()[3]
    assert "1 (2 building)" in headwater_cli(project, "views").stdout
    assert "1 (2 building)" in headwater_cli(project, "status").stdout
    result = headwater_cli(project, "run")
    assert result.returncode == 0, result.stderr
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("✓ user_orders: ")]
    assert "built table version 2 (now serving)" in line
    for document in shown()[:3]:
        assert document["table_version"] == 2
        assert document["building_table_version"] is None
    table = shown()[3]
    assert "table version" in table and "(2 building)" not in table
    # The next run writes version 2 in place: nothing built.
    assert "table version" not in headwater_cli(project, "run").stdout


INCREMENTAL = """
from headwater import Entity, FeatureView, SqliteSource, Sum, Tumbling

user = Entity("user", join_keys=["user_id"])
orders = SqliteSource(
    "orders",
    path={db!r},
    table="orders",
    timestamp_field="created_at",
    cursor_field="updated_at",
    primary_key=["order_id"],
)
user_sums = FeatureView(
    "user_sums",
    entity=user,
    source=orders,
    window=Tumbling("{window}"),
    features=[Sum("amount", name="amount_sum")],
)
"""


def test_an_incremental_aggregation_builds_from_a_full_read_then_goes_on_from_the_cursor(
    tmp_path: Path,
) -> None:
    import sqlite3

    db = tmp_path / "shop.db"

    def add(*rows: tuple[Any, ...]) -> None:
        conn = sqlite3.connect(db)
        with conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS orders (order_id INTEGER PRIMARY KEY, user_id INTEGER,"
                " amount REAL, created_at TIMESTAMP, updated_at TEXT)"
            )
            conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", rows)
        conn.close()

    def ts(hour: int) -> str:
        return f"2024-01-01 {hour:02d}:00:00.000000"

    add((1, 1, 10.0, ts(1), "c1"), (2, 1, 5.0, ts(13), "c2"))
    project = tmp_path / "project"
    project.mkdir()
    (project / "headwater.yaml").write_text("project: t\n")
    (project / "defs.py").write_text(INCREMENTAL.format(db=str(db), window="1d"))

    def sums(store: headwater.FeatureStore) -> list[tuple[Any, ...]]:
        rows = offline_rows(store, store.registry.serving_table("user_sums"))
        return sorted(
            (r["event_timestamp"].hour, r["event_timestamp"].day, r["amount_sum"]) for r in rows
        )

    with headwater.FeatureStore(project) as store:
        store.apply()
        store.run()
        assert sums(store) == [(0, 2, 15.0)]
    (project / "defs.py").write_text(INCREMENTAL.format(db=str(db), window="12h"))
    add((3, 1, 1.0, ts(14), "c3"))
    with headwater.FeatureStore(project) as store:
        assert [v.action for v in store.apply().diff.versions] == ["building"]
        assert sums(store) == [(0, 2, 15.0)]  # not built yet: version 1 as it was
        store.run()  # the build reads every row, not only those past the cursor
        assert sums(store) == [(0, 2, 6.0), (12, 1, 10.0)]
        assert store.registry.get_checkpoint("cursor:user_sums") is not None
        add((4, 1, 2.0, ts(2), "c4"))
        store.run()  # incremental again, on version 2 and its own landing table
        assert sums(store) == [(0, 2, 6.0), (12, 1, 12.0)]
        assert store.offline.read_table("_landing/user_sums__v2") is not None
