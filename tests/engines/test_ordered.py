"""The engine's event-time-ordered output (``compute(ordered=True)``): the same rows as the
unordered query, in ``event_timestamp`` order, whatever the duplicates, the key types and the
batch boundaries — a projection's one-row-per-key choice made by the sort and the first row of
each run instead of a window."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.config import parse_config
from headwater.config.machine import memory_bytes
from headwater.definitions import Entity, FeatureView, FileSource, Sum, Tumbling
from headwater.engines.duckdb import DuckDBEngine, one_per_run, sort_memory_limit
from headwater.stores.offline.base import time_ordered
from tests.helpers import TS

T0 = datetime(2024, 3, 1, tzinfo=UTC)
KEY_TYPES = {"int": pa.int64(), "text": pa.string(), "float": pa.float64()}


def projection(key: str, *, created: bool) -> FeatureView:
    entity = Entity("thing", join_keys=[key])
    source = FileSource(
        "events",
        path="events.parquet",
        timestamp_field="ts",
        created_timestamp_field="cts" if created else None,
    )
    return FeatureView("v", entity=entity, source=source, features={"a": "a", "b": "b"})


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DuckDBEngine, Any]]:
    engine = DuckDBEngine(parse_config({"project": "t"}, tmp_path_factory.mktemp("engine")))
    con = engine.connect()
    yield engine, con
    con.close()


def key_value(kind: str, n: int) -> Any:
    if kind == "text":
        return f"k{n}"
    if kind == "float":
        return math.nan if n == 0 else n / 2
    return n


def events(
    kind: str, draws: list[tuple[int | None, int | None, int | None, int, str | None]]
) -> pa.Table:
    rows = [
        {
            "k": None if key is None else key_value(kind, key),
            "ts": None if second is None else T0 + timedelta(seconds=second),
            "cts": None if created is None else T0 + timedelta(seconds=created),
            "a": a,
            "b": b,
        }
        for key, second, created, a, b in draws
    ]
    schema = pa.schema(
        [("k", KEY_TYPES[kind]), ("ts", TS), ("cts", TS), ("a", pa.int64()), ("b", pa.string())]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def rows_of(reader: pa.RecordBatchReader) -> list[dict[str, Any]]:
    return reader.read_all().to_pylist()


def canonical(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows comparable across orders (NaN keys made equal)."""

    def fix(value: Any) -> Any:
        return "NaN" if isinstance(value, float) and math.isnan(value) else value

    return sorted(
        (tuple(fix(v) for v in row.values()) for row in rows), key=lambda r: tuple(map(repr, r))
    )


DRAWS = st.lists(
    st.tuples(
        st.one_of(st.none(), st.integers(0, 3)),
        st.one_of(st.none(), st.integers(0, 5)),
        st.one_of(st.none(), st.integers(0, 2)),
        st.integers(0, 2),
        st.one_of(st.none(), st.sampled_from(["x", "y"])),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(
    draws=DRAWS,
    kind=st.sampled_from(sorted(KEY_TYPES)),
    created=st.booleans(),
    batch=st.integers(1, 7),
)
def test_ordered_projection_rows_are_the_windowed_ones(
    engine: tuple[DuckDBEngine, Any],
    draws: list[tuple[int | None, int | None, int | None, int, str | None]],
    kind: str,
    created: bool,
    batch: int,
) -> None:
    duck, con = engine
    view = projection("k", created=created)
    con.register("src", events(kind, draws))
    expected = rows_of(duck.compute(con, view, "src"))
    ordered = duck.compute(con, view, "src", batch_rows=batch, ordered=True)
    assert time_ordered(ordered.schema)
    got = rows_of(ordered)
    assert canonical(got) == canonical(expected)
    times = [row["event_timestamp"] for row in got]
    assert times == sorted(times)


def test_ordered_backfill_and_aggregation_rows(engine: tuple[DuckDBEngine, Any]) -> None:
    duck, con = engine
    draws = [(k % 3, s, None, s % 4, "x") for k in range(6) for s in range(0, 4000, 700)]
    draws += draws[:5]  # exact duplicates
    con.register("src", events("int", draws))
    view = projection("k", created=False)
    period = (
        int((T0 + timedelta(seconds=1000)).timestamp() * 1000),
        int((T0 + timedelta(seconds=3000)).timestamp() * 1000),
    )
    expected = rows_of(duck.compute(con, view, "src", time_range=period))
    got = rows_of(duck.compute(con, view, "src", batch_rows=4, time_range=period, ordered=True))
    assert got and canonical(got) == canonical(expected)
    assert [r["event_timestamp"] for r in got] == sorted(r["event_timestamp"] for r in got)

    entity = Entity("thing", join_keys=["k"])
    source = FileSource("events", path="events.parquet", timestamp_field="ts")
    sums = FeatureView(
        "s", entity=entity, source=source, features=[Sum("a")], window=Tumbling("10m")
    )
    expected = rows_of(duck.compute(con, sums, "src"))
    ordered = duck.compute(con, sums, "src", batch_rows=2, ordered=True)
    assert time_ordered(ordered.schema)
    got = rows_of(ordered)
    assert canonical(got) == canonical(expected)
    assert [r["event_timestamp"] for r in got] == sorted(r["event_timestamp"] for r in got)


def test_one_row_per_run_across_batches() -> None:
    keys = pa.array([1, 1, 2, 2, 2, 3, 3, 4, 5], pa.int64())
    nan = pa.array([math.nan, math.nan, 1.0, 1.0, 2.0, 2.0, 2.0, math.nan, 3.0], pa.float64())
    values = pa.array([10, 11, 22, 20, 21, 30, 31, 40, 50], pa.int64())
    table = pa.table({"k": keys, "f": nan, "v": values})
    asked: list[list[int]] = []
    columns: list[str] = []

    def greatest(rows: pa.Table, position: str) -> pa.Array:
        """Of each run (rows equal in ``columns``), the row with the greatest ``v``."""
        asked.append(rows.column(position).to_pylist())
        best: dict[tuple[Any, ...], tuple[int, int]] = {}
        for row in rows.to_pylist():
            key = tuple("NaN" if row[c] != row[c] else row[c] for c in columns)
            if key not in best or row["v"] > best[key][0]:
                best[key] = (row["v"], row[position])
        return pa.array(sorted(p for _, p in best.values()), pa.uint64())

    for size in (1, 2, 3, 4, 9):
        batches = table.to_batches(max_chunksize=size)
        for run, expected in (
            (["k"], [11, 22, 31, 40, 50]),
            (["f"], [11, 22, 31, 40, 50]),
            (["k", "f"], [11, 22, 21, 31, 40, 50]),
        ):
            columns[:] = run
            kept = pa.Table.from_batches(list(one_per_run(batches, run, greatest)))
            assert kept.column("v").to_pylist() == expected, (size, run)
    unique = pa.table({"k": [1, 2, 3], "f": [1.0, 2.0, 3.0], "v": [1, 2, 3]})
    asked.clear()
    columns[:] = ["k"]
    kept = pa.Table.from_batches(list(one_per_run(unique.to_batches(2), ["k"], greatest)))
    assert kept.column("v").to_pylist() == [1, 2, 3] and asked == []  # no run: nothing chosen


def test_the_sort_runs_within_its_memory_budget(engine: tuple[DuckDBEngine, Any]) -> None:
    duck, con = engine
    con.register("src", events("int", [(k, k, None, 1, "x") for k in range(50)]))

    def limit() -> float:
        cursor = con.cursor()  # `con` is busy streaming the rows
        try:
            return memory_bytes(
                cursor.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
            )
        finally:
            cursor.close()

    before = limit()
    reader = duck.compute(con, projection("k", created=False), "src", batch_rows=7, ordered=True)
    assert limit() == memory_bytes(sort_memory_limit(duck.config.threads))
    assert limit() < before
    assert reader.read_all().num_rows == 50
    assert limit() == before  # given back once the rows are read
