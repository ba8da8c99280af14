"""Pooled PostgreSQL connections against the real server: reuse across runs, sessions that keep
their options, dead backends never reused, pools closed with the store."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import headwater
from headwater.config import load_config
from headwater.connectors.postgres import pool as pg_pool
from headwater.connectors.postgres.pool import (
    ReaderConnection,
    ReaderPool,
    checkin,
    checkout,
    pool_stats,
    reader_pool,
)
from headwater.errors import ConfigError, ConnectionFailed
from tests.connectors.postgres.test_partitions import defs as partition_defs
from tests.connectors.postgres.test_reader import (
    BASE_ORDERS,
    BIG_DEFS,
    BIG_ROWS,
    ORDER_DEFS,
    PG_ADMIN,
    U0,
    create_big,
    create_orders,
    insert_orders,
    kill_during_reads,
    make_store,
    sql,
)
from tests.helpers import offline_rows

pytestmark = pytest.mark.postgres


def app_name() -> str:
    """An application_name no other session uses."""
    return f"hwpool-{uuid.uuid4().hex[:10]}"


def fetch(conn: ReaderConnection, query: str) -> list[dict[str, Any]]:
    """The rows of ``query`` on a reader connection."""
    statement, reader = conn.query(query, {})
    try:
        rows: list[dict[str, Any]] = reader.read_all().to_pylist()
        return rows
    finally:
        reader.close()
        statement.close()


def backends(name: str) -> list[int]:
    """Pids of the server's sessions whose application_name is ``name``, by pid."""
    rows = sql(
        PG_ADMIN,
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s ORDER BY pid",
        [name],
    )
    return [pid for (pid,) in rows]


def wait_for_backends(name: str, count: int) -> list[int]:
    """The sessions of ``name`` once there are ``count`` of them (a closed session's backend
    leaves pg_stat_activity shortly after the client goes)."""
    deadline = time.monotonic() + 5
    while (pids := backends(name)) and len(pids) != count and time.monotonic() < deadline:
        time.sleep(0.05)
    return pids


def connection(store: headwater.FeatureStore) -> Any:
    return store.config.connections["app_db"]


def test_runs_reuse_the_pooled_connections(tmp_path: Path, pg_dsn: str) -> None:
    name = app_name()
    create_orders(pg_dsn, BASE_ORDERS)
    store = make_store(tmp_path, pg_dsn, ORDER_DEFS, options={"application_name": name})
    store.apply()
    store.run(["order_facts"])
    after_first = backends(name)
    # Idle between runs: one psycopg session (describing) and one reader session (the COPY).
    assert len(after_first) == 2
    for i in range(5):
        later = U0 + timedelta(minutes=1 + i)
        insert_orders(pg_dsn, [(100 + i, 1, Decimal("1.00"), U0, later)])
        (result,) = store.run(["order_facts"])
        assert result.status == "success"
    assert backends(name) == after_first  # the same two sessions served all six runs
    stats = pool_stats(connection(store))
    assert stats["readers_opened"] == 1 and stats["readers_idle"] == 1
    assert stats["psycopg_size"] == 1
    assert len(offline_rows(store, "order_facts")) == len(BASE_ORDERS) + 5
    store.close()
    assert wait_for_backends(name, 0) == []


def test_partitioned_reads_keep_one_connection_per_range_read_at_once(
    tmp_path: Path, pg_dsn: str
) -> None:
    name = app_name()
    create_big(pg_dsn, 20_000)
    store = make_store(tmp_path, pg_dsn, partition_defs(), options={"application_name": name})
    store.apply()
    for _ in range(3):
        results = {r.view: r for r in store.run(full_refresh=True)}
        assert results["split_view"].rows_in == results["plain_view"].rows_in == 20_000
    stats = pool_stats(connection(store))
    # Four ranges, four at a time: four reader connections for three runs of both views.
    assert stats["readers_opened"] == 4 and stats["readers_idle"] == 4
    store.close()
    assert wait_for_backends(name, 0) == []


def test_pooled_sessions_carry_the_options_and_get_them_back(tmp_path: Path, pg_dsn: str) -> None:
    name = app_name()
    sql(pg_dsn, "CREATE SCHEMA app")
    options = {
        "application_name": name,
        "sslmode": "disable",
        "options": "-c search_path=app -c work_mem=8MB",
    }
    store = make_store(tmp_path, pg_dsn, ORDER_DEFS, options=options, statement_timeout_ms=12345)
    config = connection(store)

    conn = checkout(config, what="test")
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()
    shown = {
        setting: conn.execute(f"SHOW {setting}").fetchone()[0]  # type: ignore[index]
        for setting in ("application_name", "statement_timeout", "TimeZone", "search_path")
    }
    assert shown == {
        "application_name": name,
        "statement_timeout": "12345ms",
        "TimeZone": "UTC",
        "search_path": "app",
    }
    assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (
        False,
    )
    assert conn.info.get_parameters()["sslmode"] == "disable"
    conn.execute("SET statement_timeout = 1")
    conn.execute("SET search_path = public")
    checkin(conn)
    # The same session again, back to the configured settings (RESET ALL).
    conn = checkout(config, what="test")
    assert conn.execute("SELECT pg_backend_pid()").fetchone() == pid
    assert conn.execute("SHOW statement_timeout").fetchone() == ("12345ms",)
    assert conn.execute("SHOW search_path").fetchone() == ("app",)
    assert conn.execute("SHOW work_mem").fetchone() == ("8MB",)
    checkin(conn)

    # Reader (ADBC) sessions: the same options, and the same reset when given back.
    readers = reader_pool(config)
    reader, new = readers.acquire()
    assert new
    settings = "SELECT current_setting('statement_timeout') AS t, current_setting('TimeZone') AS z"
    assert fetch(reader, settings) == [{"t": "12345ms", "z": "UTC"}]
    reader.execute("SELECT set_config('statement_timeout', $1, false)", ["5"])
    assert fetch(reader, settings) == [{"t": "5ms", "z": "UTC"}]
    readers.release(reader, reusable=True)
    again, new = readers.acquire()
    assert again is reader and not new
    named = (
        "SELECT current_setting('statement_timeout') AS t, current_setting('application_name') AS a"
    )
    assert fetch(again, named) == [{"t": "12345ms", "a": name}]
    readers.release(again, reusable=True)
    store.close()
    assert wait_for_backends(name, 0) == []


def test_a_backend_terminated_while_idle_is_replaced(tmp_path: Path, pg_dsn: str) -> None:
    name = app_name()
    create_orders(pg_dsn, BASE_ORDERS)
    store = make_store(tmp_path, pg_dsn, ORDER_DEFS, options={"application_name": name})
    store.apply()
    store.run(["order_facts"])
    idle = backends(name)
    assert len(idle) == 2
    killed = sql(PG_ADMIN, "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [idle])
    assert killed == [(True,), (True,)]
    wait_for_backends(name, 0)
    later = U0 + timedelta(minutes=1)
    insert_orders(
        pg_dsn, [(50, 4, Decimal("9.99"), U0, later), (51, 4, Decimal("1.25"), U0, later)]
    )
    (result,) = store.run(["order_facts"])
    assert result.status == "success"
    ids = [row["order_id"] for row in offline_rows(store, "order_facts")]
    assert sorted(ids) == [1, 2, 3, 4, 5, 6, 50, 51]  # nothing lost, nothing twice
    now = backends(name)
    assert now and not set(now) & set(idle)  # new sessions only: the dead ones were dropped
    stats = pool_stats(connection(store))
    assert stats["readers_opened"] == 2 and stats["readers_idle"] == 1
    # psycopg_pool replaces a connection that failed its check (and may grow meanwhile).
    assert 1 <= stats["psycopg_size"] <= 4 and len(now) == 1 + stats["psycopg_size"]
    store.close()


def test_a_reader_that_lost_its_backend_mid_read_is_not_given_back(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_big(pg_dsn, BIG_ROWS)
    store = make_store(tmp_path, pg_dsn, BIG_DEFS, retry_backoff_s=0.01)
    store.apply()
    released: list[bool] = []
    original = ReaderPool.release

    def release(self: ReaderPool, conn: Any, *, reusable: bool) -> None:
        released.append(reusable)
        original(self, conn, reusable=reusable)

    monkeypatch.setattr(ReaderPool, "release", release)
    killed = kill_during_reads(monkeypatch, "headwater:big", after_batches=3, times=1)
    (result,) = store.run()
    assert len(killed) == 1
    assert released == [False, True]  # the broken session closed, the retry's kept
    assert (result.rows_in, result.inserted) == (BIG_ROWS, BIG_ROWS)
    ids = [row["id"] for row in offline_rows(store, "big_view")]
    assert len(ids) == len(set(ids)) == BIG_ROWS
    assert pool_stats(connection(store))["readers_idle"] == 1
    assert not sql(PG_ADMIN, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", [killed[0]])
    store.close()


def test_an_exhausted_pool_fails_naming_the_settings(tmp_path: Path, pg_dsn: str) -> None:
    store = make_store(tmp_path, pg_dsn, ORDER_DEFS, pool_max_size=1, pool_timeout_s=0.2)
    config = connection(store)
    held = checkout(config, what="source 'orders'")
    try:
        with pytest.raises(ConnectionFailed) as caught:
            checkout(config, what="source 'orders'")
        text = str(caught.value)
        assert "source 'orders': no PostgreSQL connection came free within" in text
        assert "pool_timeout_s=0.2" in text and "pool_max_size" in text
    finally:
        checkin(held)
    store.close()


def test_pools_close_with_the_store_and_reopen_on_use(tmp_path: Path, pg_dsn: str) -> None:
    name = app_name()
    create_orders(pg_dsn, BASE_ORDERS)
    store = make_store(tmp_path, pg_dsn, ORDER_DEFS, options={"application_name": name})
    store.apply()
    store.run(["order_facts"])
    assert len(backends(name)) == 2
    store.close()
    assert wait_for_backends(name, 0) == []
    store = headwater.FeatureStore(tmp_path)  # the same connection: pools open again on use
    (result,) = store.run(["order_facts"])
    assert result.status == "success"
    assert len(backends(name)) == 2
    store.close()
    assert wait_for_backends(name, 0) == []
    pg_pool.close_pools()  # and all at once (as at exit): nothing left, nothing fails


def test_pool_sizes_are_checked(tmp_path: Path) -> None:
    (tmp_path / "headwater.yaml").write_text(
        "project: t\nconnections:\n  app_db: {type: postgres, dsn: 'postgresql://h/db', "
        "pool_min_size: 5, pool_max_size: 2}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert "connections.app_db" in str(caught.value)
    assert "pool_max_size (2) must be at least pool_min_size (5)" in str(caught.value)
    (tmp_path / "headwater.yaml").write_text(
        "project: t\nconnections:\n  app_db: {type: postgres, dsn: 'postgresql://h/db', "
        "pool_max_size: 0}\n"
    )
    with pytest.raises(ConfigError, match=r"connections\.app_db\.pool_max_size"):
        load_config(tmp_path)
