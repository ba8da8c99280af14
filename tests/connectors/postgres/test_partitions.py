"""Partitioned PostgreSQL reads: ranges read in parallel equal the plain read; a partition that
loses its connection is read again alone, with no row lost or doubled."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from headwater import PostgresSource
from headwater.connectors import open_connector
from headwater.connectors.postgres.partitions import condition, cut, ranges
from headwater.connectors.postgres.reader import PostgresConnector
from headwater.errors import DefinitionError
from tests.connectors.postgres.test_reader import create_big, kill_during_reads, make_store, sql

pytestmark = pytest.mark.postgres

ROWS = 200_000

DEFS = """
from headwater import Entity, FeatureView, PostgresSource

item = Entity("item", join_keys=["id"])
plain = PostgresSource(
    "plain", connection="app_db", table="public.big", timestamp_field="created_at"
)
split = PostgresSource(
    "split",
    connection="app_db",
    query=QUERY,
    timestamp_field="created_at",
    cursor_field="created_at",
    primary_key=["id"],
    partition_column=COLUMN,
    num_partitions=4,
    OPTIONS
)
plain_view = FeatureView("plain_view", entity=item, source=plain, features=FEATURES)
split_view = FeatureView("split_view", entity=item, source=split, features=FEATURES)
"""
FEATURES = {"k": "k", "size": "length(label)"}


def defs(column: str = "k", options: str = "", query: str = "SELECT * FROM public.big") -> str:
    return (
        DEFS.replace("COLUMN", repr(column))
        .replace("QUERY", repr(query))
        .replace("OPTIONS", options)
        .replace("=FEATURES", f"={FEATURES!r}")
    )


def record_streams(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The application names of the reads started, in order."""
    started: list[str] = []
    original = PostgresConnector.stream

    def stream(self: PostgresConnector, *args: Any) -> Iterator[pa.RecordBatch]:
        started.append(args[-1])
        return original(self, *args)

    monkeypatch.setattr(PostgresConnector, "stream", stream)
    return started


def read_all(store: Any, source: str) -> pa.Table:
    """Every row the connector streams for ``source`` (a full read), as DuckDB stages it."""
    connector = open_connector(store.definitions.sources[source], store.config)
    con = duckdb.connect()
    try:
        scan = connector.scan(con)
        return con.sql(f"SELECT * FROM {scan.relation} ORDER BY id").to_arrow_table()
    finally:
        con.close()


@pytest.mark.parametrize(
    ("column", "options"),
    [
        ("k", ""),  # an integer column holding NULLs; bounds from min and max
        ("k", "partition_bounds=(200, 400),"),  # values beyond the bounds
        ("created_at", ""),  # a timestamp column
    ],
)
def test_a_partitioned_read_equals_the_plain_read(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, column: str, options: str
) -> None:
    create_big(pg_dsn, ROWS)
    store = make_store(tmp_path, pg_dsn, defs(column, options))
    started = record_streams(monkeypatch)
    plain, split = read_all(store, "plain"), read_all(store, "split")
    assert sorted(started) == ["headwater:plain", *(f"headwater:split:p{i}" for i in range(4))]
    assert split.num_rows == plain.num_rows == ROWS
    assert split.equals(plain)  # same rows, none twice (ids are unique), same types
    assert split.column("k").null_count == ROWS // 10
    store.close()


def test_partitioned_incremental_runs_read_from_the_mark(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_big(pg_dsn, ROWS)
    store = make_store(tmp_path, pg_dsn, defs())
    store.apply()
    results = {r.view: r for r in store.run()}
    assert results["split_view"].rows_in == results["plain_view"].rows_in == ROWS
    columns = ["id", "event_timestamp", "k", "size"]
    split, plain = (
        store.offline.dataset(view).to_table(columns=columns).sort_by("id")
        for view in ("split_view", "plain_view")
    )
    assert split.equals(plain)
    sql(
        pg_dsn,
        "INSERT INTO public.big SELECT g, md5(g::text), NULL, "
        "timestamptz '2024-03-01' + g * interval '1 second' "
        f"FROM generate_series({ROWS + 1}, {ROWS + 10}) AS g",
    )
    started = record_streams(monkeypatch)
    (again,) = store.run(["split_view"])
    assert again.rows_in == 11  # the row at the mark and the ten new ones
    # min and max are those of the rows to read: k is NULL in all but the row at the mark.
    assert started and all(name.startswith("headwater:split:p") for name in started)
    assert store.offline.dataset("split_view").count_rows() == ROWS + 10
    store.close()


def test_a_partition_that_loses_its_connection_is_read_again_alone(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_big(pg_dsn, ROWS)
    # pace(id) keeps each range streaming from the server for a while: it is mid-read.
    paced = defs("id", query="SELECT * FROM public.big WHERE pace(id)")
    store = make_store(tmp_path, pg_dsn, paced, retry_backoff_s=0.01)
    store.apply()
    started = record_streams(monkeypatch)
    killed = kill_during_reads(monkeypatch, "headwater:split:p1", after_batches=2, times=1)
    (result,) = store.run(["split_view"])
    assert len(killed) == 1
    assert sorted(started) == [
        "headwater:split:p0",
        "headwater:split:p1",
        "headwater:split:p1",  # read again, alone
        "headwater:split:p2",
        "headwater:split:p3",
    ]
    assert (result.status, result.rows_in, result.inserted) == ("success", ROWS, ROWS)
    ids = store.offline.dataset("split_view").to_table(columns=["id"]).column("id").to_pylist()
    assert sorted(ids) == list(range(1, ROWS + 1))
    history = store.registry.runs(view="split_view")
    assert [(r.status, r.rows_in) for r in history] == [("success", ROWS)]
    store.close()


def test_partition_settings_are_checked(tmp_path: Path, pg_dsn: str) -> None:
    base = {"connection": "app_db", "table": "public.big", "timestamp_field": "created_at"}
    with pytest.raises(DefinitionError, match="needs num_partitions="):
        PostgresSource("s", partition_column="id", **base)
    with pytest.raises(DefinitionError, match="need partition_column="):
        PostgresSource("s", num_partitions=4, **base)
    with pytest.raises(DefinitionError, match=r"is not \(low, high\)"):
        PostgresSource(
            "s", partition_column="id", num_partitions=4, partition_bounds=(9, 1), **base
        )

    create_big(pg_dsn, 10)
    for column, message in [
        ("nope", "partition_column 'nope' is not a column"),
        ("label", "partition_column 'label' is string; ranges need an integer"),
    ]:
        store = make_store(tmp_path / column, pg_dsn, defs(column))
        with pytest.raises(DefinitionError, match=message):
            read_all(store, "split")
        store.close()


def test_ranges_cover_every_value_once() -> None:
    assert cut(1, 100, 4, what="s") == [26, 51, 76]  # 25 values each
    assert cut(1, 3, 8, what="s") == [2, 3]  # no empty ranges
    assert cut(5, 5, 4, what="s") == [] and cut(None, None, 4, what="s") == []
    assert cut(Decimal("0"), Decimal("1"), 4, what="s") == [Decimal("0.25"), 0.5, 0.75]
    assert cut(date(2024, 1, 1), date(2024, 1, 9), 4, what="s") == [
        date(2024, 1, 3),
        date(2024, 1, 5),
        date(2024, 1, 7),
    ]
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert cut(start, start + timedelta(hours=4), 2, what="s") == [start + timedelta(hours=2)]
    with pytest.raises(DefinitionError, match="cannot cut partitions"):
        cut(1, "9", 4, what="s")
    assert ranges([25, 50]) == [(None, 25), (25, 50), (50, None)]
    assert ranges([]) == [(None, None)]
    ref = {"hw_part_lo": "$lo", "hw_part_hi": "$hi"}.__getitem__
    assert condition('"k"', None, 25, ref) == '("k" < $hi OR "k" IS NULL)'
    assert condition('"k"', 25, 50, ref) == '"k" >= $lo AND "k" < $hi'
    assert condition('"k"', 50, None, ref) == '"k" >= $lo'
    assert condition('"k"', None, None, ref) == ""
