"""Shared logic of database-table sources: query building, incremental cursors, stream scans.

Incremental reads use a *closed* lower bound: ``cursor >= high-water mark`` (or
``mark - lag``). Rows that share the mark are read again and de-duplicated downstream by key
(offline merges are keyed), so a row committed with the same cursor value after the previous run
is never lost. ``end_value`` adds an exclusive upper bound. The new mark is the greatest cursor
value read (never below the previous one); the orchestrator commits it after the data it covers.

A database read is a one-shot Arrow stream: :meth:`TableConnector.scan` returns a
:class:`~headwater.connectors.base.StreamScan`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from headwater.connectors.base import Scan, stream_scan
from headwater.definitions.durations import to_millis
from headwater.errors import DefinitionError
from headwater.sql import quote_ident

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


def lower_bound(mark: Any, lag: Any, *, what: str) -> Any:
    """Where an incremental read starts: ``mark - lag`` (``mark`` itself without a lag).

    Args:
        mark: the committed high-water mark (``None`` before the first run).
        lag: a duration (``"10m"``, ``timedelta``, int of ms) for date and time cursors, a
            number for numeric cursors.
        what: names the source in errors.

    Raises:
        DefinitionError: the lag does not fit the cursor's type.
    """
    if mark is None or lag is None:
        return mark
    if isinstance(mark, datetime | date):
        if isinstance(lag, float | Decimal):
            raise DefinitionError(
                f"{what}: lag={lag!r} is a number, but the cursor holds dates or times",
                fix='give a duration, e.g. lag="10m" or lag=timedelta(minutes=10)',
            )
        delta = timedelta(milliseconds=to_millis(lag, what=f"{what}: lag")) if lag else timedelta()
        if isinstance(mark, datetime):
            return mark - delta
        return mark - timedelta(days=math.ceil(delta / timedelta(days=1)))
    if isinstance(mark, int | float | Decimal) and not isinstance(lag, str | timedelta | bool):
        if isinstance(mark, Decimal) or isinstance(lag, Decimal):
            return Decimal(mark) - Decimal(lag)
        return mark - lag
    raise DefinitionError(
        f"{what}: lag={lag!r} cannot be subtracted from the cursor value {mark!r}",
        fix="lag takes a duration for date/time cursors and a number for numeric cursors",
    )


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
    has_end: bool = False,
) -> str:
    """The SELECT a table source runs; values are bound through ``placeholder(name)``.

    The lower bound is the value ``hw_cursor_low`` (when ``has_mark``), the exclusive upper bound
    ``hw_cursor_end`` (when ``has_end``).
    """
    base = f"SELECT * FROM {qualified(table)}" if table else f"SELECT * FROM ({query}) AS q"
    conditions = []
    if cursor_field and has_mark:
        conditions.append(f"{quote_ident(cursor_field)} >= {placeholder('hw_cursor_low')}")
    if cursor_field and has_end:
        conditions.append(f"{quote_ident(cursor_field)} < {placeholder('hw_cursor_end')}")
    return base + (" WHERE " + " AND ".join(conditions) if conditions else "")


def check_column(schema: pa.Schema, column: str | None, option: str, *, what: str) -> None:
    """Raise a :class:`DefinitionError` naming ``option`` when ``column`` is not in ``schema``."""
    if column and column not in schema.names:
        raise DefinitionError(
            f"{what}: {option} {column!r} is not a column (columns: {', '.join(schema.names)})",
            fix="name an existing, monotonically increasing column (e.g. updated_at)"
            if option == "cursor_field"
            else "name an existing column of the rows read",
        )


class CursorTracker:
    """Wraps a stream of record batches, remembering the greatest cursor value and row count."""

    def __init__(self, cursor_field: str | None, previous: Any) -> None:
        self.cursor_field = cursor_field
        self.high = previous
        self.rows = 0

    def track(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Pass ``batches`` on, counting rows and keeping the greatest cursor value."""
        for batch in batches:
            self.rows += batch.num_rows
            if self.cursor_field and batch.num_rows:
                import pyarrow.compute as pc  # only for incremental reads (it takes 50 ms)

                column = batch.column(batch.schema.get_field_index(self.cursor_field))
                top = pc.max(column).as_py()
                if top is not None and (self.high is None or top > self.high):
                    self.high = top
            yield batch

    def checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint to commit once the rows read are written."""
        return encode_cursor(self.high) if self.cursor_field else None


# ---------------------------------------------------------------------- row-tuple drivers
def rows_to_batch(rows: Sequence[Sequence[Any]], schema: pa.Schema, *, what: str) -> pa.RecordBatch:
    """Columnise fetched rows into a record batch of ``schema``.

    Raises:
        DefinitionError: a column's values do not fit its Arrow type (named with ``what``).
    """
    import pyarrow as pa

    columns: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    arrays = []
    for values, field_ in zip(columns, schema, strict=True):
        try:
            try:
                arrays.append(pa.array(values, type=field_.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arrays.append(pa.array(_coerce(values, field_.type), type=field_.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
            raise DefinitionError(
                f"{what}: column {field_.name!r} holds a value that does not fit "
                f"{field_.type}: {exc}",
                fix="cast the column in query= to a type that holds its values",
            ) from None
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
    if pa.types.is_interval(arrow_type):  # timedelta (months already folded into days)
        return [None if v is None else (0, v.days, _nanos(v)) for v in values]
    return list(values)


def _nanos(value: timedelta) -> int:
    return (value.seconds * 1_000_000 + value.microseconds) * 1_000


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

    :meth:`scan` asks :meth:`_read` for the schema and a lazy stream of record batches, tracks
    the high-water mark and registers the stream with DuckDB. The default :meth:`_read` serves
    drivers that return row tuples: subclasses open a connection (:meth:`_connect`), describe
    the result columns (:meth:`_describe`), render a placeholder and fetch rows in batches
    (:meth:`_fetch`).
    """

    SUPPORTS_INCREMENTAL: ClassVar[bool] = True
    source: Any

    @property
    def what(self) -> str:
        """How errors name this source."""
        return f"source {self.source.name!r}"

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

    def _select(self, has_mark: bool, has_end: bool = False) -> str:
        return build_select(
            table=self.source.table,
            query=self._query_text(has_mark or has_end),
            cursor_field=self.source.cursor_field,
            has_mark=has_mark,
            has_end=has_end,
            placeholder=self._placeholder,
        )

    def _bounds(self, mark: Any) -> dict[str, Any]:
        """The cursor values of an incremental read: ``hw_cursor_low`` and ``hw_cursor_end``."""
        bounds: dict[str, Any] = {}
        low = lower_bound(mark, self.source.lag, what=self.what)
        if low is not None:
            bounds["hw_cursor_low"] = low
        end = self.source.end_value
        if end is not None and self.source.cursor_field:
            bounds["hw_cursor_end"] = end
        return bounds

    def _retry_policy(self) -> tuple[int, float]:
        """``(retries, backoff_s)`` for reads that lose their connection; none by default."""
        return 0, 0.5

    def schema(self) -> pa.Schema:
        """The columns the source yields (described, not read)."""
        conn = self._connect()
        try:
            return self._describe(conn)
        finally:
            conn.close()

    def scan(self, con: duckdb.DuckDBPyConnection, *, checkpoint: Any = None) -> Scan:
        """Register a lazy read from ``checkpoint`` with ``con`` (nothing is read yet).

        Returns:
            A :class:`StreamScan`: the view's name, the checkpoint and row count once read,
            the error that ended the stream if any, the connector's retry policy, and the
            watchers the stream calls with each batch.
        """
        mark = decode_cursor(checkpoint)
        schema, batches = self._read(mark)
        tracker = CursorTracker(self.source.cursor_field, mark)
        retries, backoff_s = self._retry_policy()
        return stream_scan(
            con,
            self.source.name,
            schema,
            tracker.track(batches),
            checkpoint=tracker.checkpoint,
            rows_read=lambda: tracker.rows,
            retries=retries,
            backoff_s=backoff_s,
        )

    def _read(self, mark: Any) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The schema and the (lazy) record batches of a read from ``mark``."""
        conn = self._connect()
        try:
            schema = self._describe(conn)
            # Checked here too: SQLite would read an unknown "name" as a string literal.
            check_column(schema, self.source.cursor_field, "cursor_field", what=self.what)
        except BaseException:
            conn.close()
            raise
        bounds = self._bounds(mark)
        params = {**self.source.params, **bounds}
        sql = self._select("hw_cursor_low" in bounds, "hw_cursor_end" in bounds)
        batch_size = int(self.source.batch_size)

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for rows in self._fetch(conn, sql, params, batch_size):
                    yield rows_to_batch(rows, schema, what=self.what)
            finally:
                conn.close()

        return schema, batches()
