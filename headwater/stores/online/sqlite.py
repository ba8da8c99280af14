"""The SQLite online store: one table per feature view in a local file (WAL mode)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from headwater.config.models import OnlineStoreConfig
from headwater.sql import quote_ident
from headwater.stores._sqlite import wal_mode
from headwater.stores.online.codec import (
    Stored,
    decode_stored,
    deserialize_schema,
    encode_key,
    prepare_rows,
    schema_id,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.definitions import FeatureView
    from headwater.stores.online.base import OnlineRow

_SCHEMAS = "headwater_online_schemas"
_READ_CHUNK = 500
_MIN_TS = -9_223_372_036_854_775_808


def _table(view_name: str) -> str:
    return quote_ident(f"fv_{view_name}")


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqliteOnlineStoreConfig(OnlineStoreConfig):
    """``online_store`` of ``type: sqlite``: latest values in a local SQLite file (the
    default)."""

    type: Literal["sqlite"] = "sqlite"
    path: str = "data/online.db"
    """The database file (relative paths are read from the project folder)."""


class SqliteOnlineStore:
    """Latest feature values in a SQLite file.

    Each view has a table ``fv_<view>`` of ``(key, event_ts, created_ts, payload)`` keyed by
    the encoded entity key; the latest-row rule is applied by the upsert itself, so concurrent
    writers (other processes) cannot regress a row. Payload schemas live in
    ``headwater_online_schemas``. One instance may be shared by threads (a lock serialises use).

    Args:
        store_config: the ``online_store`` section of ``headwater.yaml``.
        project_config: the whole project configuration (resolves the relative path).
    """

    config_model: ClassVar[type[SqliteOnlineStoreConfig]] = SqliteOnlineStoreConfig
    SUPPORTS_TTL_EXPIRY: ClassVar[bool] = False

    def __init__(
        self, store_config: SqliteOnlineStoreConfig, project_config: ProjectConfig
    ) -> None:
        path = Path(project_config.resolve(store_config.path))
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._lock = threading.Lock()
        self._schemas: dict[str, dict[str, pa.Schema]] = {}
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            self.path, timeout=30.0, check_same_thread=False, isolation_level=None
        )
        wal_mode(self._conn)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_SCHEMAS} (view TEXT NOT NULL, id TEXT NOT NULL, "
            "schema BLOB NOT NULL, PRIMARY KEY (view, id)) WITHOUT ROWID"
        )

    # ----------------------------------------------------------------- helpers
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"the online store {self.path} is closed")
        return self._conn

    def _exists(self, conn: sqlite3.Connection, view_name: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (f"fv_{view_name}",)
        ).fetchone()
        return row is not None

    def _load_schemas(
        self, conn: sqlite3.Connection, view_name: str, needed: set[str]
    ) -> dict[str, pa.Schema]:
        cached = self._schemas.setdefault(view_name, {})
        if needed - cached.keys():
            query = f"SELECT id, schema FROM {_SCHEMAS} WHERE view = ?"
            rows = conn.execute(query, (view_name,))
            for sid, blob in rows:
                cached.setdefault(sid, deserialize_schema(blob))
        return cached

    # ----------------------------------------------------------------- protocol
    def write(self, view: FeatureView, rows: pa.Table) -> int:
        """Upsert the latest row per entity; return how many entities changed."""
        encoded = prepare_rows(view, rows)
        if not encoded.keys:
            return 0
        table = _table(view.name)
        upsert = (
            f"INSERT INTO {table} AS stored (key, event_ts, created_ts, payload) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET event_ts = excluded.event_ts, "
            "created_ts = excluded.created_ts, payload = excluded.payload "
            "WHERE excluded.event_ts > stored.event_ts OR (excluded.event_ts = stored.event_ts "
            f"AND coalesce(excluded.created_ts, {_MIN_TS}) >= coalesce(stored.created_ts, "
            f"{_MIN_TS}))"
        )
        params = zip(
            encoded.keys, encoded.event_ts_ms, encoded.created_ts_ms, encoded.payloads, strict=True
        )
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, "
                    "event_ts INTEGER NOT NULL, created_ts INTEGER, payload BLOB NOT NULL) "
                    "WITHOUT ROWID"
                )
                conn.execute(
                    f"INSERT OR IGNORE INTO {_SCHEMAS} (view, id, schema) VALUES (?, ?, ?)",
                    (view.name, encoded.schema_id, encoded.schema_bytes),
                )
                before = conn.total_changes
                conn.executemany(upsert, params)
                changed = conn.total_changes - before
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return changed

    def read(self, view: FeatureView, entity_keys: list[tuple[Any, ...]]) -> list[OnlineRow | None]:
        """Rows for each key tuple, in order; ``None`` where nothing is stored."""
        keys = [encode_key(k) for k in entity_keys]
        found: dict[str, Stored] = {}
        table = _table(view.name)
        with self._lock:
            conn = self._connection()
            if not keys or not self._exists(conn, view.name):
                return [None] * len(keys)
            for chunk in _chunks(list(dict.fromkeys(keys)), _READ_CHUNK):
                marks = ", ".join("?" * len(chunk))
                query = (
                    f"SELECT key, event_ts, created_ts, payload FROM {table} WHERE key IN ({marks})"
                )
                for key, event_ts, created_ts, payload in conn.execute(query, tuple(chunk)):
                    found[key] = (event_ts, created_ts, bytes(payload))
            needed = {schema_id(entry[2]) for entry in found.values()}
            schemas = self._load_schemas(conn, view.name, needed) if needed else {}
        return decode_stored(view, [found.get(k) for k in keys], schemas)

    def delete_view(self, view_name: str) -> None:
        """Drop the view's table and its payload schemas."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(f"DROP TABLE IF EXISTS {_table(view_name)}")
                conn.execute(f"DELETE FROM {_SCHEMAS} WHERE view = ?", (view_name,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._schemas.pop(view_name, None)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
