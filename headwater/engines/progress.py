"""How far the DuckDB query under way has come, for progress lines.

A file source is read inside DuckDB queries (count, compute, write), which report nothing until
they end. DuckDB tracks the progress of the query a connection runs
(``DuckDBPyConnection.query_progress()``: percent done, ``-1`` when no query runs or its
progress is unknown) once ``enable_progress_bar`` is set; :func:`watch_queries` polls it from a
thread while a block runs and reports each value. DuckDB's own progress bar is never printed
(``enable_progress_bar_print`` is off): the caller decides what to show.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb


@contextmanager
def watch_queries(
    con: duckdb.DuckDBPyConnection,
    report: Callable[[float], None] | None,
    *,
    every: float = 0.1,
) -> Iterator[None]:
    """While the block runs, tell ``report`` every ``every`` seconds the percent done (0 to 100)
    of the query ``con`` runs (nothing while none runs). ``report=None``: no thread, no
    setting changed."""
    if report is None:
        yield
        return
    con.execute("SET enable_progress_bar = true")
    con.execute("SET enable_progress_bar_print = false")
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(every):
            try:
                value = con.query_progress()
            except Exception:  # the connection closed under us: nothing more to tell
                return
            if value >= 0:
                report(min(float(value), 100.0))

    thread = threading.Thread(target=poll, name="headwater-query-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
