"""Checks inside runs: quarantine tables, a failed check that writes nothing, results in the
registry and status, the dry run, and bad definitions refused at apply."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import headwater
from headwater.errors import DefinitionError, QualityFailed
from headwater.orchestration.runner import cursor_checkpoint
from headwater.quality.quarantine import quarantine_location, read_quarantine
from tests.helpers import TS, offline_rows, write_parquet, write_project

BASE = datetime(2024, 1, 1, tzinfo=UTC)

ORDERS = """
from headwater import Entity, FeatureView, FileSource, checks

user = Entity("user", join_keys=["user_id"])
orders = FileSource(
    "orders",
    path="data/orders.parquet",
    timestamp_field="ts",
    checks=[
        checks.not_null("user_id", severity="quarantine"),
        checks.between("amount", 0, 100_000, severity="quarantine"),
        checks.in_set("status", ["new", "paid"], severity="warn", mostly=0.99),
    ],
)
order_amounts = FeatureView(
    "order_amounts",
    entity=user,
    source=orders,
    features={"amount": "amount", "order_id": "order_id"},
    checks=[
        checks.row_count(min=1),
        checks.unique("order_id", severity="quarantine"),
        checks.expression("amount < 50000", severity="quarantine", name="not_huge"),
    ],
)
"""


def orders(rows: list[tuple[Any, ...]]) -> pa.Table:
    """``(order_id, user_id, hours after BASE, amount, status)`` rows."""
    return pa.table(
        {
            "order_id": pa.array([r[0] for r in rows], pa.int64()),
            "user_id": pa.array([r[1] for r in rows], pa.int64()),
            "ts": pa.array([BASE + timedelta(hours=r[2]) for r in rows], TS),
            "amount": pa.array([r[3] for r in rows], pa.float64()),
            "status": pa.array([r[4] for r in rows], pa.string()),
        }
    )


GOOD = [(1, 1, 0, 10.0, "new"), (2, 2, 1, 20.0, "paid")]
MIXED = [
    *GOOD,
    (3, None, 2, 5.0, "new"),  # no user
    (4, 3, 3, -1.0, "paid"),  # negative amount
    (5, 4, 4, 60_000.0, "lost"),  # huge (view check) and an unknown status (warned)
]


def project(
    tmp_path: Path, rows: list[tuple[Any, ...]], defs: str = ORDERS
) -> headwater.FeatureStore:
    write_project(tmp_path, defs, data={"data/orders.parquet": orders(rows)})
    store = headwater.FeatureStore(tmp_path)
    store.apply()
    return store


def test_quarantine_sets_rows_aside_with_their_reasons(tmp_path: Path) -> None:
    store = project(tmp_path, MIXED)
    result = store.run()[0]
    assert (result.rows_in, result.rows_quarantined, result.inserted) == (5, 3, 2)
    assert [r["order_id"] for r in offline_rows(store, "order_amounts")] == [1, 2]
    location = quarantine_location(store.offline, "order_amounts")
    assert location.endswith("/data/offline/order_amounts__quarantine")
    table = read_quarantine(store.offline, "order_amounts")
    assert table is not None
    rows = sorted(table.to_pylist(), key=lambda r: r["_check"])
    assert [(r["_stage"], r["_check"], r["_reason"], r["_run_id"]) for r in rows] == [
        (
            "source",
            "between(amount)",
            "between(amount): amount = -1.0 is outside [0, 100000]",
            result.run_id,
        ),
        ("view", "not_huge", "not_huge: amount < 50000 is false", result.run_id),
        ("source", "not_null(user_id)", "not_null(user_id): user_id is null", result.run_id),
    ]
    # Source rows keep the source's columns, view rows the view's.
    by_stage = {r["_stage"]: r for r in rows}
    assert by_stage["source"]["status"] in ("new", "paid")
    assert by_stage["view"]["status"] is None and by_stage["view"]["user_id"] == 4
    # A rerun over the same input stores nothing twice.
    again = store.run()[0]
    assert again.rows_quarantined == 3
    assert read_quarantine(store.offline, "order_amounts").num_rows == 3
    store.close()


def test_results_land_in_the_registry_and_status(tmp_path: Path) -> None:
    store = project(tmp_path, MIXED)
    run_id = store.run()[0].run_id
    records = store.quality("order_amounts")
    assert [(r.stage, r.check, r.action, r.rows_checked, r.rows_failed) for r in records] == [
        ("source", "not_null(user_id)", "quarantined", 5, 1),
        ("source", "between(amount)", "quarantined", 5, 1),
        ("source", "in_set(status)", "warned", 5, 1),
        ("view", "row_count", "passed", 3, 0),
        ("view", "unique(order_id)", "passed", 3, 0),
        ("view", "not_huge", "quarantined", 3, 1),
    ]
    assert {r.run_id for r in records} == {run_id}
    assert records[2].sample == ["lost"]
    assert records[1].sample == [-1.0]
    assert store.quality(run_id=run_id) == records
    status = store.status()[0]
    assert [r.check for r in status.quality] == [r.check for r in records]
    assert status.last_run.details["rows_quarantined"] == 3
    second = store.run()[0].run_id
    assert {r.run_id for r in store.quality("order_amounts", runs=2)} == {run_id, second}
    assert {r.run_id for r in store.quality()} == {second}
    store.close()


def test_a_failed_check_stops_the_run_and_writes_nothing(tmp_path: Path) -> None:
    defs = ORDERS.replace(
        'checks.not_null("user_id", severity="quarantine")', 'checks.not_null("user_id")'
    )
    store = project(tmp_path, GOOD, defs)
    store.run()
    store.materialize()
    offline = store.offline
    version = offline.version("order_amounts")
    before = offline_rows(store, "order_amounts")
    online_before = store.get_online_features(
        ["order_amounts:amount"], [{"user_id": 1}, {"user_id": 4}]
    ).to_dict()
    write_parquet(tmp_path, "data/orders.parquet", orders(MIXED))
    with pytest.raises(QualityFailed) as info:
        store.run()
    message = str(info.value)
    assert message.startswith("1 check failed, nothing was written: source 'orders': ")
    assert "check 'not_null(user_id)' on column 'user_id': 1 of 5 rows fail" in message
    assert [f.check for f in info.value.failures] == ["not_null(user_id)"]
    # Offline, online and quarantine untouched; the run is recorded as failed, with why.
    assert offline.version("order_amounts") == version
    assert offline_rows(store, "order_amounts") == before
    assert read_quarantine(store.offline, "order_amounts") is None
    store.materialize()
    online_after = store.get_online_features(
        ["order_amounts:amount"], [{"user_id": 1}, {"user_id": 4}]
    ).to_dict()
    assert online_after == online_before
    run = store.registry.last_run("order_amounts", "run", status=None)
    assert run is not None and run.status == "failed"
    assert "not_null(user_id)" in (run.error or "")
    failed = [r for r in store.quality("order_amounts") if r.action == "failed"]
    assert [r.check for r in failed] == ["not_null(user_id)"]
    store.close()


def test_a_failed_view_check_writes_nothing_either(tmp_path: Path) -> None:
    defs = ORDERS.replace("checks.row_count(min=1)", "checks.row_count(max=2)")
    store = project(tmp_path, MIXED, defs)
    with pytest.raises(QualityFailed, match="view 'order_amounts': check 'row_count': 3 rows"):
        store.run()
    assert store.offline.dataset("order_amounts") is None
    assert read_quarantine(store.offline, "order_amounts") is None
    store.close()


SQLITE_DEFS = """
from headwater import Entity, FeatureView, SqliteSource, Sum, Tumbling, checks

user = Entity("user", join_keys=["user_id"])
orders = SqliteSource("orders", path="shop.db", table="orders", timestamp_field="created_at",
                      cursor_field="updated_at", primary_key="order_id",
                      checks=[checks.between("amount", 0, 1000)])
daily = FeatureView("daily", entity=user, source=orders, window=Tumbling("1d"),
                    features=[Sum("amount", name="total")],
                    checks=[checks.not_null("total", severity="quarantine")])
"""


def test_a_failed_check_does_not_move_the_cursor(tmp_path: Path) -> None:
    write_project(tmp_path, SQLITE_DEFS)
    db = sqlite3.connect(tmp_path / "shop.db")
    db.execute(
        "CREATE TABLE orders (order_id INTEGER PRIMARY KEY, user_id INTEGER, amount REAL,"
        " created_at TEXT, updated_at TEXT)"
    )
    db.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
        [
            (1, 1, 10.0, "2024-01-01 10:00:00", "2024-02-01 00:00:01"),
            (2, 1, 5.0, "2024-01-01 11:00:00", "2024-02-01 00:00:02"),
        ],
    )
    db.commit()
    store = headwater.FeatureStore(tmp_path)
    store.apply()
    assert store.run()[0].inserted == 1
    mark = store.registry.get_checkpoint(cursor_checkpoint("daily"))
    version = store.offline.version("daily")
    db.execute("INSERT INTO orders VALUES (3, 2, 5000.0, '2024-01-02 10:00:00', '2024-02-02')")
    db.commit()
    with pytest.raises(QualityFailed, match="between\\(amount\\)"):
        store.run()
    assert store.registry.get_checkpoint(cursor_checkpoint("daily")) == mark
    assert store.offline.version("daily") == version
    db.execute("UPDATE orders SET amount = 50.0, updated_at = '2024-02-03' WHERE order_id = 3")
    db.commit()
    assert store.run()[0].inserted == 1  # fixed at the source: the same rows go through
    assert store.registry.get_checkpoint(cursor_checkpoint("daily")) != mark
    db.close()
    store.close()


def test_the_dry_run_writes_and_records_nothing(tmp_path: Path) -> None:
    defs = ORDERS.replace(
        'checks.not_null("user_id", severity="quarantine")', 'checks.not_null("user_id")'
    )
    store = project(tmp_path, MIXED, defs)
    report = store.check()[0]
    assert report.view == "order_amounts"
    assert report.failed
    assert [(stage, r.check, r.action) for stage, r in report.results] == [
        ("source", "not_null(user_id)", "failed"),
        ("source", "between(amount)", "quarantined"),
        ("source", "in_set(status)", "warned"),
        ("view", "row_count", "passed"),
        ("view", "unique(order_id)", "passed"),
        ("view", "not_huge", "quarantined"),
    ]
    assert report.rows_quarantined == 2
    assert store.offline.dataset("order_amounts") is None
    assert read_quarantine(store.offline, "order_amounts") is None
    assert store.quality() == []
    assert store.registry.runs("order_amounts") == []
    store.close()


def test_unique_against_stored_rows_of_a_view(tmp_path: Path) -> None:
    store = project(tmp_path, GOOD)
    store.run()
    # Order 2 arrives again under another user and time: a duplicate of a stored row. Order 1
    # is read again as it was (a rerun rewrites the same row key): not a duplicate.
    write_parquet(
        tmp_path,
        "data/orders.parquet",
        orders([GOOD[0], (2, 7, 9, 20.0, "paid"), (3, 3, 5, 1.0, "new")]),
    )
    result = store.run()[0]
    assert result.rows_quarantined == 1
    table = read_quarantine(store.offline, "order_amounts")
    assert table is not None
    assert table.select(["order_id", "user_id", "_reason"]).to_pylist() == [
        {"order_id": 2, "user_id": 7, "_reason": "unique(order_id): order_id = 2 is already stored"}
    ]
    assert sorted(r["order_id"] for r in offline_rows(store, "order_amounts")) == [1, 2, 3]
    store.close()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('checks.not_null("user_id", severity="quarantine")', 'checks.not_null("usr_id")'),
            "source 'orders': check 'not_null(usr_id)' names column 'usr_id', which is not a "
            "column of source 'orders' (columns: order_id, user_id, ts, amount, status)",
        ),
        (
            ("checks.row_count(min=1)", 'checks.between("status", 0, 1)'),
            "view 'order_amounts': check 'between(status)' names column 'status', which is not a "
            "column of the rows view 'order_amounts' computes",
        ),
        (
            ("checks.row_count(min=1)", 'checks.matches("amount", "a(?=b)")'),
            "view 'order_amounts': check 'matches(amount)': Invalid Input Error",
        ),
        (
            ("checks.row_count(min=1)", 'checks.expression("amount + 1")'),
            "the expression 'amount + 1' is a DOUBLE, not a boolean",
        ),
        (
            ("checks.row_count(min=1)", 'checks.expression("amont > 1")'),
            "check 'expression(amont > 1)': Binder Error",
        ),
        (
            ("checks.row_count(min=1)", 'checks.sql("SELECT * FROM {rows} WHERE nope", name="q")'),
            "check 'q': its query failed",
        ),
    ],
)
def test_bad_checks_are_refused_at_apply(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    write_project(tmp_path, ORDERS.replace(*change), data={"data/orders.parquet": orders(GOOD)})
    store = headwater.FeatureStore(tmp_path)
    with pytest.raises(DefinitionError) as info:
        store.apply()
    assert message in str(info.value)
    assert info.value.fix
    store.close()


def test_every_problem_is_reported_together(tmp_path: Path) -> None:
    defs = ORDERS.replace("checks.row_count(min=1)", 'checks.not_null("a"), checks.not_null("b")')
    write_project(tmp_path, defs, data={"data/orders.parquet": orders(GOOD)})
    store = headwater.FeatureStore(tmp_path)
    with pytest.raises(DefinitionError, match=r"^2 problems with data-quality checks: "):
        store.apply()
    store.close()


def test_bad_definitions_name_their_module(tmp_path: Path) -> None:
    defs = ORDERS.replace('severity="warn", mostly=0.99', 'severity="warn", mostly=2')
    write_project(tmp_path, defs, data={"data/orders.parquet": orders(GOOD)})
    store = headwater.FeatureStore(tmp_path)
    with pytest.raises(DefinitionError, match=r"defs.py: check 'in_set\(status\)': mostly=2"):
        store.apply()
    store.close()
