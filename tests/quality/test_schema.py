"""Schema contracts of sources (schema_mode) and new feature columns in the offline store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

import headwater
from headwater.errors import QualityFailed
from headwater.quality.quarantine import read_quarantine
from tests.helpers import TS, offline_rows, write_parquet, write_project

BASE = datetime(2024, 1, 1, tzinfo=UTC)

DEFS = """
from headwater import Entity, FeatureView, FileSource

user = Entity("user", join_keys=["user_id"])
orders = FileSource("orders", path="data/orders.parquet", timestamp_field="ts",
                    schema_mode="{mode}")
spend = FeatureView("spend", entity=user, source=orders, features={{"amount": "amount"}})
"""


def applied() -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array([1, 2, 3], pa.int64()),
            "ts": pa.array([BASE + timedelta(hours=h) for h in range(3)], TS),
            "amount": pa.array([1.5, 2.5, 3.5]),
            "status": ["new", "paid", "new"],
        }
    )


def changed() -> pa.Table:
    """A new column (coupon), amount now text, status gone."""
    return pa.table(
        {
            "user_id": pa.array([1, 2, 3], pa.int64()),
            "ts": pa.array([BASE + timedelta(hours=h) for h in range(3)], TS),
            "amount": ["12.5", "oops", "7"],
            "coupon": ["X", None, None],
        }
    )


def store_with(tmp_path: Path, mode: str) -> headwater.FeatureStore:
    write_project(tmp_path, DEFS.format(mode=mode), data={"data/orders.parquet": applied()})
    store = headwater.FeatureStore(tmp_path)
    store.apply()  # records the source's columns: the contract
    write_parquet(tmp_path, "data/orders.parquet", changed())
    return store


def contract_result(store: headwater.FeatureStore) -> str:
    records = [r for r in store.quality("spend") if r.check == "schema_mode"]
    assert len(records) == 1
    return records[0].message


DIFFERENCES = (
    "new column coupon (VARCHAR); amount changed from DOUBLE to VARCHAR; "
    "column status (VARCHAR) is missing"
)


def test_unchanged_columns_pass_silently(tmp_path: Path) -> None:
    write_project(tmp_path, DEFS.format(mode="freeze"), data={"data/orders.parquet": applied()})
    store = headwater.FeatureStore(tmp_path)
    store.apply()
    assert store.run()[0].inserted == 3
    assert store.quality() == []
    store.close()


def test_evolve_accepts_and_warns(tmp_path: Path) -> None:
    store = store_with(tmp_path, "evolve")
    assert store.run()[0].inserted == 3
    message = contract_result(store)
    assert message == (
        f"source 'orders': schema_mode='evolve': {DIFFERENCES} (accepted; run `headwater "
        "apply` to record the new schema)"
    )
    assert [r["amount"] for r in offline_rows(store, "spend")] == ["12.5", "7", "oops"]
    store.apply()  # records the new columns: nothing to report any more
    store.run()
    assert store.status()[0].quality == []
    store.close()


def test_freeze_stops_the_run(tmp_path: Path) -> None:
    store = store_with(tmp_path, "freeze")
    with pytest.raises(QualityFailed, match="schema_mode='freeze': new column coupon"):
        store.run()
    assert store.offline.dataset("spend") is None
    assert "the source's schema is frozen" in contract_result(store)
    store.close()


def test_discard_column_drops_new_columns_and_converts_changed_ones(tmp_path: Path) -> None:
    store = store_with(tmp_path, "discard_column")
    assert store.run()[0].inserted == 3
    assert [r["amount"] for r in offline_rows(store, "spend")] == [None, 7.0, 12.5]
    assert "new columns dropped, changed ones converted" in contract_result(store)
    assert read_quarantine(store.offline, "spend") is None
    store.close()


def test_discard_row_quarantines_rows_that_break_the_contract(tmp_path: Path) -> None:
    store = store_with(tmp_path, "discard_row")
    result = store.run()[0]
    assert (result.inserted, result.rows_quarantined) == (1, 2)
    assert offline_rows(store, "spend")[0]["amount"] == 7.0
    table = read_quarantine(store.offline, "spend")
    assert table is not None
    reasons = sorted(table.column("_reason").to_pylist())
    assert reasons == [
        "schema_mode:new_column(coupon): coupon = X is in a column the schema does not have",
        "schema_mode:type(amount): amount = oops is not a valid DOUBLE",
    ]
    # The rows set aside keep the columns they came with.
    assert "coupon" in table.column_names
    store.close()


def test_a_new_feature_column_evolves_the_offline_table(tmp_path: Path) -> None:
    write_project(tmp_path, DEFS.format(mode="evolve"), data={"data/orders.parquet": applied()})
    store = headwater.FeatureStore(tmp_path)
    store.apply()
    store.run()
    (tmp_path / "defs.py").write_text(
        DEFS.format(mode="evolve").replace(
            '{"amount": "amount"}', '{"amount": "amount", "is_new": "status = \'new\'"}'
        )
    )
    store = headwater.FeatureStore(tmp_path)
    store.apply()
    result = store.run()[0]
    # A new feature changes the rows: a new table version, built whole, with the column.
    assert (result.inserted, result.updated) == (3, 0)
    assert result.details["table_version"] == 2
    assert [(r["amount"], r["is_new"]) for r in offline_rows(store, "spend")] == [
        (1.5, True),
        (2.5, False),
        (3.5, True),
    ]
    assert store.run()[0].updated == 0  # and reruns change nothing
    store.close()


PG_DEFS = """
from headwater import Entity, FeatureView, PostgresSource, Sum, Tumbling

user = Entity("user", join_keys=["user_id"])
orders = PostgresSource("orders", connection="db", table="public.orders",
                        timestamp_field="created_at", cursor_field="updated_at",
                        primary_key="order_id", schema_mode="freeze")
daily = FeatureView("daily", entity=user, source=orders, window=Tumbling("1d"),
                    features=[Sum("amount", name="total")])
"""


@pytest.mark.postgres
def test_a_frozen_postgres_source(tmp_path: Path, pg_dsn: str) -> None:
    import psycopg
    import yaml

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (order_id bigint PRIMARY KEY, user_id int, amount numeric(12,2),"
            " created_at timestamptz, updated_at timestamptz, tags text[], u uuid, d date)"
        )
        conn.execute(
            "INSERT INTO orders VALUES (1, 1, 10.5, '2024-01-01 10:00+00', '2024-02-01 00:00+00',"
            " '{a,b}', gen_random_uuid(), '2024-01-01')"
        )
    config = {"project": "t", "connections": {"db": {"type": "postgres", "dsn": pg_dsn}}}
    (tmp_path / "headwater.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "defs.py").write_text(PG_DEFS)
    store = headwater.FeatureStore(tmp_path)
    store.apply()
    # The types the reader produces are the types apply recorded: nothing to report.
    assert store.run()[0].inserted == 1
    assert store.quality() == []
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE orders ADD COLUMN coupon text")
        conn.execute(
            "INSERT INTO orders VALUES (2, 1, 1.0, '2024-01-01 11:00+00', '2024-02-02 00:00+00',"
            " NULL, NULL, NULL, 'X')"
        )
    with pytest.raises(QualityFailed, match="new column coupon"):
        store.run()
    store.close()
