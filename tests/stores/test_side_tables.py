"""Side tables of the offline stores (landing, quarantine, dead letters): keyed writes in every
mode, schema growth and type conversion, on Delta (local and on S3-compatible storage) and on
plain Parquet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import headwater
from headwater.config import parse_config
from headwater.errors import RunFailed
from headwater.quality.quarantine import quarantine_location, read_quarantine
from headwater.stores.offline import open_offline_store
from headwater.stores.offline.base import OfflineStore
from tests.helpers import aws_client, write_project

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("n", pa.int32())])


@pytest.fixture(params=["delta", "parquet", "delta on s3"])
def offline(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OfflineStore]:
    config: dict[str, Any] = {"type": "delta" if "delta" in request.param else "parquet"}
    if request.param == "delta on s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = f"hw-side-{tmp_path.name.lower().replace('_', '-')[-40:]}"
        aws_client(endpoint, "s3").create_bucket(Bucket=bucket)
        config |= {
            "path": f"s3://{bucket}/offline",
            "storage_options": {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1",
                "AWS_ALLOW_HTTP": "true",
                "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
            },
        }
    yield open_offline_store(parse_config({"project": "t", "offline_store": config}, tmp_path))


def _rows(*rows: tuple[Any, ...], schema: pa.Schema = SCHEMA) -> pa.RecordBatchReader:
    names = schema.names
    return pa.Table.from_pylist(
        [dict(zip(names, r, strict=True)) for r in rows], schema
    ).to_reader()


def _stored(offline: OfflineStore, name: str = "t__side") -> list[dict[str, Any]]:
    dataset = offline.read_table(name)
    assert dataset is not None
    return sorted(dataset.to_table().to_pylist(), key=lambda r: r["id"])


def test_nothing_before_the_first_write(offline: OfflineStore) -> None:
    assert offline.read_table("t__side") is None


def test_upsert_replaces_rows_with_the_same_keys_and_adds_the_others(
    offline: OfflineStore,
) -> None:
    assert (
        offline.write_table("t__side", _rows((1, "a", 1), (2, "b", 2)), keys=["id"], mode="upsert")
        == 2
    )
    written = offline.write_table(
        "t__side", _rows((2, "B", 20), (3, "c", 3)), keys=["id"], mode="upsert"
    )
    assert written == 2
    assert _stored(offline) == [
        {"id": 1, "name": "a", "n": 1},
        {"id": 2, "name": "B", "n": 20},
        {"id": 3, "name": "c", "n": 3},
    ]


def test_insert_adds_only_new_keys_so_a_replay_stores_nothing_twice(
    offline: OfflineStore,
) -> None:
    offline.write_table("t__side", _rows((1, "a", 1), (2, "b", 2)), keys=["id"], mode="insert")
    again = offline.write_table(
        "t__side", _rows((1, "x", 9), (2, "b", 2), (3, "c", 3)), keys=["id"], mode="insert"
    )
    assert again == 1
    assert [r["name"] for r in _stored(offline)] == ["a", "b", "c"]
    assert offline.write_table("t__side", _rows((3, "c", 3)), keys=["id"], mode="insert") == 0


def test_overwrite_replaces_the_table_and_its_columns(offline: OfflineStore) -> None:
    offline.write_table("t__side", _rows((1, "a", 1), (2, "b", 2)), keys=["id"], mode="upsert")
    other = pa.schema([("id", pa.int64()), ("label", pa.string())])
    offline.write_table("t__side", _rows((7, "z"), schema=other), keys=["id"], mode="overwrite")
    assert _stored(offline) == [{"id": 7, "label": "z"}]


def test_new_columns_are_added_and_stored_types_kept(offline: OfflineStore) -> None:
    offline.write_table("t__side", _rows((1, "a", 1)), keys=["id"], mode="insert")
    wider = pa.schema([("id", pa.int64()), ("n", pa.int8()), ("extra", pa.string())])
    offline.write_table("t__side", _rows((2, 5, "e"), schema=wider), keys=["id"], mode="insert")
    table = offline.read_table("t__side")
    assert table is not None
    assert table.schema.field("n").type == pa.int32()  # the stored type, not the incoming
    assert _stored(offline) == [
        {"id": 1, "name": "a", "n": 1, "extra": None},
        {"id": 2, "name": None, "n": 5, "extra": "e"},
    ]


def test_values_that_do_not_fit_the_stored_type_fail_naming_the_table(
    offline: OfflineStore,
) -> None:
    offline.write_table("t__side", _rows((1, "a", 1)), keys=["id"], mode="insert")
    text = pa.schema([("id", pa.int64()), ("n", pa.string())])
    with pytest.raises(RunFailed) as error:
        offline.write_table("t__side", _rows((2, "many"), schema=text), keys=["id"], mode="insert")
    assert "t__side stores n (string -> int32) with another type" in error.value.message
    assert _stored(offline) == [{"id": 1, "name": "a", "n": 1}]  # nothing was written


def test_a_side_table_is_deleted_by_its_name(offline: OfflineStore) -> None:
    offline.write_table("_landing/v", _rows((1, "a", 1)), keys=["id"], mode="overwrite")
    assert offline.read_table("_landing/v") is not None
    offline.delete_view("_landing/v")
    after = offline.read_table("_landing/v")
    # Gone; on object stores, emptied (its rows deleted and their files vacuumed).
    assert after is None or ("://" in offline.location("v") and after.count_rows() == 0)


QUARANTINED = """
from headwater import Entity, FeatureView, FileSource, checks

user = Entity("user", join_keys=["user_id"])
orders = FileSource("orders", path="data/orders.parquet", timestamp_field="ts",
                    checks=[checks.between("amount", 0, 100, severity="quarantine")])
amounts = FeatureView("amounts", entity=user, source=orders, features={"amount": "amount"})
"""


def test_quarantine_tables_follow_the_configured_store(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    ts = datetime(2024, 1, 1, tzinfo=UTC)
    orders = pa.table({"user_id": [1, 2, 3], "ts": [ts, ts, ts], "amount": [5.0, -1.0, 500.0]})
    write_project(tmp_path, QUARANTINED, offline="parquet", data={"data/orders.parquet": orders})
    with headwater.FeatureStore(tmp_path) as store:
        store.apply()
        (result,) = store.run()
        assert result.rows_quarantined == 2
        location = Path(quarantine_location(store.offline, "amounts"))
        assert sorted(p.name for p in location.iterdir()) == ["data.parquet"]  # not Delta
        table = read_quarantine(store.offline, "amounts")
        assert table is not None
        assert sorted(table.column("user_id").to_pylist()) == [2, 3]
        store.run()  # a rerun stores nothing twice
        again = read_quarantine(store.offline, "amounts")
        assert again is not None and again.num_rows == 2


@pytest.mark.parametrize("mode", ["upsert", "overwrite"])
def test_nanosecond_times_are_never_stored_earlier(offline: OfflineStore, mode: str) -> None:
    """A landing table keeps source times; a store holding microseconds rounds a nanosecond
    time up (delta-rs truncates: 1.000999 ms would be stored before the event)."""
    schema = pa.schema([("id", pa.int64()), ("ts", pa.timestamp("ns", tz="UTC"))])
    nanos = [1_000_999, -1_000_999, 2_000_000]
    for _ in range(2):  # a first write, then a merge into the table
        offline.write_table(
            "t__side", _rows(*enumerate(nanos), schema=schema), keys=["id"], mode=mode
        )
    dataset = offline.read_table("t__side")
    assert dataset is not None
    table = dataset.to_table().sort_by("id")
    stored = table.column("ts").cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_pylist()
    assert all(s >= n for s, n in zip(stored, nanos, strict=True)), stored
    assert all(s - n < 1000 for s, n in zip(stored, nanos, strict=True)), stored
