"""The registry on both backends: definitions, schemas, runs, checkpoints, sequence."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from headwater.config import ProjectConfig, parse_config
from headwater.errors import (
    ConfigError,
    ConnectionFailed,
    DefinitionError,
    MissingDependency,
    NotFound,
    StaleCheckpoint,
)
from headwater.stores.registry import SCHEMA_VERSION, ApplyDiff, Registry, StreamPartition

OpenRegistry = Callable[[], Registry]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> ProjectConfig:
    if request.param == "sqlite":
        registry: dict[str, Any] = {"type": "sqlite", "path": "state/registry.db"}
    else:
        dsn = request.getfixturevalue("pg_dsn")
        # A schema name that needs quoting.
        registry = {"type": "postgres", "dsn": dsn, "schema": "Team-Registry"}
    return parse_config({"project": "t", "registry": registry}, tmp_path)


@pytest.fixture
def open_registry(project: ProjectConfig) -> Iterator[OpenRegistry]:
    """Opens registries on the same backend; all are closed after the test."""
    opened: list[Registry] = []

    def make() -> Registry:
        registry = Registry.open(project)
        opened.append(registry)
        return registry

    yield make
    for registry in opened:
        registry.close()


@pytest.fixture
def reg(open_registry: OpenRegistry) -> Registry:
    return open_registry()


def fv(name: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "feature_view", "name": name, "entity": "user", **extra}


def ent(name: str) -> dict[str, Any]:
    return {"kind": "entity", "name": name, "join_keys": ["user_id"]}


# ------------------------------------------------------------------ definitions
def test_apply_reports_added_changed_unchanged_removed(reg: Registry) -> None:
    first = reg.apply([ent("user"), fv("a", ttl=1), fv("b")])
    assert first == ApplyDiff(
        added=[("entity", "user"), ("feature_view", "a"), ("feature_view", "b")],
        changed=[],
        unchanged=[],
        removed=[],
    )
    assert first.changes()

    second = reg.apply([ent("user"), fv("a", ttl=2), fv("c")])
    assert second.added == [("feature_view", "c")]
    assert second.changed == [("feature_view", "a", 2)]
    assert second.unchanged == [("entity", "user")]
    assert second.removed == [("feature_view", "b")]

    # Key order does not matter: the comparison is on canonical JSON.
    same = {"ttl": 2, "entity": "user", "name": "a", "kind": "feature_view"}
    third = reg.apply([same, ent("user"), fv("c")])
    assert not third.changes()
    assert third.unchanged == [("entity", "user"), ("feature_view", "a"), ("feature_view", "c")]

    current = {(d.kind, d.name): d for d in reg.definitions()}
    assert set(current) == {("entity", "user"), ("feature_view", "a"), ("feature_view", "c")}
    assert current[("feature_view", "a")].version == 2
    assert current[("feature_view", "a")].spec == fv("a", ttl=2)
    assert current[("entity", "user")].version == 1
    assert current[("entity", "user")].applied_at.tzinfo is not None
    assert [d.name for d in reg.definitions("feature_view")] == ["a", "c"]
    assert reg.definition("feature_view", "b") is None
    assert reg.definition("feature_view", "missing") is None
    assert reg.definition("feature_view", "c") == current[("feature_view", "c")]


def test_plan_writes_nothing(reg: Registry) -> None:
    reg.apply([fv("a", ttl=1), fv("b")])
    before = reg.definitions()

    diff = reg.plan([fv("a", ttl=5), fv("new")])
    assert diff.added == [("feature_view", "new")]
    assert diff.changed == [("feature_view", "a", 2)]
    assert diff.removed == [("feature_view", "b")]

    assert reg.definitions() == before
    assert len(reg.history("feature_view", "a")) == 1
    assert reg.plan([fv("a", ttl=1), fv("b")]) == ApplyDiff(
        [], [], [("feature_view", "a"), ("feature_view", "b")], []
    )


def test_history_keeps_every_version_and_removals(reg: Registry) -> None:
    reg.apply([fv("a", ttl=1)])
    reg.apply([fv("a", ttl=2)])
    reg.apply([fv("a", ttl=2)])
    reg.apply([])  # removed
    readded = reg.apply([fv("a", ttl=3)])
    assert readded.added == [("feature_view", "a")]

    history = reg.history("feature_view", "a")
    assert [h.version for h in history] == [1, 2, 3]
    assert [h.spec["ttl"] for h in history] == [1, 2, 3]
    assert history[0].applied_at <= history[1].applied_at <= history[2].applied_at
    current = reg.definition("feature_view", "a")
    assert current is not None and current.version == 3
    assert reg.history("feature_view", "never") == []


def test_removed_then_readded_unchanged_spec_is_added(reg: Registry) -> None:
    reg.apply([fv("a")])
    assert reg.apply([]).removed == [("feature_view", "a")]
    assert reg.definitions() == []
    assert reg.apply([]) == ApplyDiff([], [], [], [])
    assert reg.apply([fv("a")]).added == [("feature_view", "a")]
    assert [h.version for h in reg.history("feature_view", "a")] == [1, 2]


@pytest.mark.parametrize(
    "specs",
    [
        [{"name": "no_kind"}],
        [{"kind": "feature_view"}],
        [{"kind": "feature_view", "name": ""}],
        [fv("a"), fv("a", ttl=1)],
        [fv("a", when=object())],
        [fv("a", ttl=float("nan"))],
    ],
)
def test_invalid_specs_are_rejected_without_writing(
    reg: Registry, specs: list[dict[str, Any]]
) -> None:
    with pytest.raises(DefinitionError):
        reg.apply(specs)
    with pytest.raises(DefinitionError):
        reg.plan(specs)
    assert reg.definitions() == []


# ------------------------------------------------------------------ schemas
def test_schema_round_trip(reg: Registry) -> None:
    schema = pa.schema(
        [
            pa.field("user_id", pa.int64(), nullable=False),
            pa.field("event_timestamp", pa.timestamp("us", tz="UTC")),
            pa.field("local_ts", pa.timestamp("ms", tz="Europe/Berlin")),
            pa.field("amount", pa.decimal128(18, 4)),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("scores", pa.large_list(pa.float64()), metadata={"unit": "pts"}),
            pa.field("nested", pa.struct([("a", pa.int32()), ("b", pa.list_(pa.bool_()))])),
        ],
        metadata={"view": "v"},
    )
    assert reg.schema("v") is None
    reg.set_schema("v", schema)
    loaded = reg.schema("v")
    assert loaded is not None
    assert loaded.equals(schema, check_metadata=True)

    narrower = pa.schema([("user_id", pa.int64())])
    reg.set_schema("v", narrower)
    assert reg.schema("v") == narrower
    assert reg.schema("other") is None


# ------------------------------------------------------------------ runs
def test_run_lifecycle_and_ordering(reg: Registry) -> None:
    first = reg.start_run("v", details={"since": "2024-01-01"})
    running = reg.runs("v")[0]
    assert running.run_id == first
    assert running.status == "running"
    assert running.ended_at is None
    assert running.details == {"since": "2024-01-01"}
    assert running.started_at.tzinfo is not None
    assert running.started_at.utcoffset() == UTC.utcoffset(None)

    reg.finish_run(first, "success", rows_in=10, rows_out=7, details={"files": 2})
    done = reg.runs("v")[0]
    assert (done.status, done.rows_in, done.rows_out, done.error) == ("success", 10, 7, None)
    assert done.details == {"since": "2024-01-01", "files": 2}
    assert done.ended_at is not None and done.ended_at >= done.started_at

    def materialized() -> str:  # one live materialization of a view at a time (its lease)
        run_id = reg.start_run("v", kind="materialize")
        reg.finish_run(run_id, "success")
        return run_id

    ids = [first] + [materialized() for _ in range(3)]
    other = reg.start_run("w", kind="backfill")
    assert len(set(ids)) == 4
    assert [r.run_id for r in reg.runs("v")] == ids[::-1]
    assert [r.run_id for r in reg.runs()] == [other, *ids[::-1]]
    assert [r.run_id for r in reg.runs(limit=2)] == [other, ids[3]]
    assert [r.run_id for r in reg.runs(kind="materialize")] == ids[:0:-1]
    assert [r.run_id for r in reg.runs("w", kind="run")] == []
    assert reg.runs("nothing") == []


def test_finish_run_redacts_error_and_rejects_unknown_ids(reg: Registry) -> None:
    run_id = reg.start_run("v")
    reg.finish_run(run_id, "failed", error="could not reach postgresql://app:hunter2@db:5432/shop")
    failed = reg.runs("v")[0]
    assert failed.status == "failed"
    assert failed.error is not None and "hunter2" not in failed.error
    assert "postgresql://app:***@db" in failed.error

    with pytest.raises(NotFound):
        reg.finish_run("0" * 32, "success")
    with pytest.raises(ValueError):
        reg.finish_run(run_id, "running")
    with pytest.raises(ValueError):
        reg.start_run("v", kind="sprint")


def test_last_run_filters(reg: Registry) -> None:
    assert reg.last_run("v") is None
    ok1 = reg.start_run("v")
    reg.finish_run(ok1, "success")
    ok2 = reg.start_run("v")
    reg.finish_run(ok2, "success")
    bad = reg.start_run("v")
    reg.finish_run(bad, "failed", error="boom")
    mat = reg.start_run("v", kind="materialize")
    reg.finish_run(mat, "success")
    running = reg.start_run("v")
    reg.start_run("w")

    def last(*args: Any, **kwargs: Any) -> str | None:
        record = reg.last_run(*args, **kwargs)
        return None if record is None else record.run_id

    assert last("v") == ok2
    assert last("v", status="failed") == bad
    assert last("v", status=None) == running
    assert last("v", status="running") == running
    assert last("v", kind="materialize") == mat
    assert last("v", kind="backfill") is None
    assert last("w") is None
    assert last("w", status=None) is not None


# ------------------------------------------------------------------ checkpoints
def test_checkpoints(reg: Registry) -> None:
    assert reg.get_checkpoint("cursor:orders") is None
    value = {
        "high_water": "2024-05-01T00:00:00Z",
        "offsets": {"0": 12, "1": [1, 2.5, None]},
        "done": True,
        "note": "ünïcode",
    }
    reg.set_checkpoint("cursor:orders", value)
    assert reg.get_checkpoint("cursor:orders") == value

    reg.set_checkpoint("cursor:orders", [1, {"a": None}])
    assert reg.get_checkpoint("cursor:orders") == [1, {"a": None}]
    reg.set_checkpoint("count", 3)
    assert reg.get_checkpoint("count") == 3

    reg.delete_checkpoint("cursor:orders")
    assert reg.get_checkpoint("cursor:orders") is None
    reg.delete_checkpoint("cursor:orders")  # idempotent
    assert reg.get_checkpoint("count") == 3


# ------------------------------------------------------------------ sequence
def test_next_seq_strictly_increasing(reg: Registry) -> None:
    values = [reg.next_seq() for _ in range(5)]
    assert values == sorted(values)
    assert len(set(values)) == 5
    assert values[0] >= 1


def test_next_seq_concurrent_registries_never_share_a_number(
    reg: Registry, open_registry: OpenRegistry
) -> None:
    start = reg.next_seq()

    def worker(_: int) -> list[int]:
        registry = open_registry()
        return [registry.next_seq() for _ in range(50)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(worker, range(4)))

    for values in results:
        assert values == sorted(set(values))
    flat = [v for values in results for v in values]
    assert len(set(flat)) == 200
    assert min(flat) > start
    assert reg.next_seq() > max(flat)


def test_shared_instance_is_thread_safe(reg: Registry) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        values = list(pool.map(lambda _: reg.next_seq(), range(40)))
    assert len(set(values)) == 40


# ------------------------------------------------------------------ persistence
def test_reopening_keeps_everything(open_registry: OpenRegistry) -> None:
    schema = pa.schema([("x", pa.decimal128(10, 2))])
    with open_registry() as reg:
        reg.apply([ent("user"), fv("a", ttl=1)])
        reg.apply([ent("user"), fv("a", ttl=2)])
        reg.set_schema("a", schema)
        run_id = reg.start_run("a")
        reg.finish_run(run_id, "success", rows_out=3)
        reg.set_checkpoint("cp", {"k": [1, 2]})
        seq = reg.next_seq()

    again = open_registry()
    assert [(d.kind, d.name, d.version) for d in again.definitions()] == [
        ("entity", "user", 1),
        ("feature_view", "a", 2),
    ]
    assert len(again.history("feature_view", "a")) == 2
    assert again.schema("a") == schema
    last = again.last_run("a")
    assert last is not None and last.run_id == run_id and last.rows_out == 3
    assert again.get_checkpoint("cp") == {"k": [1, 2]}
    assert again.next_seq() == seq + 1
    assert not again.plan([ent("user"), fv("a", ttl=2)]).changes()


def test_sqlite_file_is_project_relative_and_versioned(tmp_path: Path) -> None:
    project = parse_config({"project": "t"}, tmp_path)
    with Registry.open(project) as reg:
        reg.set_checkpoint("x", 1)
    path = tmp_path / ".headwater" / "registry.db"
    assert path.is_file()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        version = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        assert version == (str(SCHEMA_VERSION),)
    finally:
        conn.close()


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    project = parse_config({"project": "t"}, tmp_path)
    Registry.open(project).close()
    conn = sqlite3.connect(tmp_path / ".headwater" / "registry.db")
    with conn:
        conn.execute("UPDATE meta SET value = '999' WHERE name = 'schema_version'")
    conn.close()
    with pytest.raises(ConfigError, match="schema version 999"):
        Registry.open(project)


# ------------------------------------------------------------------ errors
def test_unreachable_postgres_raises_connection_failed_without_password(tmp_path: Path) -> None:
    project = parse_config(
        {
            "project": "t",
            "registry": {"type": "postgres", "dsn": "postgresql://nobody:secretpw@127.0.0.1:1/x"},
        },
        tmp_path,
    )
    with pytest.raises(ConnectionFailed) as info:
        Registry.open(project)
    text = str(info.value)
    assert "secretpw" not in text
    assert "postgresql://nobody:***@127.0.0.1:1/x" in text
    assert "fix:" in text
    assert info.value.__cause__ is None or "secretpw" not in str(info.value.__cause__)


def test_missing_psycopg_raises_missing_dependency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    project = parse_config(
        {"project": "t", "registry": {"type": "postgres", "dsn": "postgresql://x@127.0.0.1/x"}},
        tmp_path,
    )
    with pytest.raises(MissingDependency) as info:
        Registry.open(project)
    assert info.value.package == "psycopg"
    assert info.value.extra == "postgres"


# ------------------------------------------------------------------ streaming state
def test_stream_state_is_a_base_and_pieces(reg: Registry) -> None:
    def part(offset: int, **kw: Any) -> StreamPartition:
        return StreamPartition(0, offset, {"closed": kw.pop("closed", None)}, None, **kw)

    reg.commit_stream("v", "t", [(None, part(10, piece=b"a", piece_end=100))])
    reg.commit_stream("v", "t", [(10, part(20, piece=b"b", piece_end=200))])
    reg.commit_stream("v", "t", [(20, part(30, piece=b""))])  # nothing new: no piece
    found = reg.stream_partitions("v", "t", [0])[0]
    assert (found.next_offset, found.state, found.pieces) == (30, None, (b"a", b"b"))
    # Pieces whose windows all ended by the closed-through time go.
    reg.commit_stream("v", "t", [(30, part(40, piece=b"c", piece_end=300, prune_through=200))])
    assert reg.stream_partitions("v", "t", [0])[0].pieces == (b"c",)
    # A whole snapshot replaces the base and every piece.
    reg.commit_stream("v", "t", [(40, StreamPartition(0, 50, {}, b"base"))])
    found = reg.stream_partitions("v", "t", [0])[0]
    assert (found.state, found.pieces) == (b"base", ())
    reg.commit_stream("v", "t", [(50, part(60, piece=b"d", piece_end=400))])
    # A worker that lost the partition saves nothing, pieces included.
    with pytest.raises(StaleCheckpoint):
        reg.commit_stream("v", "t", [(50, part(70, piece=b"e", piece_end=500))])
    found = reg.stream_partitions("v", "t", [0])[0]
    assert (found.next_offset, found.state, found.pieces) == (60, b"base", (b"d",))
    assert reg.reset_stream("v") == 1
    assert reg.stream_partitions("v", "t", [0]) == {}
    reg.commit_stream("v", "t", [(None, part(5, piece=b"f", piece_end=1))])
    assert reg.stream_partitions("v", "t", [0])[0].pieces == (b"f",)
