"""Sources: where raw records come from.

A source names its event-time column (``timestamp_field``) and optionally a
``created_timestamp_field`` (when the row was written, used to break ties), a ``primary_key``
and, for incremental loads, a ``cursor_field``. Sources are plain declarations: reading them is
the job of :mod:`headwater.connectors`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from headwater.definitions.checks import Check, SchemaMode, check_list, check_schema_mode
from headwater.definitions.durations import to_millis
from headwater.definitions.naming import check_name
from headwater.errors import DefinitionError


@dataclass(frozen=True, kw_only=True)
class Source:
    """Base of all source kinds.

    Every kind also takes ``checks=`` (data-quality checks run on the rows read, see
    :mod:`headwater.checks`) and ``schema_mode=`` (what a run does when the source's columns
    differ from those recorded at ``apply``: ``"evolve"``, ``"freeze"``, ``"discard_row"`` or
    ``"discard_column"``; see docs/quality.md).
    """

    kind: ClassVar[str] = ""
    name: str
    timestamp_field: str
    created_timestamp_field: str | None = None
    primary_key: list[str] = field(default_factory=list)
    description: str = ""
    checks: tuple[Check, ...] = ()
    schema_mode: str = "evolve"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Kinds whose constructor does not list checks= / schema_mode= still accept them.
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or "checks" in inspect.signature(init).parameters:
            return

        @functools.wraps(init)
        def with_quality(
            self: Source,
            *args: Any,
            checks: Sequence[Check] | None = None,
            schema_mode: SchemaMode = "evolve",
            **values: Any,
        ) -> None:
            init(self, *args, **values)
            object.__setattr__(self, "checks", checks)
            object.__setattr__(self, "schema_mode", schema_mode)
            self._check_quality()

        cls.__init__ = with_quality  # type: ignore[method-assign,assignment]  # wraps the constructor

    def _check_quality(self) -> None:
        owner = f"{self.kind or 'source'} source {self.name!r}"
        object.__setattr__(self, "checks", check_list(self.checks, owner))
        object.__setattr__(self, "schema_mode", check_schema_mode(self.schema_mode, owner))

    def __post_init__(self) -> None:
        check_name(self.name, "source")
        self._check_quality()
        if not self.timestamp_field:
            raise DefinitionError(
                f"source {self.name!r} has no timestamp_field",
                fix="name the event-time column, e.g. timestamp_field='event_timestamp'",
            )
        if isinstance(self.primary_key, str):
            object.__setattr__(self, "primary_key", [self.primary_key])
        object.__setattr__(self, "primary_key", list(self.primary_key or []))

    @property
    def incremental(self) -> bool:
        """True when the source is read incrementally by a cursor."""
        return False

    def _assign(self, **values: Any) -> None:
        """Set the fields of this frozen declaration, then run the shared checks.

        Fields not given keep their declared defaults, so a subclass's constructor need only
        pass what it takes.
        """
        for spec in dataclasses.fields(self):
            if spec.name in values:
                value = values[spec.name]
            elif spec.default is not dataclasses.MISSING:
                value = spec.default
            elif spec.default_factory is not dataclasses.MISSING:
                value = spec.default_factory()
            else:
                continue
            object.__setattr__(self, spec.name, value)
        self.__post_init__()

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description (parameter values such as dates become strings)."""
        spec: dict[str, Any] = {"kind": self.kind}
        for key, value in self.__dict__.items():
            if (key, value) in (("checks", ()), ("schema_mode", "evolve")):
                continue  # defaults stay out, so specs of sources without checks do not change
            spec[key] = [c.to_spec() for c in value] if key == "checks" else _jsonable(value)
        return spec

    def __hash__(self) -> int:
        return hash((self.kind, self.name))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


_FORMATS = ("csv", "json", "parquet")


@dataclass(frozen=True, kw_only=True, init=False)
class FileSource(Source):
    """Files in a data lake: CSV, JSON (newline-delimited or arrays) or Parquet.

    Args:
        name: unique source name.
        path: a file, a glob (``data/clicks/*.parquet``) or a folder of hive partitions
            (``data/clicks/``, with ``date=2024-01-01/`` sub-folders). Relative paths are read
            from the project folder.
        timestamp_field: the event-time column.
        created_timestamp_field: optional column telling when a row was written.
        format: ``csv``, ``json`` or ``parquet``; guessed from the path's extension when omitted.
        hive_partitioning: read ``key=value`` folder names as columns (default: on for folders
            and globs that cross such folders).
        options: extra reader options (for CSV: ``delim``, ``header``, ``quote``, ...).
        primary_key: optional key columns.
        checks: data-quality checks on the rows read (:mod:`headwater.checks`).
        schema_mode: ``"evolve"`` (default), ``"freeze"``, ``"discard_row"`` or
            ``"discard_column"``: what a run does with columns that differ from ``apply``.
    """

    kind: ClassVar[str] = "file"
    path: str
    format: str | None = None
    hive_partitioning: bool | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        name: str,
        *,
        path: str,
        timestamp_field: str,
        created_timestamp_field: str | None = None,
        format: str | None = None,
        hive_partitioning: bool | None = None,
        options: dict[str, Any] | None = None,
        primary_key: list[str] | str | None = None,
        description: str = "",
        checks: Sequence[Check] | None = None,
        schema_mode: SchemaMode = "evolve",
    ) -> None:
        self._assign(
            name=name,
            path=path,
            timestamp_field=timestamp_field,
            created_timestamp_field=created_timestamp_field,
            format=format,
            hive_partitioning=hive_partitioning,
            options=dict(options or {}),
            primary_key=primary_key or [],
            description=description,
            checks=checks,
            schema_mode=schema_mode,
        )
        if not path:
            raise DefinitionError(
                f"file source {name!r} has no path", fix="path='data/x/*.parquet'"
            )
        fmt = format or _guess_format(path)
        if fmt not in _FORMATS:
            raise DefinitionError(
                f"file source {name!r}: cannot tell the format of {path!r}",
                fix=f"pass format= one of {', '.join(_FORMATS)}",
            )
        object.__setattr__(self, "format", fmt)


def _guess_format(path: str) -> str | None:
    lowered = path.lower().rstrip("/")
    for suffix, fmt in (
        (".parquet", "parquet"),
        (".pq", "parquet"),
        (".csv", "csv"),
        (".tsv", "csv"),
        (".json", "json"),
        (".jsonl", "json"),
        (".ndjson", "json"),
        (".csv.gz", "csv"),
        (".json.gz", "json"),
    ):
        if lowered.endswith(suffix):
            return fmt
    return None


@dataclass(frozen=True, kw_only=True, init=False)
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

    table: str | None = None
    query: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    cursor_field: str | None = None
    lag: str | timedelta | int | float | Decimal | None = None
    end_value: int | float | Decimal | date | datetime | str | None = None
    batch_size: int = 100_000

    @property
    def incremental(self) -> bool:
        return self.cursor_field is not None

    def _assign_table(self, *, params: dict[str, Any] | None, **values: Any) -> None:
        self._assign(params=dict(params or {}), **values)
        if (self.table is None) == (self.query is None):
            raise DefinitionError(
                f"{self.kind} source {self.name!r} needs exactly one of table= or query=",
                fix="table='public.orders' or query='SELECT ...'",
            )
        if self.cursor_field and not self.primary_key:
            raise DefinitionError(
                f"{self.kind} source {self.name!r} has cursor_field={self.cursor_field!r} but "
                "no primary_key; rows that share the cursor value at the boundary are re-read "
                "and need a key to be de-duplicated",
                fix="add primary_key=['id']",
            )
        if self.batch_size <= 0:
            raise DefinitionError(f"{self.kind} source {self.name!r}: batch_size must be positive")
        self._check_bounds()

    def _check_bounds(self) -> None:
        where = f"{self.kind} source {self.name!r}"
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


@dataclass(frozen=True, kw_only=True, init=False)
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
        description: free text shown in the registry and dashboard.
        checks: data-quality checks on the rows read (:mod:`headwater.checks`).
        schema_mode: ``"evolve"`` (default), ``"freeze"``, ``"discard_row"`` or
            ``"discard_column"``: what a run does with columns that differ from ``apply``.
    """

    kind: ClassVar[str] = "postgres"
    connection: str
    partition_column: str | None = None
    num_partitions: int | None = None
    partition_bounds: tuple[Any, Any] | None = None

    def __init__(
        self,
        name: str,
        *,
        connection: str,
        timestamp_field: str,
        table: str | None = None,
        query: str | None = None,
        params: dict[str, Any] | None = None,
        created_timestamp_field: str | None = None,
        cursor_field: str | None = None,
        lag: str | timedelta | int | float | Decimal | None = None,
        end_value: int | float | Decimal | date | datetime | str | None = None,
        primary_key: list[str] | str | None = None,
        batch_size: int = 100_000,
        partition_column: str | None = None,
        num_partitions: int | None = None,
        partition_bounds: tuple[Any, Any] | list[Any] | None = None,
        description: str = "",
        checks: Sequence[Check] | None = None,
        schema_mode: SchemaMode = "evolve",
    ) -> None:
        self._assign_table(
            name=name,
            connection=connection,
            table=table,
            query=query,
            params=params,
            timestamp_field=timestamp_field,
            created_timestamp_field=created_timestamp_field,
            cursor_field=cursor_field,
            lag=lag,
            end_value=end_value,
            primary_key=primary_key or [],
            batch_size=batch_size,
            partition_column=partition_column,
            num_partitions=num_partitions,
            partition_bounds=None if partition_bounds is None else tuple(partition_bounds),
            description=description,
            checks=checks,
            schema_mode=schema_mode,
        )
        self._check_partitions()

    def _check_partitions(self) -> None:
        where = f"postgres source {self.name!r}"
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


@dataclass(frozen=True, kw_only=True, init=False)
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
        checks: data-quality checks on the rows read (:mod:`headwater.checks`).
        schema_mode: ``"evolve"`` (default), ``"freeze"``, ``"discard_row"`` or
            ``"discard_column"``: what a run does with columns that differ from ``apply``.
    """

    kind: ClassVar[str] = "sqlite"
    path: str

    def __init__(
        self,
        name: str,
        *,
        path: str,
        timestamp_field: str,
        table: str | None = None,
        query: str | None = None,
        params: dict[str, Any] | None = None,
        created_timestamp_field: str | None = None,
        cursor_field: str | None = None,
        lag: str | timedelta | int | float | Decimal | None = None,
        end_value: int | float | Decimal | date | datetime | str | None = None,
        primary_key: list[str] | str | None = None,
        batch_size: int = 100_000,
        description: str = "",
        checks: Sequence[Check] | None = None,
        schema_mode: SchemaMode = "evolve",
    ) -> None:
        self._assign_table(
            name=name,
            path=path,
            table=table,
            query=query,
            params=params,
            timestamp_field=timestamp_field,
            created_timestamp_field=created_timestamp_field,
            cursor_field=cursor_field,
            lag=lag,
            end_value=end_value,
            primary_key=primary_key or [],
            batch_size=batch_size,
            description=description,
            checks=checks,
            schema_mode=schema_mode,
        )
