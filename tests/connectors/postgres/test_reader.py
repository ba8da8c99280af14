"""PostgresSource against the real server: types, queries, incremental cursors, crash safety."""

from __future__ import annotations

import shutil
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
from headwater.connectors.tables import decode_cursor
from headwater.errors import ConnectionFailed, DefinitionError, RunFailed
from headwater.stores.offline.delta import DeltaOfflineStore
from headwater.stores.registry import Registry
from tests.helpers import offline_rows

pytestmark = pytest.mark.postgres

DAY = timedelta(days=1)
D1 = datetime(2024, 3, 1, tzinfo=UTC)
D2, D3, D4 = D1 + DAY, D1 + 2 * DAY, D1 + 3 * DAY
U0 = datetime(2024, 4, 1, tzinfo=UTC)
"""Base of the ``updated_at`` cursor values (all after every ``created_at``)."""

MARK = U0 + timedelta(seconds=5, microseconds=123_456)
"""The greatest cursor of ``BASE_ORDERS``: shared by two rows, with microseconds."""

ORDERS_DDL = """
CREATE TABLE public.orders (
    order_id bigint PRIMARY KEY,
    user_id integer NOT NULL,
    amount numeric(10, 2),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
)
"""

# (order_id, user_id, amount, created_at, updated_at)
BASE_ORDERS = [
    (1, 1, Decimal("10.00"), D1 + timedelta(hours=9), U0 + timedelta(seconds=1)),
    (2, 1, Decimal("5.50"), D1 + timedelta(hours=17, minutes=30), U0 + timedelta(seconds=2)),
    (3, 1, Decimal("7.25"), D2 + timedelta(hours=8), U0 + timedelta(seconds=3)),
    (4, 2, Decimal("20.00"), D1 + timedelta(hours=12), U0 + timedelta(seconds=4)),
    (5, 2, Decimal("1.00"), D4 - timedelta(milliseconds=1), MARK),
    (6, 3, Decimal("3.00"), D2 + timedelta(hours=10), MARK),
]

ORDER_DEFS = """
from headwater import Count, Entity, FeatureView, Max, PostgresSource, Sum, Tumbling

user = Entity("user", join_keys=["user_id"])
order = Entity("order", join_keys=["order_id"])

orders = PostgresSource(
    "orders",
    connection="app_db",
    table="public.orders",
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
def make_store(root: Path, dsn: str, definitions: str, **connection: Any) -> headwater.FeatureStore:
    """A project in ``root`` whose ``app_db`` connection points at ``dsn`` (plus the
    ``connection`` settings given, e.g. ``statement_timeout_ms=100``)."""
    root.mkdir(parents=True, exist_ok=True)
    app_db = {"type": "postgres", "dsn": dsn, **connection}
    config = {"project": "t", "connections": {"app_db": app_db}}
    (root / "headwater.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (root / "defs.py").write_text(textwrap.dedent(definitions).lstrip())
    return headwater.FeatureStore(root)


def sql(dsn: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def create_orders(dsn: str, rows: list[tuple[Any, ...]]) -> None:
    sql(dsn, ORDERS_DDL)
    insert_orders(dsn, rows)


def insert_orders(dsn: str, rows: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO public.orders (order_id, user_id, amount, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s)",
            rows,
        )


def update_order(dsn: str, order_id: int, updated_at: datetime, **values: Any) -> None:
    assignments = ", ".join(f"{column} = %({column})s" for column in values)
    sql(
        dsn,
        f"UPDATE public.orders SET {assignments}, updated_at = %(updated_at)s "
        "WHERE order_id = %(order_id)s",
        {**values, "updated_at": updated_at, "order_id": order_id},
    )


def snapshot(
    store: headwater.FeatureStore, views: tuple[str, ...] = VIEWS
) -> dict[str, list[dict[str, Any]]]:
    return {view: offline_rows(store, view) for view in views}


def from_scratch(root: Path, dsn: str) -> dict[str, list[dict[str, Any]]]:
    """The aggregation views of a new project computed once from the whole table."""
    store = make_store(root, dsn, ORDER_DEFS)
    try:
        store.apply()
        store.run(list(AGGREGATES), full_refresh=True)
        return snapshot(store, AGGREGATES)
    finally:
        store.close()


def expected_daily(dsn: str) -> list[dict[str, Any]]:
    """``user_daily`` computed by PostgreSQL itself."""
    rows = sql(
        dsn,
        "SELECT user_id, date_trunc('day', created_at AT TIME ZONE 'UTC') + interval '1 day', "
        "sum(amount), count(*), max(amount) FROM public.orders GROUP BY 1, 2",
    )
    return sorted_dicts(
        {
            "user_id": user,
            "event_timestamp": end.replace(tzinfo=UTC),
            "amount_sum": total,
            "orders": count,
            "amount_max": top,
        }
        for user, end, total, count, top in rows
    )


def expected_lifetime(dsn: str) -> list[dict[str, Any]]:
    """``user_lifetime`` computed by PostgreSQL itself (running totals per user and time)."""
    rows = sql(
        dsn,
        "SELECT DISTINCT user_id, created_at, count(*) OVER w, sum(amount) OVER w "
        "FROM public.orders WINDOW w AS (PARTITION BY user_id ORDER BY created_at "
        "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
    )
    return sorted_dicts(
        {"user_id": user, "event_timestamp": ts, "orders": count, "amount_sum": total}
        for user, ts, count, total in rows
    )


def sorted_dicts(rows: Any) -> list[dict[str, Any]]:
    listed = [dict(sorted(row.items())) for row in rows]
    return sorted(listed, key=lambda row: [str(value) for value in row.values()])


def normalised(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted_dicts(rows)


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


def fail_once(
    monkeypatch: pytest.MonkeyPatch, owner: type, name: str, error: Exception
) -> Callable[[], bool]:
    """Make ``owner.name`` raise ``error`` on its next call only; returns 'has it fired?'."""
    original = getattr(owner, name)
    fired: list[bool] = []

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not fired:
            fired.append(True)
            raise error
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return lambda: bool(fired)


def assert_unique_keys(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    seen = [tuple(row[k] for k in keys) for row in rows]
    assert len(seen) == len(set(seen)), f"duplicate offline keys: {seen}"


def rows_in(results: list[Any]) -> dict[str, int]:
    return {result.view: result.rows_in for result in results}


@pytest.fixture
def orders_store(tmp_path: Path, pg_dsn: str) -> Iterator[headwater.FeatureStore]:
    create_orders(pg_dsn, BASE_ORDERS)
    store = make_store(tmp_path / "project", pg_dsn, ORDER_DEFS)
    store.apply()
    yield store
    store.close()


# ---------------------------------------------------------------------- full refresh
TYPED_DEFS = """
from headwater import Entity, FeatureView, PostgresSource

item = Entity("item", join_keys=["id"])
typed = PostgresSource(
    "typed", connection="app_db", table="public.typed", timestamp_field="event_at"
)
typed_view = FeatureView(
    "typed_view",
    entity=item,
    source=typed,
    features={
        "n_int": "n_int",
        "n_big": "n_big",
        "price": "price",
        "ratio": "ratio",
        "label": "label",
        "flag": "flag",
        "day": "day",
        "local_ts": "local_ts",
        "event_at": "event_at",
        "event_hour": "hour(event_at)",
        "any_numeric": "any_numeric",
        "attrs": "attrs",
    },
)
"""


def test_full_refresh_of_a_table_keeps_values_and_types(tmp_path: Path, pg_dsn: str) -> None:
    (database,) = sql(pg_dsn, "SELECT current_database()")[0]
    # A non-UTC database time zone must not leak into the values read.
    sql(pg_dsn, f"ALTER DATABASE \"{database}\" SET timezone TO 'America/New_York'")
    sql(
        pg_dsn,
        """
        CREATE TABLE public.typed (
            id bigint PRIMARY KEY,
            n_int integer,
            n_big bigint,
            price numeric(10, 2),
            ratio double precision,
            label text,
            flag boolean,
            day date,
            local_ts timestamp,
            event_at timestamptz NOT NULL,
            any_numeric numeric,
            attrs jsonb
        )
        """,
    )
    sql(
        pg_dsn,
        "INSERT INTO public.typed VALUES "
        "(1, 42, 9007199254740993, 1234.56, 0.1, 'héllo, \"x\"', true, '2024-02-29', "
        "'2024-03-01 12:34:56.789', '2024-03-01 12:00:00+02:00', 1234.5678, "
        '\'{"a": [1, "x"]}\'), '
        "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2024-03-01 23:30:00-05:00', "
        "NULL, NULL)",
    )
    store = make_store(tmp_path, pg_dsn, TYPED_DEFS)
    store.apply()
    (result,) = store.run()
    assert (result.status, result.rows_in, result.inserted) == ("success", 2, 2)

    table = store.offline.dataset("typed_view").to_table()
    types = {field.name: field.type for field in table.schema}
    assert types["id"] == pa.int64()
    assert types["n_int"] == pa.int32()
    assert types["n_big"] == pa.int64()
    assert types["price"] == pa.decimal128(10, 2)
    assert types["ratio"] == pa.float64()
    assert types["label"] == pa.string()
    assert types["flag"] == pa.bool_()
    assert types["day"] == pa.date32()
    assert types["local_ts"] == pa.timestamp("us")
    assert types["event_at"] == pa.timestamp("us", tz="UTC")
    assert types["event_timestamp"] == pa.timestamp("us", tz="UTC")
    assert types["any_numeric"] == pa.decimal128(38, 18)  # numeric without a precision
    assert types["attrs"] == pa.string()  # json / jsonb arrive as JSON text

    rows = {row["id"]: row for row in table.to_pylist()}
    assert rows[1] == {
        "id": 1,
        "event_timestamp": datetime(2024, 3, 1, 10, tzinfo=UTC),
        "n_int": 42,
        "n_big": 9007199254740993,
        "price": Decimal("1234.56"),
        "ratio": 0.1,
        "label": 'héllo, "x"',
        "flag": True,
        "day": date(2024, 2, 29),
        "local_ts": datetime(2024, 3, 1, 12, 34, 56, 789_000),
        "event_at": datetime(2024, 3, 1, 10, tzinfo=UTC),
        "event_hour": 10,
        "any_numeric": Decimal("1234.5678"),
        "attrs": '{"a": [1, "x"]}',
        "event_date": date(2024, 3, 1),
        "_seq": rows[1]["_seq"],
    }
    assert rows[2]["event_timestamp"] == datetime(2024, 3, 2, 4, 30, tzinfo=UTC)
    assert rows[2]["event_date"] == date(2024, 3, 2)
    assert rows[2]["event_hour"] == 4
    nullable = ("n_int", "n_big", "price", "ratio", "label", "flag", "day", "local_ts", "attrs")
    for column in (*nullable, "any_numeric"):
        assert rows[2][column] is None, column

    # A full-refresh source is read whole every time; an unchanged table changes nothing.
    (again,) = store.run()
    assert (again.rows_in, again.inserted, again.updated, again.deleted) == (2, 0, 0, 0)
    assert store.registry.get_checkpoint("cursor:typed_view") is None
    history = store.registry.runs(view="typed_view")
    assert [(r.kind, r.status, r.rows_in) for r in history] == [
        ("run", "success", 2),
        ("run", "success", 2),
    ]
    store.close()


QUERY_DEFS = """
from headwater import Entity, FeatureView, PostgresSource

order = Entity("order", join_keys=["order_id"])
picked = PostgresSource(
    "picked",
    connection="app_db",
    query=(
        "SELECT order_id, amount, note, created_at FROM public.notes "
        "WHERE note = %(note)s AND amount >= %(min_amount)s"
    ),
    params={"note": NOTE, "min_amount": 5},
    timestamp_field="created_at",
)
picked_view = FeatureView(
    "picked_view", entity=order, source=picked, features={"amount": "amount", "note": "note"}
)
"""

# Quotes and a percent sign: formatting this into the SQL text would break the query.
NOTE = 'it\'s "quoted"; 100%s -- not SQL'


def test_full_refresh_of_a_query_binds_params(tmp_path: Path, pg_dsn: str) -> None:
    sql(
        pg_dsn,
        "CREATE TABLE public.notes (order_id bigint PRIMARY KEY, amount numeric(10, 2), "
        "note text, created_at timestamptz NOT NULL)",
    )
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.cursor().executemany(
            "INSERT INTO public.notes VALUES (%s, %s, %s, %s)",
            [
                (1, Decimal("10.00"), NOTE, D1),
                (2, Decimal("1.00"), NOTE, D1),  # below min_amount
                (3, Decimal("50.00"), "other", D1),  # another note
                (4, Decimal("5.00"), NOTE, D2),
            ],
        )
    store = make_store(tmp_path, pg_dsn, f"NOTE = {NOTE!r}\n" + textwrap.dedent(QUERY_DEFS))
    store.apply()
    (result,) = store.run()
    assert result.rows_in == 2
    picked = sorted(offline_rows(store, "picked_view"), key=lambda row: row["order_id"])
    assert picked == [
        {"amount": Decimal("10.00"), "event_timestamp": D1, "note": NOTE, "order_id": 1},
        {"amount": Decimal("5.00"), "event_timestamp": D2, "note": NOTE, "order_id": 4},
    ]
    assert sql(pg_dsn, "SELECT count(*) FROM public.notes")[0][0] == 4
    store.close()


LIKE_DEFS = """
from headwater import Entity, FeatureView, PostgresSource

order = Entity("order", join_keys=["order_id"])
kept = PostgresSource(
    "kept",
    connection="app_db",
    query="SELECT * FROM public.notes WHERE note LIKE 'keep%'",
    timestamp_field="created_at",
    cursor_field="updated_at",
    primary_key=["order_id"],
)
kept_view = FeatureView("kept_view", entity=order, source=kept, features={"note": "note"})
"""


def test_incremental_query_without_params_keeps_a_literal_percent(
    tmp_path: Path, pg_dsn: str
) -> None:
    sql(
        pg_dsn,
        "CREATE TABLE public.notes (order_id bigint PRIMARY KEY, note text, "
        "created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)",
    )
    insert = "INSERT INTO public.notes VALUES (%s, %s, %s, %s)"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.cursor().executemany(insert, [(1, "keep 1", D1, U0), (2, "drop", D1, U0)])
    store = make_store(tmp_path, pg_dsn, LIKE_DEFS)
    store.apply()
    assert [r.rows_in for r in store.run()] == [1]
    sql(pg_dsn, insert, (3, "keep 3", D2, U0 + timedelta(seconds=1)))
    assert [r.rows_in for r in store.run()] == [2]  # the boundary row and the new one
    assert [r["order_id"] for r in offline_rows(store, "kept_view")] == [1, 3]
    store.close()


# ---------------------------------------------------------------------- incremental
def test_incremental_reads_by_cursor_and_keeps_the_boundary(
    tmp_path: Path, pg_dsn: str, orders_store: headwater.FeatureStore
) -> None:
    store = orders_store
    first = store.run()
    assert rows_in(first) == dict.fromkeys(VIEWS, 6)
    for view in VIEWS:
        checkpoint = store.registry.get_checkpoint(f"cursor:{view}")
        assert decode_cursor(checkpoint) == MARK, view
    initial = snapshot(store)
    assert len(initial["order_facts"]) == 6

    # Nothing changed: only the rows at the high-water mark are read again, and nothing moves.
    second = store.run()
    assert rows_in(second) == dict.fromkeys(VIEWS, 2)
    assert all((r.inserted, r.updated, r.deleted) == (0, 0, 0) for r in second)
    assert snapshot(store) == initial

    # Committed after the run with a cursor equal to the stored mark: must not be lost.
    insert_orders(pg_dsn, [(7, 2, Decimal("4.00"), D2 + timedelta(hours=11), MARK)])
    third = store.run()
    assert rows_in(third) == dict.fromkeys(VIEWS, 3)
    facts = {row["order_id"]: row for row in offline_rows(store, "order_facts")}
    assert facts[7]["amount"] == Decimal("4.00")
    assert facts[7]["event_timestamp"] == D2 + timedelta(hours=11)
    daily = {(r["user_id"], r["event_timestamp"]): r for r in offline_rows(store, "user_daily")}
    assert daily[(2, D3)]["orders"] == 1
    assert daily[(2, D3)]["amount_sum"] == Decimal("4.00")
    for view in VIEWS:
        assert decode_cursor(store.registry.get_checkpoint(f"cursor:{view}")) == MARK

    # A greater cursor: a new order, and an update replacing an order's old value.
    newest = U0 + timedelta(seconds=11)
    insert_orders(pg_dsn, [(8, 1, Decimal("2.00"), D3 + timedelta(hours=9), newest)])
    update_order(pg_dsn, 1, newest, amount=Decimal("12.00"))
    fourth = store.run()
    assert rows_in(fourth) == dict.fromkeys(VIEWS, 5)  # 3 rows at the old mark + 2 newer
    facts = {row["order_id"]: row for row in offline_rows(store, "order_facts")}
    assert len(facts) == 8
    assert facts[1]["amount"] == Decimal("12.00")
    assert facts[8]["amount"] == Decimal("2.00")
    daily = {(r["user_id"], r["event_timestamp"]): r for r in offline_rows(store, "user_daily")}
    assert daily[(1, D2)]["amount_sum"] == Decimal("17.50")  # 12.00 + 5.50
    assert daily[(1, D2)]["amount_max"] == Decimal("12.00")
    for view in VIEWS:
        assert decode_cursor(store.registry.get_checkpoint(f"cursor:{view}")) == newest
    assert normalised(offline_rows(store, "user_daily")) == expected_daily(pg_dsn)
    assert normalised(offline_rows(store, "user_lifetime")) == expected_lifetime(pg_dsn)
    incremental = snapshot(store)

    # A full refresh reads the whole table again into a new table version: the same rows.
    refreshed = store.run(full_refresh=True)
    assert rows_in(refreshed) == dict.fromkeys(VIEWS, 8)
    assert all(
        (r.inserted, r.updated, r.deleted) == (len(incremental[r.view]), 0, 0) for r in refreshed
    )
    assert snapshot(store) == incremental
    for view in VIEWS:
        assert decode_cursor(store.registry.get_checkpoint(f"cursor:{view}")) == newest

    for view in VIEWS:
        history = store.registry.runs(view=view)
        assert [(r.status, r.rows_in) for r in history] == [
            ("success", 8),
            ("success", 5),
            ("success", 3),
            ("success", 2),
            ("success", 6),
        ], view
        assert [r.details["full_refresh"] for r in history] == [True] + [False] * 4
        assert all(r.ended_at is not None and r.error is None for r in history)


def test_aggregations_over_updates_and_moves_equal_a_full_computation(
    tmp_path: Path, pg_dsn: str, orders_store: headwater.FeatureStore
) -> None:
    store = orders_store
    store.run()
    daily = {(r["user_id"], r["event_timestamp"]) for r in offline_rows(store, "user_daily")}
    assert (1, D3) in daily and (3, D3) in daily

    # Round 1: an amount changes; order 3 (user 1's only order of Mar 2) moves to Mar 3;
    # order 6 (user 3's only order) moves to user 2; a new user appears.
    update_order(pg_dsn, 2, U0 + timedelta(seconds=20), amount=Decimal("6.50"))
    update_order(pg_dsn, 3, U0 + timedelta(seconds=21), created_at=D3 + timedelta(hours=10))
    update_order(pg_dsn, 6, U0 + timedelta(seconds=22), user_id=2)
    insert_orders(
        pg_dsn, [(9, 4, Decimal("8.00"), D1 + timedelta(hours=6), U0 + timedelta(seconds=23))]
    )
    results = store.run()
    assert {r.view: r.status for r in results} == dict.fromkeys(VIEWS, "success")
    got = snapshot(store)
    daily = {(r["user_id"], r["event_timestamp"]) for r in got["user_daily"]}
    assert (1, D3) not in daily, "the window order 3 left is empty and must be deleted"
    assert not [r for r in got["user_daily"] if r["user_id"] == 3]
    assert not [r for r in got["user_lifetime"] if r["user_id"] == 3]
    assert (1, D4) in daily and (2, D3) in daily and (4, D2) in daily
    deleted = {r.view: r.deleted for r in results}
    assert deleted["user_daily"] >= 2 and deleted["user_lifetime"] >= 1
    assert normalised(got["user_daily"]) == expected_daily(pg_dsn)
    assert normalised(got["user_lifetime"]) == expected_lifetime(pg_dsn)
    assert_same(snapshot(store, AGGREGATES), from_scratch(tmp_path / "scratch1", pg_dsn))

    # Round 2: moves within a window and to an earlier day, plus an update and an insert
    # sharing one cursor value.
    tick = U0 + timedelta(seconds=30)
    update_order(pg_dsn, 4, tick, created_at=D1 + timedelta(hours=1), amount=Decimal("21.00"))
    update_order(pg_dsn, 9, tick, created_at=D1 - timedelta(hours=1))
    update_order(pg_dsn, 5, tick, user_id=1, created_at=D1 + timedelta(hours=9))
    insert_orders(pg_dsn, [(10, 2, Decimal("0.50"), D2, tick)])
    store.run()
    got = snapshot(store)
    assert normalised(got["user_daily"]) == expected_daily(pg_dsn)
    assert normalised(got["user_lifetime"]) == expected_lifetime(pg_dsn)
    assert_same(snapshot(store, AGGREGATES), from_scratch(tmp_path / "scratch2", pg_dsn))
    assert_unique_keys(got["user_daily"], ("user_id", "event_timestamp"))
    assert_unique_keys(got["user_lifetime"], ("user_id", "event_timestamp"))


def test_missing_landing_table_falls_back_to_a_full_read(
    tmp_path: Path, pg_dsn: str, orders_store: headwater.FeatureStore
) -> None:
    store = orders_store
    store.run(["user_daily"])
    shutil.rmtree(store.config.resolve("data/offline/_landing/user_daily"))
    insert_orders(
        pg_dsn, [(7, 1, Decimal("1.00"), D1 + timedelta(hours=20), U0 + timedelta(seconds=9))]
    )
    (result,) = store.run(["user_daily"])
    assert result.rows_in == 7
    assert normalised(offline_rows(store, "user_daily")) == expected_daily(pg_dsn)


def apply_changes(dsn: str) -> None:
    """Updates, moves across days and users, and an insert: work for every view."""
    update_order(dsn, 2, U0 + timedelta(seconds=20), amount=Decimal("6.50"))
    update_order(dsn, 3, U0 + timedelta(seconds=21), created_at=D3 + timedelta(hours=10))
    update_order(dsn, 6, U0 + timedelta(seconds=22), user_id=2)
    insert_orders(
        dsn, [(9, 4, Decimal("8.00"), D1 + timedelta(hours=6), U0 + timedelta(seconds=23))]
    )


@pytest.fixture
def uninterrupted(tmp_path: Path, pg_dsn: str) -> Iterator[headwater.FeatureStore]:
    """A second project over the same table whose runs never fail."""
    store = make_store(tmp_path / "uninterrupted", pg_dsn, ORDER_DEFS)
    store.apply()
    yield store
    store.close()


def test_failed_checkpoint_commit_keeps_the_old_mark_and_the_rerun_converges(
    tmp_path: Path,
    pg_dsn: str,
    orders_store: headwater.FeatureStore,
    uninterrupted: headwater.FeatureStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = orders_store
    store.run()
    uninterrupted.run()
    apply_changes(pg_dsn)
    uninterrupted.run()
    for view in VIEWS:
        name = f"cursor:{view}"
        before = store.registry.get_checkpoint(name)
        fired = fail_once(
            monkeypatch, Registry, "set_checkpoint", RuntimeError("registry went away")
        )
        with pytest.raises(RunFailed, match="registry went away"):
            store.run([view])
        assert fired()
        assert store.registry.get_checkpoint(name) == before, view
        if view == "order_facts":  # the data was written before the commit failed
            facts = {r["order_id"]: r for r in offline_rows(store, view)}
            assert facts[9]["amount"] == Decimal("8.00")
            assert facts[2]["amount"] == Decimal("6.50")
        (rerun,) = store.run([view])
        assert rerun.status == "success"
        assert decode_cursor(store.registry.get_checkpoint(name)) == U0 + timedelta(seconds=23)
        history = store.registry.runs(view=view)
        assert [r.status for r in history] == ["success", "failed", "success"]
        assert "registry went away" in (history[1].error or "")
    got = snapshot(store)
    assert_same(got, snapshot(uninterrupted))
    assert_unique_keys(got["order_facts"], ("order_id", "event_timestamp"))
    assert_unique_keys(got["user_daily"], ("user_id", "event_timestamp"))
    assert_unique_keys(got["user_lifetime"], ("user_id", "event_timestamp"))


def test_failed_offline_write_is_retried_to_the_same_result(
    tmp_path: Path,
    pg_dsn: str,
    orders_store: headwater.FeatureStore,
    uninterrupted: headwater.FeatureStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = orders_store
    store.run()
    uninterrupted.run()
    apply_changes(pg_dsn)
    uninterrupted.run()
    for view in VIEWS:
        before = store.registry.get_checkpoint(f"cursor:{view}")
        fail_once(monkeypatch, DeltaOfflineStore, "write", OSError("disk full"))
        with pytest.raises(RunFailed, match="disk full"):
            store.run([view])
        assert store.registry.get_checkpoint(f"cursor:{view}") == before
        store.run([view])
    assert_same(snapshot(store), snapshot(uninterrupted))


# ---------------------------------------------------------------------- errors
def test_unreachable_server_is_one_clear_line_without_the_password(tmp_path: Path) -> None:
    dsn = "postgresql://app:s3cret@127.0.0.1:1/nope"
    store = make_store(tmp_path, dsn, ORDER_DEFS)
    with pytest.raises(ConnectionFailed) as caught:
        store.apply()
    text = str(caught.value)
    assert "s3cret" not in text
    assert "postgresql://app:***@127.0.0.1:1/nope" in text
    assert "'orders'" in text
    assert "\n" not in text and "\t" not in text
    assert "refused" in text.lower()


def test_unknown_table_names_the_source(tmp_path: Path, pg_dsn: str) -> None:
    store = make_store(tmp_path, pg_dsn, ORDER_DEFS.replace("public.orders", "public.nope"))
    with pytest.raises(DefinitionError) as caught:
        store.apply()
    text = str(caught.value)
    assert "'orders'" in text
    assert "nope" in text
    assert "\n" not in caught.value.message


def test_unknown_cursor_field_names_the_source(tmp_path: Path, pg_dsn: str) -> None:
    create_orders(pg_dsn, BASE_ORDERS)
    defs = ORDER_DEFS.replace('cursor_field="updated_at"', 'cursor_field="changed_at"')
    store = make_store(tmp_path, pg_dsn, defs)
    with pytest.raises(DefinitionError) as at_apply:
        store.apply()
    assert "cursor_field names 'changed_at'" in str(at_apply.value)
    # A run without apply meets the same check in the connector.
    with pytest.raises(DefinitionError) as caught:
        store.run(["order_facts"])
    assert "'orders'" in str(caught.value) and "'changed_at'" in str(caught.value)
    (failed,) = store.registry.runs(view="order_facts")
    assert failed.status == "failed" and "changed_at" in (failed.error or "")
    assert store.registry.get_checkpoint("cursor:order_facts") is None
    store.close()


# ---------------------------------------------------------------------- modes: lag, end_value
LAG_DEFS = """
from headwater import Entity, FeatureView, PostgresSource

order = Entity("order", join_keys=["order_id"])
orders = PostgresSource(
    "orders",
    connection="app_db",
    table="public.orders",
    timestamp_field="created_at",
    cursor_field="updated_at",
    primary_key=["order_id"],
    OPTIONS
)
order_facts = FeatureView(
    "order_facts", entity=order, source=orders, features={"amount": "amount"}
)
"""


def order_ids(store: headwater.FeatureStore) -> list[int]:
    return sorted(row["order_id"] for row in offline_rows(store, "order_facts"))


def mark_of(store: headwater.FeatureStore) -> Any:
    return decode_cursor(store.registry.get_checkpoint("cursor:order_facts"))


def test_lag_rereads_rows_committed_late_below_the_mark(tmp_path: Path, pg_dsn: str) -> None:
    create_orders(pg_dsn, BASE_ORDERS)
    store = make_store(tmp_path, pg_dsn, LAG_DEFS.replace("OPTIONS", 'lag="1h",'))
    store.apply()
    assert [r.rows_in for r in store.run()] == [6]
    assert mark_of(store) == MARK

    # Transactions that started before the last run but committed after it: their cursor
    # values are below the mark. One is within the lag, the other beyond it.
    late, too_late = MARK - timedelta(minutes=59), MARK - timedelta(hours=1, seconds=1)
    insert_orders(
        pg_dsn, [(7, 1, Decimal("7.00"), D2, late), (8, 1, Decimal("8.00"), D2, too_late)]
    )
    (second,) = store.run()
    assert second.rows_in == 7  # every row from mark - 1h: the six known ones and order 7
    assert order_ids(store) == [1, 2, 3, 4, 5, 6, 7]
    assert (second.inserted, second.updated) == (1, 0)  # re-read rows change nothing
    assert mark_of(store) == MARK  # the mark is still the greatest value seen
    store.close()


NUMERIC_LAG_DEFS = """
from headwater import Entity, FeatureView, PostgresSource

item = Entity("item", join_keys=["id"])
events = PostgresSource(
    "events",
    connection="app_db",
    table="public.events",
    timestamp_field="at",
    cursor_field="version",
    primary_key=["id"],
    lag=10,
)
event_facts = FeatureView("event_facts", entity=item, source=events, features={"v": "version"})
"""


def test_a_numeric_cursor_takes_a_numeric_lag(tmp_path: Path, pg_dsn: str) -> None:
    sql(pg_dsn, "CREATE TABLE events (id int PRIMARY KEY, version bigint, at timestamptz)")
    insert = "INSERT INTO events VALUES (%s, %s, '2024-03-01')"
    for row in [(1, 90), (2, 100)]:
        sql(pg_dsn, insert, row)
    store = make_store(tmp_path, pg_dsn, NUMERIC_LAG_DEFS)
    store.apply()
    store.run()
    for row in [(3, 91), (4, 89)]:  # 100 - 10 = 90: 91 is within the lag, 89 is not
        sql(pg_dsn, insert, row)
    (second,) = store.run()
    assert second.rows_in == 3  # 90, 91, 100
    ids = sorted(row["id"] for row in offline_rows(store, "event_facts"))
    assert ids == [1, 2, 3]
    assert decode_cursor(store.registry.get_checkpoint("cursor:event_facts")) == 100
    store.close()


def test_end_value_bounds_a_backfill_and_the_mark(tmp_path: Path, pg_dsn: str) -> None:
    create_orders(pg_dsn, BASE_ORDERS)
    end = U0 + timedelta(seconds=4)
    options = f"end_value=datetime.fromisoformat({end.isoformat()!r}),"
    defs = "from datetime import datetime\n" + textwrap.dedent(LAG_DEFS).replace("OPTIONS", options)
    store = make_store(tmp_path, pg_dsn, defs)
    store.apply()
    assert [r.rows_in for r in store.run()] == [3]  # updated_at < U0 + 4s: orders 1, 2, 3
    assert order_ids(store) == [1, 2, 3]
    assert mark_of(store) == U0 + timedelta(seconds=3)

    insert_orders(pg_dsn, [(7, 1, Decimal("1.00"), D1, U0 + timedelta(seconds=3, microseconds=1))])
    (second,) = store.run()
    assert second.rows_in == 2  # the boundary row 3 and order 7; 4, 5 and 6 are beyond the end
    assert order_ids(store) == [1, 2, 3, 7]
    assert mark_of(store) == U0 + timedelta(seconds=3, microseconds=1)
    assert mark_of(store) < end
    store.close()


def test_lag_and_end_value_need_a_cursor_and_sensible_values() -> None:
    from headwater import PostgresSource

    base = {"connection": "c", "table": "t", "timestamp_field": "ts"}
    with pytest.raises(DefinitionError, match="lag= applies to incremental reads"):
        PostgresSource("s", lag="1h", **base)
    with pytest.raises(DefinitionError, match="end_value= applies to incremental reads"):
        PostgresSource("s", end_value=5, **base)
    incremental = {**base, "cursor_field": "u", "primary_key": ["id"]}
    with pytest.raises(DefinitionError, match="must not be negative"):
        PostgresSource("s", lag=-1, **incremental)
    with pytest.raises(DefinitionError, match="is not a duration"):
        PostgresSource("s", lag="soon", **incremental)
    with pytest.raises(DefinitionError, match="is not a cursor value"):
        PostgresSource("s", end_value=[1], **incremental)
    source = PostgresSource(
        "s", lag=timedelta(minutes=5), end_value=date(2024, 1, 1), **incremental
    )
    assert source.to_spec()["lag"] == "0:05:00"


PARAMS_DEFS = """
from headwater import Entity, FeatureView, PostgresSource

order = Entity("order", join_keys=["order_id"])
picked = PostgresSource(
    "picked",
    connection="app_db",
    query=(
        "SELECT * FROM public.orders WHERE created_at >= %(since)s AND order_id = ANY(%(ids)s) "
        "AND (%(nothing)s::text IS NULL) AND amount::text NOT LIKE '%%9'"
    ),
    params={"since": "2024-03-01T12:00:00+00:00", "ids": [2, 3, 4, 6], "nothing": None},
    timestamp_field="created_at",
    cursor_field="updated_at",
    primary_key=["order_id"],
)
picked_view = FeatureView("picked_view", entity=order, source=picked, features={"a": "amount"})
"""


def test_query_params_take_the_types_postgresql_infers(tmp_path: Path, pg_dsn: str) -> None:
    # A string compared with a timestamptz, a list with ANY, a None: each bound as PostgreSQL
    # reads the placeholder, as psycopg would bind them.
    create_orders(pg_dsn, BASE_ORDERS)
    store = make_store(tmp_path, pg_dsn, PARAMS_DEFS)
    store.apply()
    assert [r.rows_in for r in store.run()] == [4]
    assert sorted(row["order_id"] for row in offline_rows(store, "picked_view")) == [2, 3, 4, 6]
    (again,) = store.run()  # from the mark: the params and the cursor bound together
    assert again.rows_in == 1  # order 6 holds the mark
    store.close()


# ---------------------------------------------------------------------- timeouts, lost connections
SLOW_DEFS = """
from headwater import Entity, FeatureView, PostgresSource

order = Entity("order", join_keys=["order_id"])
slow = PostgresSource(
    "slow",
    connection="app_db",
    query="SELECT o.* FROM public.orders AS o, (SELECT pg_sleep(2)) AS s",
    timestamp_field="created_at",
)
slow_view = FeatureView("slow_view", entity=order, source=slow, features={"a": "amount"})
"""


def test_the_statement_timeout_bounds_the_read_and_names_the_source(
    tmp_path: Path, pg_dsn: str
) -> None:
    create_orders(pg_dsn, BASE_ORDERS)
    store = make_store(tmp_path, pg_dsn, SLOW_DEFS, statement_timeout_ms=200, retry_backoff_s=0)
    store.apply()  # describing does not run the query
    with pytest.raises(RunFailed) as caught:
        store.run()
    text = str(caught.value)
    assert "source 'slow': PostgreSQL cancelled the read after statement_timeout_ms=200" in text
    assert "canceling statement due to statement timeout" in text and "\n" not in text
    (failed,) = store.registry.runs(view="slow_view")
    assert failed.status == "failed" and "statement_timeout_ms=200" in (failed.error or "")
    store.close()


BIG_DEFS = """
from headwater import Entity, FeatureView, PostgresSource

item = Entity("item", join_keys=["id"])
big = PostgresSource(
    "big",
    connection="app_db",
    query="SELECT * FROM public.big WHERE pace(id)",
    timestamp_field="created_at",
    cursor_field="id",
    primary_key=["id"],
    batch_size=2_000,
)
big_view = FeatureView("big_view", entity=item, source=big, features={"label": "label"})
"""

BIG_ROWS = 100_000


def create_big(dsn: str, rows: int) -> None:
    """``public.big`` with ``rows`` rows, and ``pace(id)``, true for every row, which sleeps
    10 ms every 2,000 rows: a read of ``WHERE pace(id)`` is still streaming from the server
    when its backend is terminated, whatever the socket buffers hold."""
    sql(
        dsn,
        "CREATE TABLE public.big AS SELECT g::bigint AS id, repeat(md5(g::text), 6) AS label, "
        "CASE WHEN g % 10 = 0 THEN NULL ELSE g % 1000 END AS k, "
        "timestamptz '2024-03-01' + g * interval '1 second' AS created_at "
        f"FROM generate_series(1, {rows}) AS g",
    )
    sql(
        dsn,
        "CREATE FUNCTION pace(i bigint) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN "
        "IF i % 2000 = 0 THEN PERFORM pg_sleep(0.01); END IF; RETURN true; END $$",
    )


def kill_during_reads(
    monkeypatch: pytest.MonkeyPatch, application_name: str, *, after_batches: int, times: int
) -> list[int]:
    """Terminate the backend of ``application_name`` (from another connection, found in
    pg_stat_activity) each time the readers have converted ``after_batches`` more batches,
    ``times`` times at most; returns the pids ended."""
    import threading

    from headwater.connectors.postgres import typemap as pg_types

    original = pg_types.conform_batch
    calls = [0]
    killed: list[int] = []
    lock = threading.Lock()

    def conform(batch: pa.RecordBatch, schema: pa.Schema, *, what: str) -> pa.RecordBatch:
        with lock:
            calls[0] += 1
            if calls[0] >= after_batches and len(killed) < times:
                rows = sql(
                    PG_ADMIN,
                    "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = %s AND NOT pid = ANY(%s)",
                    [application_name, killed],
                )
                ended = [pid for pid, done in rows if done]
                if ended:
                    killed.extend(ended)
                    calls[0] = 0
        return original(batch, schema, what=what)

    monkeypatch.setattr(pg_types, "conform_batch", conform)
    return killed


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def test_a_read_that_loses_its_connection_is_retried_whole(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_big(pg_dsn, BIG_ROWS)
    store = make_store(tmp_path, pg_dsn, BIG_DEFS, retry_backoff_s=0.01)
    store.apply()
    killed = kill_during_reads(monkeypatch, "headwater:big", after_batches=3, times=1)
    (result,) = store.run()
    assert len(killed) == 1
    assert (result.status, result.rows_in, result.inserted) == ("success", BIG_ROWS, BIG_ROWS)
    ids = [row["id"] for row in offline_rows(store, "big_view")]
    assert len(ids) == len(set(ids)) == BIG_ROWS and min(ids) == 1 and max(ids) == BIG_ROWS
    assert [(r.status, r.rows_in) for r in store.registry.runs(view="big_view")] == [
        ("success", BIG_ROWS)
    ]
    assert decode_cursor(store.registry.get_checkpoint("cursor:big_view")) == BIG_ROWS
    store.close()


def test_a_read_out_of_retries_fails_and_keeps_the_checkpoint(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_big(pg_dsn, BIG_ROWS)
    store = make_store(tmp_path, pg_dsn, BIG_DEFS, retries=1, retry_backoff_s=0.01)
    store.apply()
    killed = kill_during_reads(monkeypatch, "headwater:big", after_batches=3, times=2)
    with pytest.raises(ConnectionFailed) as caught:
        store.run()
    assert len(killed) == 2  # the first read and its one retry
    assert "source 'big': lost the connection to PostgreSQL while reading" in str(caught.value)
    (failed,) = store.registry.runs(view="big_view")
    assert failed.status == "failed"
    assert store.registry.get_checkpoint("cursor:big_view") is None
    assert store.offline.dataset("big_view") is None
    store.close()


STREAM_DEFS = """
from headwater import Entity, FeatureView, PostgresSource, checks

item = Entity("item", join_keys=["k"])
read = dict(
    connection="app_db",
    query="SELECT *, date_trunc('hour', created_at) AS hour FROM public.big WHERE pace(id)",
    timestamp_field="hour",
    batch_size=2_000,
)
streamed = PostgresSource("streamed", **read)
staged = PostgresSource("staged", checks=[checks.not_null("id", severity="warn")], **read)
features = {"label": "label", "id": "id"}
by_k = FeatureView("by_k", entity=item, source=streamed, features=features)
by_k_staged = FeatureView("by_k_staged", entity=item, source=staged, features=features)
"""


def test_a_view_computed_from_the_stream_matches_the_kept_read(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A view whose source has no checks is computed from the read as it streams (no copy
    kept); its rows, counts and retries are those of a view whose source checks keep the read.
    Many rows share a (key, hour): the one kept is chosen by the same order either way."""
    from headwater.orchestration.runner import Runner

    create_big(pg_dsn, BIG_ROWS)
    store = make_store(tmp_path, pg_dsn, STREAM_DEFS, retry_backoff_s=0.01)
    store.apply()
    streamed: list[str] = []
    original = Runner._stream

    def spy(self: Runner, *args: Any, **kwargs: Any) -> Any:
        streamed.append(kwargs.get("view", args[4]).name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Runner, "_stream", spy)
    killed = kill_during_reads(monkeypatch, "headwater:streamed", after_batches=3, times=1)
    results = {r.view: r for r in store.run()}
    assert len(killed) == 1 and streamed == ["by_k"]  # the lost read was started again whole
    skipped = BIG_ROWS // 10  # k is null on every tenth row
    for result in results.values():
        assert (result.status, result.rows_in, result.rows_skipped) == (
            "success",
            BIG_ROWS,
            skipped,
        )
    assert results["by_k"].inserted == results["by_k_staged"].inserted < BIG_ROWS - skipped
    assert offline_rows(store, "by_k") == offline_rows(store, "by_k_staged")
    rows = offline_rows(store, "by_k")
    # A full refresh rebuilds both into new table versions, with the same rows.
    again = {r.view: r for r in store.run(full_refresh=True)}
    assert {(r.inserted, r.updated, r.deleted) for r in again.values()} == {(len(rows), 0, 0)}
    assert offline_rows(store, "by_k") == offline_rows(store, "by_k_staged") == rows
    store.close()


def test_a_run_imports_neither_pandas_nor_polars(tmp_path: Path, pg_dsn: str) -> None:
    """pyarrow (``pa.array``, ``pa.scalar``, ``to_numpy``), DuckDB (a registered table) and the
    ADBC DB-API import pandas or polars when they are installed, a third of a second of a run
    that needs neither."""
    import subprocess
    import sys

    create_big(pg_dsn, 5_000)
    store = make_store(tmp_path, pg_dsn, BIG_DEFS)
    store.apply()
    store.close()
    code = (
        "import sys, headwater\n"
        f"store = headwater.FeatureStore({str(tmp_path)!r})\n"
        "(result,) = store.run()\n"
        "store.close()\n"
        "print(result.inserted, sorted(m for m in ('pandas', 'polars') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split(maxsplit=1) == ["5000", "[]\n"]


# ---------------------------------------------------------------------- libpq options
PATH_DEFS = """
from headwater import Entity, FeatureView, PostgresSource

item = Entity("item", join_keys=["id"])
things = PostgresSource("things", connection="app_db", table="things", timestamp_field="at")
thing_facts = FeatureView("thing_facts", entity=item, source=things, features={"n": "n"})
"""


def test_libpq_options_reach_every_session_of_a_read(tmp_path: Path, pg_dsn: str) -> None:
    from pydantic import SecretStr

    from headwater.connectors.postgres.config import PostgresConnection
    from headwater.connectors.postgres.session import reader_conninfo

    sql(pg_dsn, "CREATE SCHEMA app; CREATE TABLE app.things (id int, n int, at timestamptz)")
    sql(pg_dsn, "INSERT INTO app.things VALUES (1, 7, '2024-03-01')")
    # search_path (libpq "options") finds the unqualified table when describing and reading.
    options = {"options": "-c search_path=app", "application_name": "mine"}
    store = make_store(tmp_path / "path", pg_dsn, PATH_DEFS, options=options)
    store.apply()
    assert [r.rows_in for r in store.run()] == [1]
    assert offline_rows(store, "thing_facts")[0]["n"] == 7
    store.close()

    # sslmode passes through: this test server has no SSL, so requiring it fails, clearly.
    store = make_store(tmp_path / "ssl", pg_dsn, PATH_DEFS, options={"sslmode": "require"})
    with pytest.raises(ConnectionFailed, match=r"source 'things'.*does not support SSL"):
        store.apply()
    store.close()
    config = PostgresConnection(
        dsn=SecretStr("postgresql://u:pw@db/shop?sslmode=prefer"),
        options={"sslmode": SecretStr("verify-full"), "sslrootcert": SecretStr("/ca.pem")},
        statement_timeout_ms=900,
    )
    text = reader_conninfo(config, application_name="headwater:things")
    assert "sslmode=verify-full" in text and "sslrootcert=/ca.pem" in text
    assert "statement_timeout=900" in text and "TimeZone=UTC" in text
