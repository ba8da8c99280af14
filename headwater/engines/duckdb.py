"""The embedded batch engine: DuckDB over Arrow.

Reads sources through their connectors, runs the SQL that :mod:`headwater.engines.compile`
produces, and hands back a stream of record batches. DuckDB streams and spills to
``engine.temp_directory``, so memory stays bounded by ``engine.memory_limit`` whatever the input
size. Left unset, the limit is :func:`default_memory_limit` (512 MiB, more with many threads),
not DuckDB's own default of 80 % of the machine's RAM, which lets a run grow with its input.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

from headwater.config.machine import memory_bytes, usable_cpus
from headwater.config.models import EngineConfig
from headwater.engines.compile import Ordered, Restriction, compile_ordered, compile_view
from headwater.errors import ConfigError, DefinitionError, on_interrupt
from headwater.sql import quote_ident as q
from headwater.stores.offline.base import TIME_ORDERED

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.definitions import FeatureView
    from headwater.engines.base import FeatureRequest


_CONNECTIONS: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()
"""The engine's open connections, interrupted when the process is asked to stop."""


def _interrupt_connections() -> None:
    for con in list(_CONNECTIONS):
        con.interrupt()


class DuckDBEngineConfig(EngineConfig):
    """``engine`` of ``type: duckdb``: the embedded batch engine (the default)."""

    type: Literal["duckdb"] = "duckdb"


class DuckDBEngine:
    """Batch computation of feature views on DuckDB (implements
    :class:`headwater.engines.base.BatchEngine`)."""

    config_model: ClassVar[type[DuckDBEngineConfig]] = DuckDBEngineConfig

    def __init__(self, project: ProjectConfig) -> None:
        if not isinstance(project.engine, DuckDBEngineConfig):
            raise ConfigError(
                f"engine.type is {project.engine.type!r}, but the DuckDB engine was opened",
                fix="open the engine with headwater.engines.open_engine",
            )
        self.project = project
        self.config = project.engine

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A connection set to UTC with the configured memory, threads and spill folder."""
        import duckdb

        con = duckdb.connect()
        on_interrupt(_interrupt_connections)
        _CONNECTIONS.add(con)
        con.execute("SET TimeZone = 'UTC'")
        temp = self.project.resolve(self.config.temp_directory)
        os.makedirs(temp, exist_ok=True)
        con.execute("SET temp_directory = ?", [temp])
        # DuckDB sizes its pool by the machine's cores; a process confined to fewer (taskset,
        # a container's CPU set) would run threads that only take turns on them.
        con.execute(f"SET threads = {int(self.config.threads or usable_cpus())}")
        limit = self.config.memory_limit or default_memory_limit(self.config.threads)
        con.execute("SET memory_limit = ?", [limit])
        con.execute("SET preserve_insertion_order = false")
        return con

    # ------------------------------------------------------------------ validation
    def validate(self, view: FeatureView, schema: pa.Schema) -> pa.Schema:
        """Check ``view`` against its source's columns; return the output schema.

        Raises:
            DefinitionError: naming the view, the field and the fix.
        """
        import duckdb

        columns = schema.names
        listing = ", ".join(columns)
        source = view.source

        def need(column: str | None, role: str) -> None:
            if column and column not in columns:
                raise DefinitionError(
                    f"view {view.name!r}: {role} names {column!r}, which is not a column of "
                    f"source {source.name!r} (columns: {listing})",
                    fix=f"use one of the source's columns for the {role}",
                )

        need(source.timestamp_field, "timestamp_field")
        need(source.created_timestamp_field, "created_timestamp_field")
        need(getattr(source, "cursor_field", None), "cursor_field")
        for key in source.primary_key:
            need(key, "primary_key")
        for key in view.join_keys:
            need(key, f"join key of entity {view.entity.name!r}")
        for agg in view.aggregations:
            need(agg.column, f"input of aggregation {agg.name!r}")
        con = self.connect()
        try:
            con.register("__hw_empty", schema.empty_table())
            for name, expression in view.projections.items():
                try:
                    con.execute(f"SELECT ({expression}) AS {q(name)} FROM __hw_empty LIMIT 0")
                except duckdb.Error as exc:
                    raise DefinitionError(
                        f"view {view.name!r}: feature {name!r}: expression {expression!r} is "
                        f"invalid: {_first_line(exc)}",
                        fix=f"write a SQL expression over the columns of source "
                        f"{source.name!r} ({listing})",
                    ) from None
            sql = compile_view(view, "__hw_empty", schema)
            try:
                return con.sql(f"SELECT * FROM ({sql}) LIMIT 0").to_arrow_table().schema
            except duckdb.Error as exc:
                raise DefinitionError(
                    f"view {view.name!r}: cannot be computed from source {source.name!r}: "
                    f"{_first_line(exc)}",
                    fix="check the aggregation columns' types and the timestamp column",
                ) from None
        finally:
            con.close()

    # ------------------------------------------------------------------ computation
    def compute(
        self,
        con: duckdb.DuckDBPyConnection,
        view: FeatureView,
        relation: str,
        restriction: Restriction | None = None,
        batch_rows: int = 100_000,
        time_range: tuple[int, int] | None = None,
        *,
        ordered: bool = False,
    ) -> pa.RecordBatchReader:
        """Stream ``view``'s output rows computed from ``relation``; with ``ordered``, in
        ``event_timestamp`` order, the reader's schema saying so (:data:`TIME_ORDERED`).

        The sort of an ordered computation runs within :func:`sort_memory_limit` (the rest of
        its rows spill to ``temp_directory``): spilled sorted runs cost no time that could be
        measured (they stay in the page cache), while a sort held in memory made a run's peak
        memory grow with its rows. The connection's limit comes back once the rows are read."""
        import pyarrow as pa

        schema = con.sql(f"SELECT * FROM {relation} LIMIT 0").to_arrow_table().schema
        if not ordered:
            sql = compile_view(view, relation, schema, restriction, time_range)
            return con.sql(sql).to_arrow_reader(batch_rows)
        plan = compile_ordered(view, relation, schema, restriction, time_range)
        restore = _lower_memory_limit(con, sort_memory_limit(self.config.threads))
        reader = con.sql(plan.sql).to_arrow_reader(batch_rows)
        marked = reader.schema.with_metadata(TIME_ORDERED)
        batches = _one_per_run(con, plan, reader) if plan.run else reader

        def conformed() -> Iterator[pa.RecordBatch]:
            for batch in batches:
                yield pa.RecordBatch.from_arrays(batch.columns, schema=marked)
            if restore is not None:  # the sort is done with
                con.execute("SET memory_limit = ?", [restore])

        return pa.RecordBatchReader.from_batches(marked, conformed())

    def unplaceable_rows(
        self, con: duckdb.DuckDBPyConnection, view: FeatureView, relation: str
    ) -> tuple[int, int]:
        """``(rows, rows without an event time or a join key)`` of ``relation``."""
        bad = " OR ".join(
            [f"{q(view.source.timestamp_field)} IS NULL"]
            + [f"{q(k)} IS NULL" for k in view.join_keys]
        )
        row = con.sql(f"SELECT count(*), count(*) FILTER (WHERE {bad}) FROM {relation}").fetchall()[
            0
        ]
        return (int(row[0]), int(row[1])) if row else (0, 0)

    # ------------------------------------------------------------------ training sets
    def point_in_time_join(
        self,
        entities: pa.Table,
        requests: Sequence[FeatureRequest],
        *,
        full_feature_names: bool = False,
        order: Sequence[tuple[str, str]] | None = None,
    ) -> pa.Table:
        """A training set, joined with DuckDB's ``ASOF LEFT JOIN``
        (:func:`headwater.engines.retrieval.point_in_time_join`)."""
        from headwater.engines.retrieval import point_in_time_join

        con = self.connect()
        try:
            return point_in_time_join(
                con,
                entities,
                [(r.view, r.features, r.history, r.schema) for r in requests],
                full_feature_names=full_feature_names,
                order=list(order) if order is not None else None,
            )
        finally:
            con.close()


def _one_per_run(
    con: duckdb.DuckDBPyConnection, plan: Ordered, batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """:func:`one_per_run` choosing a run's row with ``plan``'s order, in DuckDB (on a cursor:
    ``con`` is busy streaming ``batches``)."""
    cursor: duckdb.DuckDBPyConnection | None = None

    def choose(rows: pa.Table, position: str) -> pa.Array:
        nonlocal cursor
        cursor = cursor or con.cursor()
        cursor.register("__hw_runs", rows)
        try:
            chosen = cursor.sql(plan.picks("__hw_runs", position)).to_arrow_table()
        finally:
            cursor.unregister("__hw_runs")
        return chosen.column(position).combine_chunks()

    try:
        yield from one_per_run(batches, plan.run, choose)
    finally:
        if cursor is not None:
            cursor.close()


POSITION = "__hw_position"


def one_per_run(
    batches: Iterable[pa.RecordBatch],
    columns: Sequence[str],
    choose: Callable[[pa.Table, str], pa.Array],
) -> Iterator[pa.RecordBatch]:
    """One row per run of rows equal in ``columns`` (the rows ordered so that equal ones are
    adjacent, and never null there): a run of one row is kept; of a longer one, the row whose
    position ``choose`` returns (given the runs' rows with their positions in a column named as
    its second argument). Runs may span batches; float NaNs are equal, as DuckDB groups them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    carry: list[pa.RecordBatch] = []  # the last run so far, which the next batch may continue
    for batch in batches:
        if not batch.num_rows:
            continue
        rows = pa.Table.from_batches([*carry, batch])
        same = _same_as_previous(rows, columns)
        # The last run is held back: the next batch may continue it.
        breaks = pc.indices_nonzero(pc.invert(same))
        end = breaks[len(breaks) - 1].as_py() + 1 if len(breaks) else 0
        carry = rows.slice(end).to_batches()
        yield from _chosen(rows.slice(0, end), same.slice(0, max(end - 1, 0)), choose)
    if carry:
        rows = pa.Table.from_batches(carry)
        yield from _chosen(rows, _same_as_previous(rows, columns), choose)


def _same_as_previous(rows: pa.Table, columns: Sequence[str]) -> pa.Array:
    """For rows 1..n-1: whether the row equals the one before in ``columns``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    count = rows.num_rows
    if count < 2:  # (an empty chunked array would import pandas to combine its no chunks)
        return pa.nulls(0, pa.bool_()).is_valid()
    same: pa.Array | None = None
    for name in columns:
        column = rows.column(name)
        after, before = column.slice(1), column.slice(0, count - 1)
        equal = pc.equal(after, before)
        if pa.types.is_floating(column.type):
            equal = pc.or_(equal, pc.and_(pc.is_nan(after), pc.is_nan(before)))
        same = equal if same is None else pc.and_(same, equal)
    assert same is not None  # a run has at least one column
    return same.combine_chunks() if isinstance(same, pa.ChunkedArray) else same


def _chosen(
    rows: pa.Table, same: pa.Array, choose: Callable[[pa.Table, str], pa.Array]
) -> Iterator[pa.RecordBatch]:
    """``rows`` (whole runs) with one row per run; ``same`` as :func:`_same_as_previous`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not rows.num_rows:
        return
    if not len(same) or not pc.any(same).as_py():
        yield from rows.to_batches()
        return
    first = pa.nulls(1, pa.bool_()).is_valid()  # [false]: row 0 has no row before it
    joined = pa.concat_arrays([first, same])  # row i continues a run
    in_run = pc.or_(joined, pa.concat_arrays([same, first]))  # or the next row continues it
    positions = pc.indices_nonzero(in_run)
    runs = rows.take(positions).append_column(POSITION, positions)
    picked = choose(runs, POSITION).cast(positions.type)
    keep = pa.concat_arrays([pc.indices_nonzero(pc.invert(in_run)), picked])
    keep = keep.take(pc.sort_indices(keep))
    yield from rows.take(keep).to_batches()


def sort_memory_limit(threads: int | None = None) -> str:
    """DuckDB's ``memory_limit`` while it sorts a view's rows into event-time order: 128 MiB,
    or 64 MiB per thread when that is more (never above the engine's own limit)."""
    return f"{max(128, 64 * (threads or usable_cpus()))}MiB"


def _lower_memory_limit(con: duckdb.DuckDBPyConnection, limit: str) -> str | None:
    """Set ``con``'s ``memory_limit`` to ``limit`` when that is lower; return the setting to
    restore (``None`` when it stayed)."""
    current = str(con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0])
    con.execute("SET memory_limit = ?", [limit])
    lowered = str(con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0])
    if memory_bytes(lowered) >= memory_bytes(current):
        con.execute("SET memory_limit = ?", [current])
        return None
    return current


def default_memory_limit(threads: int | None = None) -> str:
    """DuckDB's ``memory_limit`` when ``engine.memory_limit`` is not set: 512 MiB, or 128 MiB
    per thread when that is more (DuckDB needs some memory per thread), and never more than
    80 % of the machine's RAM (DuckDB's own default)."""
    count = threads or usable_cpus()
    mib = max(512, 128 * count)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX
        ram = 0
    if ram:
        mib = min(mib, int(ram * 0.8) >> 20)
    return f"{mib}MiB"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__
