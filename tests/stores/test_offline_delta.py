"""The Delta offline store's bounded writes: a first write through sorted Parquet files and
``convert_to_deltalake`` holds what delta-rs's writer would hold; later writes merge in slices
of whole partitions and add up to one merge."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater import Entity, FeatureView, FileSource
from headwater.config import ProjectConfig
from headwater.errors import DefinitionError
from headwater.stores.offline import delta as delta_module
from headwater.stores.offline.base import TIME_ORDERED
from headwater.stores.offline.delta import DeltaOfflineStore
from tests.helpers import TS, sorted_rows

T0 = datetime(2024, 3, 1, tzinfo=UTC)
FEATURES = ["small", "count", "amount", "label", "tags", "ok", "day", "raw", "local", "nothing"]


def view(name: str = "v") -> FeatureView:
    user = Entity("user", join_keys=["user_id"])
    source = FileSource("events", path="data/events.parquet", timestamp_field="ts")
    return FeatureView(name, entity=user, source=source, features={f: f for f in FEATURES})


def store(root: Path) -> DeltaOfflineStore:
    config = ProjectConfig(project="t", root=root)
    return DeltaOfflineStore(config.offline_store, config)


SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("event_timestamp", TS),
        ("small", pa.int16()),
        ("count", pa.uint32()),
        ("amount", pa.decimal128(12, 2)),
        ("label", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("ok", pa.bool_()),
        ("day", pa.date32()),
        ("raw", pa.binary()),
        ("local", pa.timestamp("ns")),
        ("nothing", pa.null()),
    ]
)


def rows(count: int, *, days: int = 7, start: int = 0, version: int = 0) -> list[dict[str, Any]]:
    """``count`` output rows spread (out of order) over ``days`` days; ``version`` changes the
    values of the same keys."""
    out = []
    for i in range(start, start + count):
        out.append(
            {
                "user_id": i,
                "event_timestamp": T0 + timedelta(days=(i * 5) % days, seconds=i),
                "small": (i % 300) - 150,
                "count": i * 7 + version,
                "amount": Decimal(i) / 4 + version,
                "label": None if i % 11 == 0 else f"label-{i % 13}-{version}",
                "tags": [f"t{i % 3}"] * (i % 3),
                "ok": i % 2 == 0,
                "day": date(2024, 1, 1) + timedelta(days=i % 40),
                "raw": bytes([i % 256]),
                "local": datetime(2024, 1, 1, 12) + timedelta(microseconds=i),
                "nothing": None,
            }
        )
    return out


ORDERED = False
"""Readers in event-time order, marked as the engine marks its ordered output."""


def reader(data: list[dict[str, Any]], batch: int = 37) -> pa.RecordBatchReader:
    return as_reader(pa.Table.from_pylist(data, schema=SCHEMA), batch)


def as_reader(table: pa.Table, batch: int = 37) -> pa.RecordBatchReader:
    if ORDERED:
        table = table.sort_by("event_timestamp")
        table = table.replace_schema_metadata(TIME_ORDERED)
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=batch))


def stored(offline: DeltaOfflineStore, name: str = "v") -> pa.Table:
    dataset = offline.dataset(name)
    assert dataset is not None
    return dataset.to_table()


@pytest.fixture(params=["in memory", "through DuckDB", "in event-time order"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ways of a write: small ones in memory, large ones (here: over 50 rows) ordered by
    DuckDB, or taken as they come when the engine ordered them by event time."""
    if request.param != "in memory":
        monkeypatch.setattr(delta_module, "SMALL_ROWS", 50)
    if request.param == "in event-time order":
        monkeypatch.setattr(sys.modules[__name__], "ORDERED", True)

        def no_sort(self: DeltaOfflineStore) -> None:
            raise AssertionError("rows in event-time order are written without DuckDB")

        monkeypatch.setattr(DeltaOfflineStore, "_duckdb", no_sort)
    return str(request.param)


def test_a_first_write_holds_what_the_delta_rs_writer_holds(tmp_path: Path, path: str) -> None:
    ours, theirs = store(tmp_path / "ours"), store(tmp_path / "theirs")
    data = rows(500)
    stats = ours.write(view(), reader(data), seq=1)
    assert stats.inserted == 500
    # The same rows through delta-rs's own writer (the path object stores take).
    from headwater.stores.offline.base import with_storage_columns

    schema, batches = with_storage_columns(reader(data), 1)
    theirs._create_with_delta_rs(view(), schema, batches, False)
    mine, reference = stored(ours), stored(theirs)
    # The same columns and types (convert_to_deltalake puts the partition column last).
    assert sorted(mine.schema, key=lambda f: f.name) == sorted(
        reference.schema, key=lambda f: f.name
    )
    assert sorted_rows(mine) == sorted_rows(reference)
    assert mine.schema.field("count").type == pa.int32()  # unsigned: signed, as delta-rs does
    assert mine.schema.field("local").type == pa.timestamp("us")  # ns: us, as delta-rs does

    # One file per partition, written in order, with statistics for every column kind.
    location = Path(ours.location("v"))
    files = sorted(location.glob("event_date=*/part-*.parquet"))
    assert [f.parent.name for f in files] == [f"event_date=2024-03-0{d}" for d in range(1, 8)]
    commit = (location / "_delta_log/00000000000000000000.json").read_text()
    log = [json.loads(line) for line in commit.splitlines()]
    adds = [entry["add"] for entry in log if "add" in entry]
    assert len(adds) == 7
    first = json.loads(adds[0]["stats"])
    assert {"user_id", "label", "amount", "event_timestamp"} <= set(first["minValues"])
    assert not list(location.parent.glob(".v-*"))  # the staging folder is gone


def test_a_first_write_drops_tombstones_and_refuses_what_delta_cannot_hold(
    tmp_path: Path, path: str
) -> None:
    offline = store(tmp_path)
    data = pa.Table.from_pylist(rows(200), schema=SCHEMA)
    flags = pa.array([i % 4 == 0 for i in range(200)])
    with_flags = data.append_column("_deleted", flags)
    stats = offline.write(view(), as_reader(with_flags, 30), seq=1)
    assert stats.inserted == 150
    kept = sorted(stored(offline).column("user_id").to_pylist())
    assert kept == [i for i in range(200) if i % 4]
    assert "_deleted" not in stored(offline).schema.names

    clock = data.append_column("at", pa.array([None] * 200, pa.time64("us")))
    with pytest.raises(DefinitionError, match=r"view 'w': column 'at' is time64\[us\]"):
        offline.write(view("w"), as_reader(clock), seq=1)
    assert offline.dataset("w") is None


def test_an_interrupted_first_write_leaves_no_table_and_the_rerun_writes_it(
    tmp_path: Path, path: str
) -> None:
    offline = store(tmp_path)
    data = rows(300)

    source = reader(data)

    def failing() -> Iterator[pa.RecordBatch]:
        for i, batch in enumerate(source):
            if i == 5:
                raise ConnectionError("source went away")
            yield batch

    with pytest.raises(ConnectionError):
        offline.write(view(), pa.RecordBatchReader.from_batches(source.schema, failing()), seq=1)
    assert offline.dataset("v") is None
    offline_root = tmp_path / "data" / "offline"
    assert not offline_root.exists() or os.listdir(offline_root) == []  # no table, no staging
    assert offline.write(view(), reader(data), seq=2).inserted == 300
    assert stored(offline).num_rows == 300


def test_a_first_write_without_rows_creates_an_empty_table(tmp_path: Path) -> None:
    offline = store(tmp_path)
    assert offline.write(view(), reader([]), seq=1).inserted == 0
    table = stored(offline)
    assert table.num_rows == 0 and {"user_id", "_seq", "event_date"} <= set(table.schema.names)
    assert offline.write(view(), reader(rows(5)), seq=2).inserted == 5


def test_only_abandoned_staging_folders_are_removed(tmp_path: Path) -> None:
    offline = store(tmp_path)
    root = tmp_path / "data" / "offline"
    root.mkdir(parents=True)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    host = socket.gethostname()
    dead = root / f".v-{host}-{ended.pid}-abc.creating"
    alive = root / f".v-{host}-{os.getpid()}-def.creating"  # a write under way in a live process
    elsewhere = root / f".v-otherhost-{ended.pid}-ghi.creating"
    for folder in (dead, alive, elsewhere):
        (folder / "table").mkdir(parents=True)
    assert offline.write(view(), reader(rows(10)), seq=1).inserted == 10
    assert not dead.exists() and alive.exists() and elsewhere.exists()


def test_a_folder_of_other_files_is_left_alone(tmp_path: Path) -> None:
    offline = store(tmp_path)
    folder = Path(offline.location("v")) / "event_date=2020-01-01"
    folder.mkdir(parents=True)
    other = folder / "part-0.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    assert offline.write(view(), reader(rows(10)), seq=1).inserted == 10
    assert other.exists()  # not deleted: delta-rs wrote the table beside it
    assert stored(offline).num_rows == 10


def test_merges_in_slices_add_up_to_one_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = rows(400, days=20), rows(300, days=20, start=200, version=1)
    # Unchanged rows, changed rows (200..399) and new rows (400..499).
    results = {}
    for name, slice_rows, ordered in (
        ("whole", 1_000_000, False),
        ("sliced", 25, False),
        ("sliced in event-time order", 25, True),
    ):
        monkeypatch.setattr(delta_module, "MERGE_ROWS", slice_rows)
        monkeypatch.setattr(delta_module, "SMALL_ROWS", slice_rows)
        monkeypatch.setattr(sys.modules[__name__], "ORDERED", ordered)
        offline = store(tmp_path / name)
        offline.write(view(), reader(first), seq=1)
        stats = offline.write(view(), reader(second), seq=2)
        results[name] = (stats, sorted_rows(stored(offline)))
    assert results["sliced"] == results["whole"] == results["sliced in event-time order"]
    stats, table = results["sliced"]
    assert (stats.inserted, stats.updated, stats.deleted) == (100, 200, 0)
    assert len(table) == 500
    by_id = {row["user_id"]: row for row in table}
    assert by_id[10]["_seq"] == 1 and by_id[250]["_seq"] == 2 and by_id[450]["_seq"] == 2

    # A rerun with the same rows changes nothing, sliced or not.
    monkeypatch.setattr(delta_module, "MERGE_ROWS", 25)
    monkeypatch.setattr(delta_module, "SMALL_ROWS", 25)
    offline = store(tmp_path / "sliced")
    again = offline.write(view(), reader(second), seq=3)
    assert (again.inserted, again.updated, again.deleted) == (0, 0, 0)


def test_slices_keep_partitions_whole() -> None:
    days = [date(2024, 1, d) for d in (1, 1, 1, 2, 2, 3, 3, 3, 3, 4)]
    table = pa.table({"event_date": days, "x": list(range(10))})
    slices = list(delta_module._slices(iter(table.to_batches(max_chunksize=4)), 3))
    contents = [[v for b in s for v in b.column("x").to_pylist()] for s in slices]
    assert contents == [[0, 1, 2], [3, 4, 5, 6, 7, 8], [9]]  # a day never spans two slices
    # ... unless one day holds twice the slice size.
    big = pa.table({"event_date": [date(2024, 1, 1)] * 10, "x": list(range(10))})
    sizes = [sum(b.num_rows for b in s) for s in delta_module._slices(iter(big.to_batches()), 3)]
    assert sizes == [6, 4]


def test_a_failing_file_writer_fails_the_write_and_leaves_no_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headwater.stores.offline import files as files_module

    monkeypatch.setattr(delta_module, "SMALL_ROWS", 50)
    monkeypatch.setattr(files_module, "ROW_GROUP_ROWS", 20)
    monkeypatch.setattr(sys.modules[__name__], "ORDERED", True)
    offline = store(tmp_path)
    calls = [0]
    original = pq.ParquetWriter.write_table

    def write_table(self: pq.ParquetWriter, table: pa.Table, row_group_size: int) -> None:
        calls[0] += 1
        if calls[0] == 4:
            raise OSError("disk full")
        original(self, table, row_group_size=row_group_size)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", write_table)
    with pytest.raises(OSError, match="disk full"):
        offline.write(view(), reader(rows(500)), seq=1)
    assert offline.dataset("v") is None
    assert os.listdir(tmp_path / "data" / "offline") == []  # no table, no staging folder
    monkeypatch.setattr(pq.ParquetWriter, "write_table", original)
    assert offline.write(view(), reader(rows(500)), seq=2).inserted == 500


def test_only_columns_of_few_values_are_dictionary_encoded(tmp_path: Path, path: str) -> None:
    offline = store(tmp_path)
    offline.write(view(), reader(rows(700)), seq=1)
    (first, *_) = sorted(Path(offline.location("v")).glob("event_date=*/part-*.parquet"))
    meta = pq.ParquetFile(first).metadata.row_group(0)
    encoded = {
        meta.column(i).path_in_schema: "RLE_DICTIONARY" in meta.column(i).encodings
        for i in range(meta.num_columns)
    }
    assert encoded["label"] and encoded["ok"] is False  # 13 labels; booleans never
    assert not encoded["user_id"] and not encoded["event_timestamp"]  # one value per row
