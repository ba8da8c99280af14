"""SQLite tables and queries, streamed into Arrow record batches (full or incremental)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.connectors.tables import TableConnector
from headwater.errors import DefinitionError

if TYPE_CHECKING:
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


class SqliteConnector(TableConnector):
    """Reads a :class:`SqliteSource` (opened read-only)."""

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

    def _placeholder(self, name: str) -> str:
        return f":{name}"

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

    def _fetch(
        self, conn: sqlite3.Connection, sql: str, params: dict[str, Any], batch_size: int
    ) -> Iterator[Sequence[Sequence[Any]]]:
        cur = conn.execute(sql, params)
        while rows := cur.fetchmany(batch_size):
            yield rows
