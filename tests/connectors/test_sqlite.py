"""SqliteSource on a database file: types, queries, incremental cursors and crash safety."""

from __future__ import annotations

import sqlite3
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

import headwater
from headwater.errors import DefinitionError, RunFailed
from headwater.stores.offline.delta import DeltaOfflineStore
from headwater.stores.registry import Registry
from tests.helpers import offline_rows

D1 = datetime(2024, 3, 1, tzinfo=UTC)
DAY = timedelta(days=1)
D2, D3, D4 = D1 + DAY, D1 + 2 * DAY, D1 + 3 * DAY


def text(moment: datetime) -> str:
    """SQLite's usual timestamp text (fixed width, so it also sorts as text)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def cursor(seconds: float) -> str:
    return text(datetime(2024, 4, 1, tzinfo=UTC) + timedelta(seconds=seconds))


MARK = cursor(5.123456)

ORDERS_DDL = """
CREATE TABLE orders (
    order_id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL,
    amount REAL,
    created_at TIMESTAMP NOT NULL,
    updated_at TEXT NOT NULL
)
"""

# (order_id, user_id, amount, created_at, updated_at); amounts are exact in binary.
BASE_ORDERS = [
    (1, 1, 10.0, text(D1 + timedelta(hours=9)), cursor(1)),
    (2, 1, 5.5, text(D1 + timedelta(hours=17, minutes=30)), cursor(2)),
    (3, 1, 7.25, text(D2 + timedelta(hours=8)), cursor(3)),
    (4, 2, 20.0, text(D1 + timedelta(hours=12)), cursor(4)),
    (5, 2, 1.0, text(D4 - timedelta(milliseconds=1)), MARK),
    (6, 3, 3.0, text(D2 + timedelta(hours=10)), MARK),
]

ORDER_DEFS = """
from headwater import Count, Entity, FeatureView, Max, SqliteSource, Sum, Tumbling

user = Entity("user", join_keys=["user_id"])
order = Entity("order", join_keys=["order_id"])

orders = SqliteSource(
    "orders",
    path=DB_PATH,
    table="orders",
    timestamp_field="created_at",
    cursor_field="updated_at",
    primary_key=["order_id"],
)

order_facts = FeatureView(
    "order_facts",
    entity=order,
    source=orders,
    features={"user_id": "user_id", "amount": "amount"},
)

user_daily = FeatureView(
    "user_daily",
    entity=user,
    source=orders,
    window=Tumbling("1d"),
    features=[
        Sum("amount", name="amount_sum"),
        Count(name="orders"),
        Max("amount", name="amount_max"),
    ],
)

user_lifetime = FeatureView(
    "user_lifetime",
    entity=user,
    source=orders,
    features=[Count(name="orders"), Sum("amount", name="amount_sum")],
)
"""

VIEWS = ("order_facts", "user_daily", "user_lifetime")
AGGREGATES = ("user_daily", "user_lifetime")


# ---------------------------------------------------------------------- helpers
def make_store(root: Path, db: Path, definitions: str = ORDER_DEFS) -> headwater.FeatureStore:
    """A project in ``root`` whose definitions read the SQLite file ``db``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "headwater.yaml").write_text(yaml.safe_dump({"project": "t"}))
    module = f"DB_PATH = {str(db)!r}\n" + textwrap.dedent(definitions).lstrip()
    (root / "defs.py").write_text(module)
    return headwater.FeatureStore(root)


def sql(db: Path, statement: str, params: Any = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        with conn:
            return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def insert_orders(db: Path, rows: list[tuple[Any, ...]]) -> None:
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", rows)
    finally:
        conn.close()


def update_order(db: Path, order_id: int, updated_at: str, **values: Any) -> None:
    assignments = ", ".join(f"{column} = :{column}" for column in values)
    sql(
        db,
        f"UPDATE orders SET {assignments}, updated_at = :updated_at WHERE order_id = :order_id",
        {**values, "updated_at": updated_at, "order_id": order_id},
    )


def snapshot(
    store: headwater.FeatureStore, views: tuple[str, ...] = VIEWS
) -> dict[str, list[dict[str, Any]]]:
    return {view: offline_rows(store, view) for view in views}


def assert_same(
    got: dict[str, list[dict[str, Any]]], want: dict[str, list[dict[str, Any]]]
) -> None:
    """Equal offline contents; on failure, name the rows only one side has."""
    assert sorted(got) == sorted(want)
    for view in want:
        extra = [row for row in got[view] if row not in want[view]]
        missing = [row for row in want[view] if row not in got[view]]
        assert not extra and not missing, f"{view}: extra rows {extra}, missing rows {missing}"
        assert got[view] == want[view], view


def from_scratch(root: Path, db: Path) -> dict[str, list[dict[str, Any]]]:
    """The aggregation views of a new project computed once from the whole table."""
    store = make_store(root, db)
    try:
        store.apply()
        store.run(list(AGGREGATES), full_refresh=True)
        return snapshot(store, AGGREGATES)
    finally:
        store.close()


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment).replace(tzinfo=UTC)


def by_key(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: (row["user_id"], row["event_timestamp"]))


def expected_daily(db: Path) -> list[dict[str, Any]]:
    """``user_daily`` computed by SQLite itself."""
    rows = sql(
        db,
        "SELECT user_id, date(created_at, '+1 day'), sum(amount), count(*), max(amount) "
        "FROM orders GROUP BY user_id, date(created_at)",
    )
    return by_key(
        [
            {
                "amount_max": top,
                "amount_sum": total,
                "event_timestamp": parse(end),
                "orders": count,
                "user_id": user,
            }
            for user, end, total, count, top in rows
        ]
    )


def expected_lifetime(db: Path) -> list[dict[str, Any]]:
    """``user_lifetime`` computed by SQLite itself (running totals per user and time)."""
    rows = sql(
        db,
        "SELECT DISTINCT user_id, created_at, count(*) OVER w, sum(amount) OVER w FROM orders "
        "WINDOW w AS (PARTITION BY user_id ORDER BY created_at "
        "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
    )
    return by_key(
        [
            {"amount_sum": total, "event_timestamp": parse(ts), "orders": count, "user_id": user}
            for user, ts, count, total in rows
        ]
    )


def fail_once(monkeypatch: pytest.MonkeyPatch, owner: type, name: str, error: Exception) -> None:
    """Make ``owner.name`` raise ``error`` on its next call only."""
    original: Callable[..., Any] = getattr(owner, name)
    fired: list[bool] = []

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not fired:
            fired.append(True)
            raise error
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def rows_in(results: list[Any]) -> dict[str, int]:
    return {result.view: result.rows_in for result in results}


def checkpoint(store: headwater.FeatureStore, view: str) -> Any:
    return store.registry.get_checkpoint(f"cursor:{view}")


def apply_changes(db: Path) -> None:
    """An amount update, moves across days and users, and an insert."""
    update_order(db, 2, cursor(20), amount=6.5)
    update_order(db, 3, cursor(21), created_at=text(D3 + timedelta(hours=10)))
    update_order(db, 6, cursor(22), user_id=2)
    insert_orders(db, [(9, 4, 8.0, text(D1 + timedelta(hours=6)), cursor(23))])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "app.db"
    sql(path, ORDERS_DDL)
    insert_orders(path, BASE_ORDERS)
    return path


@pytest.fixture
def orders_store(tmp_path: Path, db: Path) -> Iterator[headwater.FeatureStore]:
    store = make_store(tmp_path / "project", db)
    store.apply()
    yield store
    store.close()


@pytest.fixture
def uninterrupted(tmp_path: Path, db: Path) -> Iterator[headwater.FeatureStore]:
    """A second project over the same file whose runs never fail."""
    store = make_store(tmp_path / "uninterrupted", db)
    store.apply()
    yield store
    store.close()


# ---------------------------------------------------------------------- full refresh
TYPED_DEFS = """
from headwater import Entity, FeatureView, SqliteSource

item = Entity("item", join_keys=["id"])
typed = SqliteSource("typed", path=DB_PATH, table="main.typed", timestamp_field="event_at")
typed_view = FeatureView(
    "typed_view",
    entity=item,
    source=typed,
    features={
        "n": "n",
        "ratio": "ratio",
        "price": "price",
        "label": "label",
        "flag": "flag",
        "event_at": "event_at",
    },
)
"""


def test_full_refresh_of_a_table_keeps_values_and_types(tmp_path: Path) -> None:
    path = tmp_path / "typed.db"
    sql(
        path,
        "CREATE TABLE typed (id INTEGER PRIMARY KEY, n BIGINT, ratio DOUBLE, "
        "price DECIMAL(10, 2), label TEXT, flag BOOLEAN, event_at TIMESTAMP NOT NULL)",
    )
    sql(
        path,
        "INSERT INTO typed VALUES (1, 9007199254740993, 0.1, 12.5, 'héllo', 1, "
        "'2024-03-01 10:00:00'), (2, NULL, NULL, NULL, NULL, NULL, '2024-03-01T11:30:00+02:00')",
    )
    store = make_store(tmp_path / "project", path, TYPED_DEFS)
    store.apply()
    (result,) = store.run()
    assert (result.rows_in, result.inserted) == (2, 2)
    table = store.offline.dataset("typed_view").to_table()
    types = {field.name: field.type for field in table.schema}
    assert types["id"] == pa.int64()
    assert types["n"] == pa.int64()
    assert types["ratio"] == pa.float64()
    assert types["price"] == pa.float64()  # NUMERIC affinity holds integers and reals
    assert types["label"] == pa.string()
    assert types["flag"] == pa.bool_()
    rows = sorted(offline_rows(store, "typed_view"), key=lambda row: row["id"])
    assert rows == [
        {
            "event_at": "2024-03-01 10:00:00",
            "event_timestamp": D1 + timedelta(hours=10),
            "flag": True,
            "id": 1,
            "label": "héllo",
            "n": 9007199254740993,
            "price": 12.5,
            "ratio": 0.1,
        },
        {
            "event_at": "2024-03-01T11:30:00+02:00",
            "event_timestamp": D1 + timedelta(hours=9, minutes=30),
            "flag": None,
            "id": 2,
            "label": None,
            "n": None,
            "price": None,
            "ratio": None,
        },
    ]
    store.close()


QUERY_DEFS = """
from headwater import Entity, FeatureView, SqliteSource

order = Entity("order", join_keys=["order_id"])
picked = SqliteSource(
    "picked",
    path=DB_PATH,
    query="SELECT * FROM orders WHERE user_id = :user AND amount >= :min_amount",
    params={"user": 1, "min_amount": 6},
    timestamp_field="created_at",
    cursor_field="updated_at",
    primary_key=["order_id"],
)
picked_view = FeatureView("picked_view", entity=order, source=picked, features={"amount": "amount"})
"""


def test_query_with_params_reads_incrementally(tmp_path: Path, db: Path) -> None:
    store = make_store(tmp_path / "project", db, QUERY_DEFS)
    store.apply()
    assert [r.rows_in for r in store.run()] == [2]  # orders 1 and 3
    update_order(db, 2, cursor(30), amount=9.0)  # now at least min_amount
    assert [r.rows_in for r in store.run()] == [2]  # order 3 at the mark, and order 2
    picked = offline_rows(store, "picked_view")
    # Compared as numbers: query columns are typed apart (see the xfail test below).
    assert sorted((int(r["order_id"]), float(r["amount"])) for r in picked) == [
        (1, 10.0),
        (2, 9.0),
        (3, 7.25),
    ]
    assert checkpoint(store, "picked_view") == {"type": "str", "value": cursor(30)}
    store.close()


@pytest.mark.xfail(
    reason="SqliteSource(query=...) types every column as text: declared types are read only "
    "for table= sources",
    strict=True,
)
def test_query_columns_keep_their_types(tmp_path: Path, db: Path) -> None:
    store = make_store(tmp_path / "project", db, QUERY_DEFS)
    store.apply()
    store.run()
    types = {f.name: f.type for f in store.offline.dataset("picked_view").schema}
    assert (types["order_id"], types["amount"]) == (pa.int64(), pa.float64())


# ---------------------------------------------------------------------- incremental
def test_incremental_reads_by_cursor_and_keeps_the_boundary(
    tmp_path: Path, db: Path, orders_store: headwater.FeatureStore
) -> None:
    store = orders_store
    assert rows_in(store.run()) == dict.fromkeys(VIEWS, 6)
    for view in VIEWS:
        assert checkpoint(store, view) == {"type": "str", "value": MARK}
    initial = snapshot(store)

    second = store.run()
    assert rows_in(second) == dict.fromkeys(VIEWS, 2)
    assert all((r.inserted, r.updated, r.deleted) == (0, 0, 0) for r in second)
    assert snapshot(store) == initial

    # Written after the run with a cursor equal to the stored mark: must not be lost.
    insert_orders(db, [(7, 2, 4.0, text(D2 + timedelta(hours=11)), MARK)])
    assert rows_in(store.run()) == dict.fromkeys(VIEWS, 3)
    facts = {row["order_id"]: row for row in offline_rows(store, "order_facts")}
    assert facts[7]["amount"] == 4.0

    insert_orders(db, [(8, 1, 2.0, text(D3 + timedelta(hours=9)), cursor(11))])
    update_order(db, 1, cursor(11), amount=12.0)
    assert rows_in(store.run()) == dict.fromkeys(VIEWS, 5)
    facts = {row["order_id"]: row for row in offline_rows(store, "order_facts")}
    assert len(facts) == 8
    assert facts[1]["amount"] == 12.0
    for view in VIEWS:
        assert checkpoint(store, view) == {"type": "str", "value": cursor(11)}
    assert by_key(offline_rows(store, "user_daily")) == expected_daily(db)
    assert by_key(offline_rows(store, "user_lifetime")) == expected_lifetime(db)
    incremental = snapshot(store)

    # A full refresh rebuilds each view into a new table version: the same rows, all new.
    refreshed = store.run(full_refresh=True)
    assert rows_in(refreshed) == dict.fromkeys(VIEWS, 8)
    assert all(
        (r.inserted, r.updated, r.deleted) == (len(incremental[r.view]), 0, 0) for r in refreshed
    )
    assert snapshot(store) == incremental

    for view in VIEWS:
        history = store.registry.runs(view=view)
        assert [(r.status, r.rows_in) for r in history] == [
            ("success", 8),
            ("success", 5),
            ("success", 3),
            ("success", 2),
            ("success", 6),
        ], view


def test_aggregations_over_updates_and_moves_equal_a_full_computation(
    tmp_path: Path, db: Path, orders_store: headwater.FeatureStore
) -> None:
    store = orders_store
    store.run()
    apply_changes(db)
    results = store.run()
    assert {r.view: r.status for r in results} == dict.fromkeys(VIEWS, "success")
    daily = {(r["user_id"], r["event_timestamp"]) for r in offline_rows(store, "user_daily")}
    assert (1, D3) not in daily, "the window order 3 left is empty and must be deleted"
    assert not [key for key in daily if key[0] == 3]
    assert by_key(offline_rows(store, "user_daily")) == expected_daily(db)
    assert by_key(offline_rows(store, "user_lifetime")) == expected_lifetime(db)
    assert_same(snapshot(store, AGGREGATES), from_scratch(tmp_path / "scratch1", db))

    tick = cursor(30)
    update_order(db, 4, tick, created_at=text(D1 + timedelta(hours=1)), amount=21.0)
    update_order(db, 9, tick, created_at=text(D1 - timedelta(hours=1)))
    update_order(db, 5, tick, user_id=1, created_at=text(D1 + timedelta(hours=9)))
    insert_orders(db, [(10, 2, 0.5, text(D2), tick)])
    store.run()
    assert by_key(offline_rows(store, "user_daily")) == expected_daily(db)
    assert by_key(offline_rows(store, "user_lifetime")) == expected_lifetime(db)
    assert_same(snapshot(store, AGGREGATES), from_scratch(tmp_path / "scratch2", db))


def test_failed_checkpoint_commit_keeps_the_old_mark_and_the_rerun_converges(
    tmp_path: Path,
    db: Path,
    orders_store: headwater.FeatureStore,
    uninterrupted: headwater.FeatureStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = orders_store
    store.run()
    uninterrupted.run()
    apply_changes(db)
    uninterrupted.run()
    for view in VIEWS:
        before = checkpoint(store, view)
        fail_once(monkeypatch, Registry, "set_checkpoint", RuntimeError("registry went away"))
        with pytest.raises(RunFailed, match="registry went away"):
            store.run([view])
        assert checkpoint(store, view) == before
        store.run([view])
        assert checkpoint(store, view) == {"type": "str", "value": cursor(23)}
        assert [r.status for r in store.registry.runs(view=view)] == [
            "success",
            "failed",
            "success",
        ]
    assert_same(snapshot(store), snapshot(uninterrupted))


def test_failed_offline_write_is_retried_to_the_same_result(
    tmp_path: Path,
    db: Path,
    orders_store: headwater.FeatureStore,
    uninterrupted: headwater.FeatureStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = orders_store
    store.run()
    uninterrupted.run()
    apply_changes(db)
    uninterrupted.run()
    for view in VIEWS:
        before = checkpoint(store, view)
        fail_once(monkeypatch, DeltaOfflineStore, "write", OSError("disk full"))
        with pytest.raises(RunFailed, match="disk full"):
            store.run([view])
        assert checkpoint(store, view) == before
        store.run([view])
    assert_same(snapshot(store), snapshot(uninterrupted))


# ---------------------------------------------------------------------- errors
def test_unknown_table_names_the_source(tmp_path: Path, db: Path) -> None:
    store = make_store(
        tmp_path / "project", db, ORDER_DEFS.replace('table="orders"', 'table="nope"')
    )
    with pytest.raises(DefinitionError) as caught:
        store.apply()
    assert "'orders'" in str(caught.value) and "nope" in str(caught.value)


def test_unknown_cursor_field_names_the_source(tmp_path: Path, db: Path) -> None:
    defs = ORDER_DEFS.replace('cursor_field="updated_at"', 'cursor_field="changed_at"')
    store = make_store(tmp_path / "project", db, defs)
    with pytest.raises(DefinitionError) as at_apply:
        store.apply()
    assert "cursor_field names 'changed_at'" in str(at_apply.value)
    # A run without apply meets the same check in the connector.
    with pytest.raises(DefinitionError) as caught:
        store.run(["order_facts"])
    assert "'orders'" in str(caught.value) and "'changed_at'" in str(caught.value)
    (failed,) = store.registry.runs(view="order_facts")
    assert failed.status == "failed"
    assert checkpoint(store, "order_facts") is None
    store.close()


def test_missing_database_file_names_the_source(tmp_path: Path) -> None:
    store = make_store(tmp_path / "project", tmp_path / "missing.db")
    with pytest.raises(DefinitionError) as caught:
        store.apply()
    assert "'orders'" in str(caught.value) and "missing.db" in str(caught.value)
