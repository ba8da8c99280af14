"""Database-table sources: a ``table`` or a ``query`` of PostgreSQL or SQLite, read in full or
incrementally by a cursor column (Redshift's kind is in :mod:`headwater.definitions.redshift`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from headwater.definitions.durations import to_millis
from headwater.definitions.sources import Source
from headwater.errors import DefinitionError


@dataclass(frozen=True, kw_only=True)
class TableSource(Source):
    """Base of database-table sources: a ``table`` or a ``query``, read in full or by cursor.

    Attributes:
        table: ``schema.table`` to read (or give ``query``).
        query: a SELECT to read instead of a table.
        params: values bound to the placeholders of ``query`` (never formatted into the text).
        cursor_field: read incrementally: each run reads rows with ``cursor >= mark`` (a closed
            lower bound; boundary rows are read again and de-duplicated by ``primary_key``).
        lag: with ``cursor_field``, each run reads from ``mark - lag`` instead of ``mark``, so
            rows whose transaction committed late, with a cursor value below the mark, are still
            picked up. A duration (``"10m"``, a ``timedelta``, or an int of milliseconds) for
            date and time cursors; a non-negative number for numeric cursors. The committed
            mark stays the greatest cursor value read.
        end_value: with ``cursor_field``, an exclusive upper bound (``cursor < end_value``) for
            bounded backfills; the mark then never moves beyond it.
        batch_size: rows per Arrow record batch while streaming (a hint for some drivers).
    """

    __hash__ = Source.__hash__  # by kind and name: a list field is not hashable
    table: str | None = None
    query: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    cursor_field: str | None = None
    lag: str | timedelta | int | float | Decimal | None = None
    end_value: int | float | Decimal | date | datetime | str | None = None
    batch_size: int = 100_000

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "params", dict(self.params or {}))
        if (self.table is None) == (self.query is None):
            raise DefinitionError(
                f"{self.where} needs exactly one of table= or query=",
                fix="table='public.orders' or query='SELECT ...'",
            )
        if self.cursor_field and not self.primary_key:
            raise DefinitionError(
                f"{self.where} has cursor_field={self.cursor_field!r} but no primary_key; rows "
                "that share the cursor value at the boundary are re-read and need a key to be "
                "de-duplicated",
                fix="add primary_key=['id']",
            )
        if self.batch_size <= 0:
            raise DefinitionError(f"{self.where}: batch_size must be positive")
        self._check_bounds()

    @property
    def incremental(self) -> bool:
        return self.cursor_field is not None

    def _check_bounds(self) -> None:
        where = self.where
        for option in ("lag", "end_value"):
            if getattr(self, option) is not None and not self.cursor_field:
                raise DefinitionError(
                    f"{where}: {option}= applies to incremental reads, but there is no "
                    "cursor_field",
                    fix="add cursor_field='updated_at' (and primary_key), or drop " + option,
                )
        lag = self.lag
        if isinstance(lag, str | timedelta):
            to_millis(lag, what=f"{where}: lag")
        elif lag is not None and (
            isinstance(lag, bool) or not isinstance(lag, int | float | Decimal)
        ):
            raise DefinitionError(
                f"{where}: lag={lag!r} is neither a duration nor a number",
                fix='use e.g. lag="10m" (time cursors) or lag=1000 (numeric cursors)',
            )
        elif lag is not None and not lag >= 0:  # also refuses NaN
            raise DefinitionError(f"{where}: lag={lag!r} must not be negative")
        end = self.end_value
        if end is not None and (
            isinstance(end, bool) or not isinstance(end, int | float | Decimal | date | str)
        ):
            raise DefinitionError(
                f"{where}: end_value={end!r} is not a cursor value",
                fix="use a datetime, date, number or string like the cursor column's values",
            )


@dataclass(frozen=True, kw_only=True)
class PostgresSource(TableSource):
    """A PostgreSQL table or query.

    Args:
        name: unique source name.
        connection: the name of a ``type: postgres`` connection in ``headwater.yaml``.
        table: ``schema.table`` to read (or give ``query``).
        query: a SELECT to read instead of a table; parameters go in ``params``.
        params: values for ``%(name)s`` placeholders of ``query`` (bound, never formatted into
            the text); ``%%`` is a literal ``%`` when params are given.
        timestamp_field: the event-time column.
        created_timestamp_field: optional column telling when a row was written.
        cursor_field: when set, each run reads only rows with ``cursor >= last high-water mark``
            (the boundary is re-read and de-duplicated by ``primary_key``).
        lag: re-read from ``mark - lag`` on each run, for transactions that commit late.
        end_value: exclusive upper bound of the cursor, for bounded backfills.
        primary_key: the key columns; required with ``cursor_field``.
        batch_size: rows per Arrow record batch while streaming (approximate).
        partition_column: read in ``num_partitions`` half-open ranges of this integer, numeric,
            date or timestamp column, each on its own connection, several at a time (rows with
            NULL in it go to the first range).
        num_partitions: how many ranges; required with ``partition_column``.
        partition_bounds: ``(low, high)`` of ``partition_column`` used to cut the ranges; found
            with ``SELECT min(...), max(...)`` over the rows to read when omitted. Values outside
            still go to the first or last range.
        description, checks, schema_mode: as for every source (:class:`Source`).
    """

    kind: ClassVar[str] = "postgres"
    __hash__ = Source.__hash__  # by kind and name: a list field is not hashable
    connection: str
    partition_column: str | None = None
    num_partitions: int | None = None
    partition_bounds: tuple[Any, Any] | list[Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.partition_bounds is not None:
            object.__setattr__(self, "partition_bounds", tuple(self.partition_bounds))
        where = self.where
        column, count, bounds = self.partition_column, self.num_partitions, self.partition_bounds
        if column is None:
            if count is not None or bounds is not None:
                raise DefinitionError(
                    f"{where}: num_partitions= and partition_bounds= need partition_column=",
                    fix="name the column to split the read by, e.g. partition_column='id'",
                )
            return
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise DefinitionError(
                f"{where}: partition_column={column!r} needs num_partitions= (a positive int), "
                f"not {count!r}",
                fix="e.g. num_partitions=8",
            )
        if bounds is not None:
            low, high = bounds if len(bounds) == 2 else (None, None)
            try:
                ordered = low is not None and high is not None and low <= high
            except TypeError:
                ordered = False
            if not ordered:
                raise DefinitionError(
                    f"{where}: partition_bounds={bounds!r} is not (low, high) with low <= high",
                    fix="e.g. partition_bounds=(1, 10_000_000), or omit it to use min and max",
                )


@dataclass(frozen=True, kw_only=True)
class SqliteSource(TableSource):
    """A table or query in a local SQLite database file (handy for demos and small apps).

    Args:
        name: unique source name.
        path: the database file (relative paths are read from the project folder).
        table: table to read (or give ``query``).
        query: a SELECT to read instead; parameters go in ``params`` (``:name`` placeholders).
        timestamp_field: the event-time column.
        created_timestamp_field: optional column telling when a row was written.
        cursor_field: incremental reads by this column, as for :class:`PostgresSource`.
        lag: re-read from ``mark - lag`` on each run, as for :class:`PostgresSource`.
        end_value: exclusive upper bound of the cursor, as for :class:`PostgresSource`.
        primary_key: the key columns; required with ``cursor_field``.
        batch_size: rows per Arrow record batch while streaming.
        description, checks, schema_mode: as for every source (:class:`Source`).
    """

    kind: ClassVar[str] = "sqlite"
    __hash__ = Source.__hash__  # by kind and name: a list field is not hashable
    path: str
