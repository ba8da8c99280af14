"""SQLite tables and queries, streamed into Arrow record batches (full or incremental)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from headwater.connectors.base import Scan
from headwater.connectors.sql import CursorTracker, build_select, decode_cursor, rows_to_batch
from headwater.errors import DefinitionError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.definitions import Source, SqliteSource


def _arrow_type(declared: str | None) -> pa.DataType:
    import pyarrow as pa

    decl = (declared or "").upper()
    if "INT" in decl:
        return pa.int64()
    if any(word in decl for word in ("REAL", "FLOA", "DOUB")):
        return pa.float64()
    if decl.startswith(("NUMERIC", "DECIMAL", "NUMBER")):
        return pa.float64()  # NUMERIC affinity: the values are stored as integers or reals
    if "BOOL" in decl:
        return pa.bool_()
    if "BLOB" in decl:
        return pa.binary()
    return pa.string()  # TEXT, dates and timestamps (ISO text; the engine casts them)


class SqliteConnector:
    """Reads a :class:`SqliteSource`."""

    SUPPORTS_INCREMENTAL: ClassVar[bool] = True

    def __init__(self, source: Source, project: ProjectConfig) -> None:
        self.source: SqliteSource = source  # type: ignore[assignment]  # registered for kind "sqlite"
        self.path = Path(project.resolve(self.source.path))

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise DefinitionError(
                f"source {self.source.name!r}: SQLite database {self.path} does not exist",
                fix="check path= (relative paths are read from the project folder)",
            )
        # DuckDB pulls the batches from its own thread; the connection is used by one reader.
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)

    def _select(self, has_mark: bool) -> str:
        return build_select(
            table=self.source.table,
            query=self.source.query,
            cursor_field=self.source.cursor_field,
            has_mark=has_mark,
            placeholder=lambda name: f":{name}",
        )

    def _describe(self, conn: sqlite3.Connection) -> pa.Schema:
        import pyarrow as pa

        sql = self._select(False)
        try:
            cur = conn.execute(f"SELECT * FROM ({sql}) LIMIT 0", self.source.params)
            names = [d[0] for d in cur.description]
        except sqlite3.Error as exc:
            raise DefinitionError(
                f"source {self.source.name!r}: SQLite rejected the read: {exc}",
                fix="check the table name / query",
            ) from None
        declared: dict[str, str] = {}
        if self.source.table:
            # "schema.table" or "table"; both parts bound as values, never formatted in.
            schema, _, table = self.source.table.rpartition(".")
            for name, decl in conn.execute(
                "SELECT name, type FROM pragma_table_info(?, ?)", (table, schema or "main")
            ):
                declared[name] = decl
        return pa.schema([pa.field(n, _arrow_type(declared.get(n))) for n in names])

    def schema(self) -> pa.Schema:
        conn = self._connect()
        try:
            return self._describe(conn)
        finally:
            conn.close()

    def scan(self, con: duckdb.DuckDBPyConnection, *, checkpoint: Any = None) -> Scan:
        import pyarrow as pa

        mark = decode_cursor(checkpoint)
        conn = self._connect()
        try:
            schema = self._describe(conn)
        except BaseException:
            conn.close()
            raise
        if self.source.cursor_field and self.source.cursor_field not in schema.names:
            # Checked here: SQLite would read an unknown "name" as a string literal.
            conn.close()
            raise DefinitionError(
                f"source {self.source.name!r}: cursor_field {self.source.cursor_field!r} is not "
                f"a column (columns: {', '.join(schema.names)})",
                fix="name an existing, monotonically increasing column (e.g. updated_at)",
            )
        params = dict(self.source.params)
        if mark is not None:
            params["hw_cursor_low"] = mark
        tracker = CursorTracker(self.source.cursor_field, mark)
        sql = self._select(mark is not None)
        batch_size = self.source.batch_size

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                cur = conn.execute(sql, params)
                while rows := cur.fetchmany(batch_size):
                    yield rows_to_batch(rows, schema)
            finally:
                conn.close()

        reader = pa.RecordBatchReader.from_batches(schema, tracker.track(batches()))
        view = f"__hw_src_{self.source.name}"
        con.register(view, reader)
        return Scan(relation=view, checkpoint=tracker.checkpoint, rows_read=lambda: tracker.rows)
