"""PostgresSink against the real server: table creation and types, the three modes, reruns,
schema evolution, clear errors, and a view run end to end through FeatureStore."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
import yaml

import headwater
from headwater import Count, Entity, FeatureView, FileSource, PostgresSink, Sum
from headwater.config.models import ProjectConfig
from headwater.connectors.postgres.sink import PostgresSinkWriter
from headwater.connectors.sinks import deliver
from headwater.connectors.sinks.base import SinkError
from headwater.errors import ConfigError
from tests.helpers import TS, offline_rows, write_parquet

pytestmark = pytest.mark.postgres

T0 = datetime(2024, 3, 1, tzinfo=UTC)
USER = Entity("user", join_keys=["user_id"])
EVENTS = FileSource("events", path="data/events.parquet", timestamp_field="ts")


def make_view(mode: Any = "upsert", *, table: str = "analytics.user_stats", **sink: Any) -> Any:
    return FeatureView(
        "user_stats",
        entity=USER,
        source=EVENTS,
        features={"amount": "amount", "label": "label"},
        sinks=[PostgresSink(connection="warehouse", table=table, mode=mode, **sink)],
    )


def project(dsn: str) -> ProjectConfig:
    return ProjectConfig.model_validate(
        {"project": "t", "connections": {"warehouse": {"type": "postgres", "dsn": dsn}}}
    )


def sql(dsn: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def rows(users: list[int], amounts: list[float | None], *, hour: int = 0) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "event_timestamp": pa.array([T0 + timedelta(hours=hour)] * len(users), TS),
            "amount": pa.array(amounts, pa.float64()),
            "label": pa.array([f"u{u}" for u in users], pa.string()),
        }
    )


@pytest.fixture
def load(pg_dsn: str) -> Iterator[Callable[..., int]]:
    """``load(table, view=..., seq=...)``: one sink write through a fresh writer."""
    writers: list[PostgresSinkWriter] = []

    def run(table: pa.Table, view: Any = None, *, seq: int = 1) -> int:
        view = view or make_view()
        writer = PostgresSinkWriter(view.sinks[0], view, project(pg_dsn))
        writers.append(writer)
        stats = writer.write(table.schema, table.to_batches(), seq=seq, run_id=f"run{seq}")
        return stats.rows

    yield run
    for writer in writers:
        writer.close()


def content(dsn: str, table: str = "analytics.user_stats") -> list[tuple[Any, ...]]:
    return sql(dsn, f"SELECT user_id, event_timestamp, amount, label FROM {table} ORDER BY 1, 2")


# ---------------------------------------------------------------------- creation and types
def test_a_missing_table_is_created_with_postgres_types_and_a_primary_key(
    pg_dsn: str, load: Callable[..., int]
) -> None:
    table = pa.table(
        {
            "user_id": pa.array([1, 2], pa.int64()),
            "event_timestamp": pa.array([T0, T0], TS),
            "small": pa.array([1, None], pa.int16()),
            "medium": pa.array([1, None], pa.int32()),
            "ratio": pa.array([0.5, None], pa.float32()),
            "amount": pa.array([1.25, None], pa.float64()),
            "price": pa.array([Decimal("12.345"), None], pa.decimal128(12, 3)),
            "label": pa.array(["a", None], pa.string()),
            "flag": pa.array([True, None], pa.bool_()),
            "day": pa.array([date(2024, 3, 1), None], pa.date32()),
            "local": pa.array([datetime(2024, 3, 1, 12), None], pa.timestamp("us")),
            "blob": pa.array([b"\x00\xff", None], pa.binary()),
            "tags": pa.array([["x", "y"], None], pa.list_(pa.string())),
            "counts": pa.array([[1, 2], []], pa.list_(pa.int64())),
            "meta": pa.array([{"k": 1, "v": "w"}, None]),
            "kind": pa.array(["a", "b"]).dictionary_encode(),
        }
    )
    assert load(table) == 2
    types = sql(
        pg_dsn,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = 'analytics.user_stats'::regclass AND a.attnum > 0 ORDER BY a.attnum",
    )
    assert types == [
        ("user_id", "bigint"),
        ("event_timestamp", "timestamp with time zone"),
        ("small", "smallint"),
        ("medium", "integer"),
        ("ratio", "real"),
        ("amount", "double precision"),
        ("price", "numeric(12,3)"),
        ("label", "text"),
        ("flag", "boolean"),
        ("day", "date"),
        ("local", "timestamp without time zone"),
        ("blob", "bytea"),
        ("tags", "text[]"),
        ("counts", "bigint[]"),
        ("meta", "jsonb"),
        ("kind", "text"),
    ]
    key = sql(
        pg_dsn,
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'analytics.user_stats'::regclass "
        "AND i.indisprimary ORDER BY a.attnum",
    )
    assert key == [("user_id",), ("event_timestamp",)]
    got = sql(pg_dsn, "SELECT * FROM analytics.user_stats ORDER BY user_id")
    assert got[0] == (
        1,
        T0,
        1,
        1,
        0.5,
        1.25,
        Decimal("12.345"),
        "a",
        True,
        date(2024, 3, 1),
        datetime(2024, 3, 1, 12),
        b"\x00\xff",
        ["x", "y"],
        [1, 2],
        {"k": 1, "v": "w"},
        "a",
    )
    assert got[1] == (2, T0, *([None] * 11), [], None, "b")


def test_an_existing_table_with_other_types_receives_cast_values(
    pg_dsn: str, load: Callable[..., int]
) -> None:
    sql(pg_dsn, "CREATE SCHEMA analytics")
    sql(
        pg_dsn,
        "CREATE TABLE analytics.user_stats (user_id integer, event_timestamp timestamptz, "
        "amount numeric(10, 2), label jsonb, extra text DEFAULT 'kept', "
        "PRIMARY KEY (user_id, event_timestamp))",
    )
    table = rows([1], [2.5]).set_column(3, "label", pa.array(['{"a": 1}']))
    load(table)
    assert sql(pg_dsn, "SELECT user_id, amount, label, extra FROM analytics.user_stats") == [
        (1, Decimal("2.50"), {"a": 1}, "kept")
    ]


def test_a_table_name_without_a_schema_lands_on_the_search_path(
    pg_dsn: str, load: Callable[..., int]
) -> None:
    load(rows([1], [1.0]), make_view(table="user_stats"))
    assert content(pg_dsn, "public.user_stats") == [(1, T0, 1.0, "u1")]
    assert sql(pg_dsn, "SELECT last_seq FROM public.headwater_sink_state") == [(1,)]


# ---------------------------------------------------------------------- modes
def test_upsert_inserts_new_keys_and_updates_existing_ones(
    pg_dsn: str, load: Callable[..., int]
) -> None:
    load(rows([1, 2], [1.0, 2.0]), seq=1)
    load(rows([2, 3], [20.0, 3.0]), seq=2)
    assert content(pg_dsn) == [(1, T0, 1.0, "u1"), (2, T0, 20.0, "u2"), (3, T0, 3.0, "u3")]
    state = sql(
        pg_dsn,
        "SELECT target_table, view_name, last_seq, run_id FROM analytics.headwater_sink_state",
    )
    assert state == [("analytics.user_stats", "user_stats", 2, "run2")]


def test_an_upsert_rerun_changes_nothing(pg_dsn: str, load: Callable[..., int]) -> None:
    batch = rows([1, 2], [1.0, None])
    load(batch, seq=1)
    versions = sql(pg_dsn, "SELECT user_id, xmin::text FROM analytics.user_stats ORDER BY 1")
    load(batch, seq=2)
    assert content(pg_dsn) == [(1, T0, 1.0, "u1"), (2, T0, None, "u2")]
    # Unchanged rows are not even rewritten (no new row versions).
    assert sql(pg_dsn, "SELECT user_id, xmin::text FROM analytics.user_stats ORDER BY 1") == (
        versions
    )


def test_append_keeps_every_version(pg_dsn: str, load: Callable[..., int]) -> None:
    view = make_view("append")
    load(rows([1, 2], [1.0, 2.0]), view, seq=1)
    load(rows([2], [20.0]), view, seq=2)
    assert content(pg_dsn) == [(1, T0, 1.0, "u1"), (2, T0, 2.0, "u2"), (2, T0, 20.0, "u2")]
    assert not sql(
        pg_dsn,
        "SELECT 1 FROM pg_index WHERE indrelid = 'analytics.user_stats'::regclass",
    ), "an append table has no key: the same key arrives again when a value changes"


def test_replace_rewrites_the_table(pg_dsn: str, load: Callable[..., int]) -> None:
    view = make_view("replace")
    load(rows([1, 2, 3], [1.0, 2.0, 3.0]), view, seq=1)
    load(rows([2], [20.0]), view, seq=2)
    assert content(pg_dsn) == [(2, T0, 20.0, "u2")]
    load(rows([], []), view, seq=3)
    assert content(pg_dsn) == []


# ---------------------------------------------------------------------- schema evolution
def test_a_new_column_is_added_to_the_table(pg_dsn: str, load: Callable[..., int]) -> None:
    load(rows([1], [1.0]).drop_columns(["label"]), seq=1)
    load(rows([2], [2.0]), seq=2)
    assert content(pg_dsn) == [(1, T0, 1.0, None), (2, T0, 2.0, "u2")]


def test_without_evolve_missing_columns_are_named_and_nothing_is_written(
    pg_dsn: str, load: Callable[..., int]
) -> None:
    view = make_view(evolve=False)
    load(rows([1], [1.0]).drop_columns(["label", "amount"]), view, seq=1)
    with pytest.raises(SinkError, match=r"lacks the column\(s\) amount, label") as info:
        load(rows([2], [2.0]), view, seq=2)
    assert "evolve=True" in str(info.value)
    assert sql(pg_dsn, "SELECT user_id FROM analytics.user_stats") == [(1,)]
    assert sql(pg_dsn, "SELECT last_seq FROM analytics.headwater_sink_state") == [(1,)]


# ---------------------------------------------------------------------- errors
def test_create_false_needs_the_table(load: Callable[..., int]) -> None:
    with pytest.raises(SinkError, match=r"sink table 'analytics.user_stats' does not exist"):
        load(rows([1], [1.0]), make_view(create=False))


def test_upsert_into_a_table_without_a_key_says_how_to_fix_it(
    pg_dsn: str, load: Callable[..., int]
) -> None:
    sql(pg_dsn, "CREATE SCHEMA analytics")
    sql(
        pg_dsn,
        "CREATE TABLE analytics.user_stats (user_id bigint, event_timestamp timestamptz, "
        "amount float8, label text)",
    )
    with pytest.raises(SinkError, match="PostgreSQL rejected the load") as info:
        load(rows([1], [1.0]))
    assert "primary key or unique index" in str(info.value)


def test_an_unsupported_type_names_the_column(load: Callable[..., int]) -> None:
    table = rows([1], [1.0]).append_column("span", pa.array([None], pa.month_day_nano_interval()))
    with pytest.raises(SinkError, match=r"column 'span': Arrow type month_day_nano_interval"):
        load(table)


def test_the_connection_must_exist_and_be_postgres(pg_dsn: str) -> None:
    view = make_view()
    other = ProjectConfig.model_validate(
        {"project": "t", "connections": {"warehouse": {"type": "kafka", "bootstrap_servers": "x"}}}
    )
    with pytest.raises(ConfigError, match=r"connection 'warehouse' is of type 'kafka'"):
        PostgresSinkWriter(view.sinks[0], view, other)
    with pytest.raises(ConfigError, match=r"connection 'warehouse' is not defined"):
        PostgresSinkWriter(view.sinks[0], view, ProjectConfig(project="t"))


def test_last_seq_reads_the_state_and_forgets_it_when_the_table_is_dropped(
    pg_dsn: str, load: Callable[..., int]
) -> None:
    view = make_view()
    writer = PostgresSinkWriter(view.sinks[0], view, project(pg_dsn))
    try:
        assert writer.last_seq() is None
        load(rows([1], [1.0]), seq=7)
        assert writer.last_seq() == 7
        sql(pg_dsn, "DROP TABLE analytics.user_stats")
        assert writer.last_seq() is None
    finally:
        writer.close()


# ---------------------------------------------------------------------- end to end
DEFINITIONS = """
from headwater import Count, Entity, FeatureView, FileSource, PostgresSink, Sum, Tumbling

user = Entity("user", join_keys=["user_id"])
events = FileSource("events", path="data/events.parquet", timestamp_field="ts")

user_daily = FeatureView(
    "user_daily",
    entity=user,
    source=events,
    window=Tumbling("1d"),
    features=[Sum("amount", name="amount_sum"), Count(name="events")],
    sinks=[
        PostgresSink(connection="warehouse", table="analytics.user_daily"),
        PostgresSink(connection="warehouse", table="analytics.user_daily_log", mode="append"),
        PostgresSink(connection="warehouse", table="analytics.user_daily_copy", mode="replace"),
    ],
)
"""


def events(amounts: dict[int, list[float]]) -> pa.Table:
    users, times, values = [], [], []
    for user, series in amounts.items():
        for i, amount in enumerate(series):
            users.append(user)
            times.append(T0 + timedelta(hours=9 * i))
            values.append(amount)
    return pa.table(
        {"user_id": pa.array(users, pa.int64()), "ts": pa.array(times, TS), "amount": values}
    )


def make_store(root: Path, dsn: str, data: pa.Table) -> headwater.FeatureStore:
    config = {"project": "t", "connections": {"warehouse": {"type": "postgres", "dsn": dsn}}}
    (root / "headwater.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "defs.py").write_text(textwrap.dedent(DEFINITIONS).lstrip())
    write_parquet(root, "data/events.parquet", data)
    return headwater.FeatureStore(root)


def warehouse(dsn: str, table: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            f"SELECT user_id, event_timestamp, amount_sum, events FROM analytics.{table}"
            " ORDER BY user_id, event_timestamp, amount_sum"
        )
        return cur.fetchall()


def ordered(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(found, key=lambda r: (r["user_id"], r["event_timestamp"], r["amount_sum"]))


def test_a_view_with_postgres_sinks_lands_the_offline_rows(tmp_path: Path, pg_dsn: str) -> None:
    store = make_store(tmp_path, pg_dsn, events({1: [1.0, 2.0, 3.0, 4.0], 2: [10.0]}))
    store.apply()
    store.run()
    expected = ordered(offline_rows(store, "user_daily"))
    assert len(expected) == 3
    for table in ("user_daily", "user_daily_log", "user_daily_copy"):
        assert warehouse(pg_dsn, table) == expected, table

    # A new event changes one window: upsert and replace follow, append logs the new version.
    write_parquet(tmp_path, "data/events.parquet", events({1: [1.0, 2.0, 3.0, 5.0], 2: [10.0]}))
    store.run()
    expected_after = ordered(offline_rows(store, "user_daily"))
    assert expected_after != expected
    assert warehouse(pg_dsn, "user_daily") == expected_after
    assert warehouse(pg_dsn, "user_daily_copy") == expected_after
    changed = [row for row in expected_after if row not in expected]
    log = ordered(expected + changed)

    assert warehouse(pg_dsn, "user_daily_log") == log

    # Nothing new: nothing is sent again, even in append mode.
    store.run()
    assert warehouse(pg_dsn, "user_daily_log") == log
    assert warehouse(pg_dsn, "user_daily") == expected_after
    store.close()


def test_a_failed_sink_load_fails_the_run_and_the_rerun_sends_the_rows(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(tmp_path, pg_dsn, events({1: [1.0, 2.0], 2: [10.0]}))
    store.apply()
    original = PostgresSinkWriter._apply
    calls: list[str] = []

    def fail_the_log(self: PostgresSinkWriter, schema: pa.Schema) -> None:
        calls.append(self.sink.table)
        if self.sink.table == "analytics.user_daily_log" and calls.count(self.sink.table) == 1:
            raise psycopg.errors.DiskFull("could not extend file")
        original(self, schema)

    monkeypatch.setattr(PostgresSinkWriter, "_apply", fail_the_log)
    with pytest.raises(SinkError, match="could not extend file"):
        store.run()
    assert [r.status for r in store.registry.runs(view="user_daily")] == ["failed"]
    expected = ordered(offline_rows(store, "user_daily"))
    assert warehouse(pg_dsn, "user_daily") == expected  # loaded before the failure
    # The failed load is rolled back whole: table creation, rows and mark.
    assert sql(pg_dsn, "SELECT to_regclass('analytics.user_daily_log')::text") == [(None,)]

    # The offline write of the rerun changes nothing; the sinks still get what they lack.
    store.run()
    for table in ("user_daily", "user_daily_log", "user_daily_copy"):
        assert warehouse(pg_dsn, table) == expected, table
    store.close()


def test_deliver_without_offline_rows_does_nothing(tmp_path: Path, pg_dsn: str) -> None:
    class NoRows:
        def dataset(self, view_name: str) -> None:
            return None

    view = FeatureView(
        "v",
        entity=USER,
        source=EVENTS,
        features=[Count(), Sum("amount")],
        sinks=[PostgresSink(connection="warehouse", table="analytics.v")],
    )
    assert deliver(view, NoRows(), project(pg_dsn), seq=1, run_id="r") == []  # type: ignore[arg-type]  # a stand-in store
    assert sql(pg_dsn, "SELECT to_regclass('analytics.v')::text") == [(None,)]
