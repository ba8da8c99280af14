"""SQLite details shared by the stores that keep a SQLite file (online store, registry)."""

from __future__ import annotations

import sqlite3
import time


def wal_mode(conn: sqlite3.Connection, attempts: int = 200) -> None:
    """Switch ``conn``'s database to WAL. SQLite answers "database is locked" at once, without
    waiting, when another connection is opening the same file at that moment (workers of several
    views start together), so the switch is retried."""
    for attempt in range(attempts):
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05)
