"""How far the DuckDB query under way has come, polled from a thread while it runs."""

from __future__ import annotations

import duckdb

from headwater.engines.progress import watch_queries

SLOW = "SELECT i % 1000 AS k, sum(i) FROM range(100000000) t(i) GROUP BY 1 ORDER BY 1"


def test_the_percent_of_a_running_query_is_reported() -> None:
    con = duckdb.connect()
    seen: list[float] = []
    with watch_queries(con, seen.append, every=0.02):
        assert len(con.sql(SLOW).fetchall()) == 1000
    assert seen, "no progress reported while the query ran"
    assert all(0 <= value <= 100 for value in seen)
    assert max(seen) > 0
    count = len(seen)
    con.sql("SELECT 1").fetchall()
    assert len(seen) == count  # the thread stopped with the block


def test_nothing_is_watched_without_a_report() -> None:
    con = duckdb.connect()
    with watch_queries(con, None):
        con.sql("SELECT 1").fetchall()
    assert con.sql("SELECT current_setting('enable_progress_bar')").fetchall() == [(False,)]
