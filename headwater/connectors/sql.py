"""Shared logic of database-table sources: query building and incremental cursors.

Incremental reads use a *closed* lower bound: ``cursor >= high-water mark``. Rows that share
the mark are read again and de-duplicated downstream by key (offline merges are keyed), so a
row committed with the same cursor value after the previous run is never lost. The new mark is
the greatest cursor value read; the orchestrator commits it after the data it covers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from headwater.connectors.base import Scan
from headwater.definitions.naming import quote_ident
from headwater.errors import DefinitionError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


def encode_cursor(value: Any) -> dict[str, Any] | None:
    """A JSON-able checkpoint for a cursor value, keeping its type."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, bool | int | float | str):
        return {"type": type(value).__name__, "value": value}
    return {"type": "str", "value": str(value)}


def decode_cursor(checkpoint: dict[str, Any] | None) -> Any:
    """The cursor value stored by :func:`encode_cursor`."""
    if not checkpoint:
        return None
    kind, value = checkpoint["type"], checkpoint["value"]
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "decimal":
        return Decimal(value)
    return value


def qualified(name: str) -> str:
    """Quote ``schema.table`` (or ``table``) part by part."""
    return ".".join(quote_ident(part) for part in name.split("."))


def build_select(
    *,
    table: str | None,
    query: str | None,
    cursor_field: str | None,
    has_mark: bool,
    placeholder: Callable[[str], str],
) -> str:
    """The SELECT a table source runs; values are bound through ``placeholder(name)``."""
    base = f"SELECT * FROM {qualified(table)}" if table else f"SELECT * FROM ({query}) AS q"
    if cursor_field and has_mark:
        base += f" WHERE {quote_ident(cursor_field)} >= {placeholder('hw_cursor_low')}"
    return base


class CursorTracker:
    """Wraps a stream of record batches, remembering the greatest cursor value and row count."""

    def __init__(self, cursor_field: str | None, previous: Any) -> None:
        self.cursor_field = cursor_field
        self.high = previous
        self.rows = 0

    def track(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        for batch in batches:
            self.rows += batch.num_rows
            if self.cursor_field and batch.num_rows:
                column = batch.column(batch.schema.get_field_index(self.cursor_field))
                top = pc.max(column).as_py()
                if top is not None and (self.high is None or top > self.high):
                    self.high = top
            yield batch

    def checkpoint(self) -> dict[str, Any] | None:
        return encode_cursor(self.high) if self.cursor_field else None


def rows_to_batch(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    """Columnise fetched rows into a record batch of ``schema``."""
    import pyarrow as pa

    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    arrays = []
    for values, field in zip(columns, schema, strict=True):
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array(_coerce(values, field.type), type=field.type))
    # ``schema=`` checks every column's type: a batch must never disagree with its reader.
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _coerce(values: Sequence[Any], arrow_type: pa.DataType) -> list[Any]:
    """Values the driver returned as another Python type than ``arrow_type`` takes."""
    import pyarrow as pa

    if pa.types.is_floating(arrow_type):  # e.g. Decimal from an unconstrained numeric
        return [None if v is None else float(v) for v in values]
    if pa.types.is_string(arrow_type):  # e.g. UUID, intervals, arrays
        return [None if v is None else str(v) for v in values]
    if pa.types.is_boolean(arrow_type):  # e.g. SQLite's 0 / 1
        return [None if v is None else _truth(v) for v in values]
    return list(values)


def _truth(value: Any) -> bool:
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("1", "t", "true", "y", "yes"):
            return True
        if word in ("0", "f", "false", "n", "no"):
            return False
        raise ValueError(f"cannot read {value!r} as a boolean")
    return bool(value)


class TableConnector:
    """Shared read path of database-table sources (PostgreSQL, SQLite).

    Subclasses open a connection (:meth:`_connect`), describe the result columns
    (:meth:`_describe`), render a placeholder and fetch rows in batches (:meth:`_fetch`); this
    class builds the SELECT, checks the cursor column, tracks the high-water mark and registers
    the stream with DuckDB.
    """

    SUPPORTS_INCREMENTAL: ClassVar[bool] = True
    source: Any

    def _connect(self) -> Any:
        raise NotImplementedError

    def _describe(self, conn: Any) -> pa.Schema:
        raise NotImplementedError

    def _placeholder(self, name: str) -> str:
        raise NotImplementedError

    def _fetch(
        self, conn: Any, sql: str, params: dict[str, Any], batch_size: int
    ) -> Iterator[Sequence[Sequence[Any]]]:
        raise NotImplementedError

    def _query_text(self, has_mark: bool) -> str | None:
        return self.source.query  # type: ignore[no-any-return]  # table sources declare it

    def _select(self, has_mark: bool) -> str:
        return build_select(
            table=self.source.table,
            query=self._query_text(has_mark),
            cursor_field=self.source.cursor_field,
            has_mark=has_mark,
            placeholder=self._placeholder,
        )

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
            cursor_field = self.source.cursor_field
            if cursor_field and cursor_field not in schema.names:
                # Checked here too: SQLite would read an unknown "name" as a string literal.
                raise DefinitionError(
                    f"source {self.source.name!r}: cursor_field {cursor_field!r} is not "
                    f"a column (columns: {', '.join(schema.names)})",
                    fix="name an existing, monotonically increasing column (e.g. updated_at)",
                )
        except BaseException:
            conn.close()
            raise
        params = dict(self.source.params)
        if mark is not None:
            params["hw_cursor_low"] = mark
        tracker = CursorTracker(cursor_field, mark)
        sql = self._select(mark is not None)
        batch_size = int(self.source.batch_size)

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for rows in self._fetch(conn, sql, params, batch_size):
                    yield rows_to_batch(rows, schema)
            finally:
                conn.close()

        reader = pa.RecordBatchReader.from_batches(schema, tracker.track(batches()))
        view = f"__hw_src_{self.source.name}"
        con.register(view, reader)
        return Scan(relation=view, checkpoint=tracker.checkpoint, rows_read=lambda: tracker.rows)
