"""Offline store on Delta Lake (delta-rs): ACID merges, time travel, readable by Spark/Trino.

A view's first write creates its table. On a local path, DuckDB orders the rows by partition
(spilling beyond its ``memory_limit``), pyarrow writes one partition's Parquet files after the
other into a staging folder beside the table, delta-rs makes that folder a Delta table
(``convert_to_deltalake`` reads the files' footers for statistics), and the folder is renamed
into place: memory does not grow with the number of rows, and the table appears whole or not at
all. (delta-rs's own writer, still used on object stores, keeps a growing share of its input in
memory: 1.2 GiB for 3M rows of a ten-column view over 90 days.)

Later writes MERGE on (event_date, join keys, event_timestamp), one MERGE per slice of about
``MERGE_ROWS`` rows of whole partitions, so that delta-rs holds one slice and reads only the
target files of its partitions. Small writes (``SMALL_ROWS``, ``SMALL_BYTES``) skip DuckDB:
they are ordered in memory, or merged at once. See
docs/decisions/0012-postgres-pool-and-bounded-writes.md.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, SecretStr

from headwater.config.machine import memory_bytes
from headwater.config.models import OfflineStoreConfig
from headwater.errors import DefinitionError, RunFailed
from headwater.sql import quote_ident as q
from headwater.stores.offline.base import (
    DELETED,
    PARTITION,
    SEQ,
    WriteStats,
    time_ordered,
    with_storage_columns,
)
from headwater.stores.offline.files import ROW_GROUP_ROWS, PartitionFiles, runs
from headwater.stores.offline.tables import Feed, TableMode, check_write, conformed

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as pads

    from headwater.config import ProjectConfig
    from headwater.definitions import FeatureView


class DeltaOfflineStoreConfig(OfflineStoreConfig):
    """``offline_store`` of ``type: delta``: history in Delta Lake tables, one per feature view
    (the default)."""

    type: Literal["delta"] = "delta"
    storage_options: dict[str, SecretStr] = Field(default_factory=dict)
    """Object-store options (S3 keys, endpoint, region) passed to delta-rs."""


class DeltaOfflineStore:
    """One Delta table per feature view at ``<path>/<view name>/``, partitioned by event date."""

    config_model: ClassVar[type[DeltaOfflineStoreConfig]] = DeltaOfflineStoreConfig
    SUPPORTS_TIME_TRAVEL: ClassVar[bool] = True

    WRITER_MEMORY_LIMIT: ClassVar[str] = "256MB"
    """DuckDB ``memory_limit`` of the first write's Parquet writer (at most the engine's): it
    holds a row group per open partition file and spills the rest to the engine's temp folder."""

    def __init__(self, config: DeltaOfflineStoreConfig, project: ProjectConfig) -> None:
        self.root = project.resolve(config.path).rstrip("/")
        self.storage_options = {k: v.get_secret_value() for k, v in config.storage_options.items()}
        self.project = project

    def location(self, view_name: str) -> str:
        return f"{self.root}/{view_name}"

    def _table(self, view_name: str) -> Any:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(
                self.location(view_name), storage_options=self.storage_options or None
            )
        except TableNotFoundError:
            return None

    def write(self, view: FeatureView, data: pa.RecordBatchReader, *, seq: int) -> WriteStats:
        import pyarrow as pa

        schema, batches = with_storage_columns(data, seq)
        table = self._table(view.name)
        has_deleted = DELETED in schema.names
        # A small write (most incremental runs, every streaming micro-batch) is handled in
        # memory; a large one goes through DuckDB, ordered by partition and spilling, unless
        # the engine handed its rows in event-time order already.
        head, rest = _head(batches)
        if table is None:
            return self._create(view, schema, head, rest, has_deleted)
        if rest is None:
            return self._merge(table, view, pa.Table.from_batches(head, schema), has_deleted)
        # One MERGE per slice of the rows ordered by partition, each slice whole partitions
        # where it can: delta-rs holds a merge's source, and the partitions it names are all
        # the target it reads. The engine's output holds one row per key, so the slices touch
        # disjoint keys and their merges add up to one merge of all rows (each one idempotent,
        # as a rerun after a crash between two of them needs).
        if time_ordered(schema):
            return self._merge_slices(table, view, itertools.chain(head, rest), has_deleted)
        con = self._duckdb()
        feed = Feed(schema, itertools.chain(head, rest))
        try:
            con.register("__hw_rows", feed.reader())
            with feed.errors():
                ordered = con.sql(f"SELECT * FROM __hw_rows ORDER BY {q(PARTITION)}")
                rows = ordered.to_arrow_reader(ROW_GROUP_ROWS)
                return self._merge_slices(table, view, rows, has_deleted)
        finally:
            con.close()

    def _merge_slices(
        self, table: Any, view: FeatureView, rows: Iterable[pa.RecordBatch], has_deleted: bool
    ) -> WriteStats:
        """MERGE ``rows`` (ordered by partition) one slice at a time."""
        import pyarrow as pa

        inserted = updated = deleted = 0
        for chunk in _slices(rows, MERGE_ROWS):
            source = pa.Table.from_batches(chunk)
            stats = self._merge(table, view, source, has_deleted)
            inserted, updated = inserted + stats.inserted, updated + stats.updated
            deleted += stats.deleted
        return WriteStats(inserted=inserted, updated=updated, deleted=deleted)

    def _merge(
        self, table: Any, view: FeatureView, source: pa.Table, has_deleted: bool
    ) -> WriteStats:
        """MERGE ``source`` (rows with the storage columns) into the view's table."""
        schema = source.schema
        stored_schema = schema.remove(schema.get_field_index(DELETED)) if has_deleted else schema
        keys = [*view.join_keys, "event_timestamp"]
        predicate = " AND ".join(
            [f"t.{PARTITION} = s.{PARTITION}"] + [f"t.{q(k)} = s.{q(k)}" for k in keys]
        )
        values = [n for n in stored_schema.names if n not in (*keys, PARTITION, SEQ)]
        # A feature added since the table was written has no target column yet (merge_schema
        # adds it): a stored row changes when the new value is not null.
        stored = {f.name for f in table.schema().fields}
        changed = (
            " OR ".join(
                f"(t.{q(c)} IS DISTINCT FROM s.{q(c)})"
                if c in stored
                else f"(s.{q(c)} IS NOT NULL)"
                for c in values
            )
            or "false"
        )
        update_if = f"({changed})"
        if view.has_created_timestamp:
            update_if += (
                " AND (t.created_timestamp IS NULL OR s.created_timestamp >= t.created_timestamp)"
            )
        merger = table.merge(
            source=source,
            predicate=predicate,
            source_alias="s",
            target_alias="t",
            merge_schema=True,
            # The slice is in memory anyway: its partition values prune the target files read.
            streamed_exec=False,
        )
        if has_deleted:
            merger = merger.when_matched_delete(predicate=f"s.{DELETED}")
            update_if = f"NOT s.{DELETED} AND {update_if}"
        merger = merger.when_matched_update(
            updates={q(c): f"s.{q(c)}" for c in [*values, SEQ]}, predicate=update_if
        )
        insert = {q(c): f"s.{q(c)}" for c in stored_schema.names}
        merger = merger.when_not_matched_insert(
            updates=insert, predicate=f"NOT s.{DELETED}" if has_deleted else None
        )
        metrics = merger.execute()
        return WriteStats(
            inserted=int(metrics.get("num_target_rows_inserted", 0)),
            updated=int(metrics.get("num_target_rows_updated", 0)),
            deleted=int(metrics.get("num_target_rows_deleted", 0)),
        )

    def _create(
        self,
        view: FeatureView,
        schema: pa.Schema,
        head: list[pa.RecordBatch],
        rest: Iterator[pa.RecordBatch] | None,
        has_deleted: bool,
    ) -> WriteStats:
        """Create the view's table from its first rows: ``head``, then ``rest`` (``None`` when
        ``head`` holds them all)."""
        location = self.location(view.name)
        final = Path(location)
        batches = iter(head) if rest is None else itertools.chain(head, rest)
        if (
            "://" in location
            or (final.exists() and any(final.iterdir()))
            or not any(b.num_rows for b in head)
        ):
            # Object stores, a folder holding files that are not a Delta table (another
            # store's, say: delta-rs writes the table beside them), and an empty table (its
            # schema, no file): delta-rs's writer, as before.
            return self._create_with_delta_rs(view, schema, batches, has_deleted)
        _check_storable(view, schema)
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned(final.parent, view.name)
        owner = f"{socket.gethostname()}-{os.getpid()}"
        staging = Path(
            tempfile.mkdtemp(prefix=f".{view.name}-{owner}-", suffix=".creating", dir=final.parent)
        )
        try:
            (staging / "table").mkdir()
            if rest is None:
                written = _write_small(schema, head, has_deleted, staging / "table")
            elif time_ordered(schema):
                written = _write_ordered(schema, batches, has_deleted, staging / "table")
            else:
                written = self._write_parquet(schema, batches, has_deleted, staging / "table")
            self._convert(staging / "table")
            try:
                os.replace(staging / "table", final)
            except OSError:
                raise RunFailed(
                    f"view {view.name!r}: another run created the offline table {location} "
                    "while this one wrote it",
                    fix="run the view again: its rows will be merged into that table",
                ) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return WriteStats(inserted=written)

    def _write_parquet(
        self, schema: pa.Schema, batches: Iterator[pa.RecordBatch], has_deleted: bool, to: Path
    ) -> int:
        """Write the rows (tombstones left out) as hive-partitioned Parquet files under ``to``;
        return how many were written.

        DuckDB orders the rows by partition (spilling to disk beyond its memory limit), so that
        one partition file is open at a time and memory holds one row group.
        """

        stored = [f for f in schema if f.name not in (DELETED,)]
        where = f" WHERE NOT coalesce({q(DELETED)}, false)" if has_deleted else ""
        select = ", ".join(_storable_sql(f) for f in stored)
        con = self._duckdb()
        feed = Feed(schema, batches)
        try:
            con.register("__hw_rows", feed.reader())
            with feed.errors():
                rows = con.sql(
                    f"SELECT {select} FROM __hw_rows{where} ORDER BY {q(PARTITION)}"
                ).to_arrow_reader(ROW_GROUP_ROWS)
                with PartitionFiles(to) as files:
                    for day, run in runs(rows):
                        files.append(day, run.drop_columns([PARTITION]))
            return files.rows
        finally:
            con.close()

    def _duckdb(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection for the Parquet writer: bounded memory, spilling to the engine's
        temp folder."""
        import duckdb

        engine = self.project.engine
        temp = self.project.resolve(engine.temp_directory)
        os.makedirs(temp, exist_ok=True)
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET temp_directory = ?", [temp])
        con.execute("SET memory_limit = ?", [self.WRITER_MEMORY_LIMIT])
        if engine.memory_limit:  # never more than the engine may use
            limit = con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
            con.execute("SET memory_limit = ?", [engine.memory_limit])
            configured = con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
            if memory_bytes(configured) > memory_bytes(limit):
                con.execute("SET memory_limit = ?", [limit])
        if engine.threads:
            con.execute(f"SET threads = {int(engine.threads)}")
        con.execute("SET preserve_insertion_order = false")
        return con

    def _convert(self, folder: Path) -> None:
        """Make ``folder`` (hive-partitioned Parquet files) a Delta table, with file statistics."""
        import pyarrow as pa
        from deltalake import Schema as DeltaSchema
        from deltalake import convert_to_deltalake

        convert_to_deltalake(
            str(folder),
            partition_by=DeltaSchema.from_arrow(pa.schema([pa.field(PARTITION, pa.date32())])),
            partition_strategy="hive",
            configuration={"delta.appendOnly": "false"},
        )

    def _create_with_delta_rs(
        self,
        view: FeatureView,
        schema: pa.Schema,
        batches: Iterator[pa.RecordBatch],
        has_deleted: bool,
    ) -> WriteStats:
        """A first write through delta-rs's writer (object stores)."""
        import pyarrow as pa
        from deltalake import write_deltalake

        written = 0

        def rows() -> Iterator[pa.RecordBatch]:
            nonlocal written
            for batch in batches:
                if has_deleted:  # tombstones delete nothing in an empty table
                    batch = _without_tombstones(batch)
                written += batch.num_rows
                yield batch

        stored = schema.remove(schema.get_field_index(DELETED)) if has_deleted else schema
        write_deltalake(
            self.location(view.name),
            pa.RecordBatchReader.from_batches(stored, rows()),
            partition_by=[PARTITION],
            mode="append",
            storage_options=self.storage_options or None,
            configuration={"delta.appendOnly": "false"},
        )
        return WriteStats(inserted=written)

    def dataset(self, view_name: str) -> pads.Dataset | None:
        table = self._table(view_name)
        return None if table is None else table.to_pyarrow_dataset()

    def version(self, view_name: str) -> int | None:
        table = self._table(view_name)
        return None if table is None else int(table.version())

    # ------------------------------------------------------------------ side tables
    def write_table(
        self, name: str, data: pa.RecordBatchReader, *, keys: Sequence[str], mode: TableMode
    ) -> int:
        """Write a side table (see :mod:`headwater.stores.offline.tables`): a Delta table at
        ``<path>/<name>``, merged on ``keys``."""
        import pyarrow as pa
        from deltalake import write_deltalake

        check_write(name, keys, mode)
        data = _microseconds(data)
        location = self.location(name)
        options = self.storage_options or None
        table = None if mode == "overwrite" else self._table(name)
        if table is None:
            feed = Feed.of(data)
            with feed.errors():
                write_deltalake(
                    location,
                    feed.reader(),
                    mode="overwrite" if mode == "overwrite" else "append",
                    schema_mode="overwrite" if mode == "overwrite" else None,
                    storage_options=options,
                )
            return feed.rows
        feed = Feed.of(conformed(data, pa.schema(table.schema().to_arrow()), location))
        merger = table.merge(
            source=feed.reader(),
            predicate=" AND ".join(f"t.{q(k)} = s.{q(k)}" for k in keys),
            source_alias="s",
            target_alias="t",
            merge_schema=True,
        )
        if mode == "upsert":
            merger = merger.when_matched_update_all()
        with feed.errors():
            metrics = merger.when_not_matched_insert_all().execute()
        return int(metrics.get("num_target_rows_inserted", 0)) + int(
            metrics.get("num_target_rows_updated", 0)
        )

    def read_table(self, name: str) -> pads.Dataset | None:
        """A side table as a pyarrow dataset (``None`` before its first write)."""
        return self.dataset(name)

    def delete_view(self, view_name: str) -> None:
        location = self.location(view_name)
        if "://" in location:
            table = self._table(view_name)
            if table is not None:
                table.delete()
                table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
            return
        shutil.rmtree(location, ignore_errors=True)


MERGE_ROWS = 512 * 1024
"""Rows per MERGE of a later write (more when one partition holds more)."""


SMALL_ROWS = 128 * 1024
SMALL_BYTES = 32 << 20
"""A write of at most ``SMALL_ROWS`` rows and ``SMALL_BYTES`` is handled in memory."""


def _head(
    batches: Iterator[pa.RecordBatch],
) -> tuple[list[pa.RecordBatch], Iterator[pa.RecordBatch] | None]:
    """The first batches, up to ``SMALL_ROWS`` rows or ``SMALL_BYTES``, and the iterator of the
    others (``None`` when there are none: the write is small)."""
    head: list[pa.RecordBatch] = []
    rows = size = 0
    for batch in batches:
        head.append(batch)
        rows, size = rows + batch.num_rows, size + batch.nbytes
        if rows > SMALL_ROWS or size > SMALL_BYTES:
            return head, batches
    return head, None


def _write_small(schema: pa.Schema, head: list[pa.RecordBatch], has_deleted: bool, to: Path) -> int:
    """:meth:`DeltaOfflineStore._write_parquet` for rows held in memory: the same casts and
    files, ordered by pyarrow."""
    import pyarrow as pa

    table = pa.Table.from_batches(head, schema).sort_by(PARTITION)
    return _write_ordered(schema, iter(table.to_batches()), has_deleted, to)


def _write_ordered(
    schema: pa.Schema, batches: Iterator[pa.RecordBatch], has_deleted: bool, to: Path
) -> int:
    """:meth:`DeltaOfflineStore._write_parquet` for rows ordered by partition already (the
    engine's event-time order): the same casts and files, without sorting."""
    import pyarrow as pa

    stored = pa.schema(
        [_storable_field(f) for f in schema if f.name != DELETED], metadata=schema.metadata
    )
    with PartitionFiles(to) as files:
        for batch in batches:
            if has_deleted:  # tombstones delete nothing in a new table
                batch = _without_tombstones(batch)
            for day, run in runs([_storable(batch, stored)]):
                files.append(day, run.drop_columns([PARTITION]))
    return files.rows


def _without_tombstones(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` without its rows flagged ``_deleted`` and without that column."""
    import pyarrow.compute as pc

    flags = batch.column(batch.schema.get_field_index(DELETED))
    keep = pc.or_kleene(pc.invert(flags), pc.is_null(flags))  # not true: false or null
    return batch.filter(keep).drop_columns([DELETED])


def _storable(batch: pa.RecordBatch, stored: pa.Schema) -> pa.RecordBatch:
    """``batch`` cast to ``stored`` (:func:`_storable_field`'s types) as DuckDB's casts of
    :func:`_storable_sql` do: finer timestamps rounded up to microseconds (a time never moves
    earlier, decision 26), integers checked."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if batch.schema.equals(stored):
        return batch
    columns = []
    for i, field in enumerate(stored):
        column = batch.column(i)
        if pa.types.is_timestamp(column.type) and column.type.unit == "ns":
            column = pc.ceil_temporal(column, unit="microsecond")
        columns.append(column.cast(field.type, safe=not pa.types.is_timestamp(field.type)))
    return pa.RecordBatch.from_arrays(columns, schema=stored)


def _microseconds(data: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """``data`` with nanosecond timestamps rounded *up* to microseconds, Delta's precision
    (delta-rs's writer truncates them, which would move a time earlier: decision 26)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = data.schema
    fine = [
        i for i, f in enumerate(schema) if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
    ]
    if not fine:
        return data
    fields = [
        f.with_type(pa.timestamp("us", tz=f.type.tz)) if i in fine else f
        for i, f in enumerate(schema)
    ]
    target = pa.schema(fields, metadata=schema.metadata)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in data:
            columns = [
                pc.ceil_temporal(c, unit="microsecond").cast(target.field(i).type)
                if i in fine
                else c
                for i, c in enumerate(batch.columns)
            ]
            yield pa.RecordBatch.from_arrays(columns, schema=target)

    return pa.RecordBatchReader.from_batches(target, batches())


def _remove_abandoned(parent: Path, view_name: str) -> None:
    """Remove the staging folders of first writes of ``view_name`` whose process is gone
    (killed mid-write); those of live processes, or of other hosts, are left alone."""
    host = socket.gethostname()
    for folder in parent.glob(f".{view_name}-*.creating"):
        owner = folder.name[len(view_name) + 2 :].rsplit("-", 1)[0]  # "<host>-<pid>"
        owner_host, _, pid = owner.rpartition("-")
        if owner_host != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:  # a live process of another user
            continue


def _slices(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[list[pa.RecordBatch]]:
    """Batches ordered by ``event_date`` cut into slices of about ``rows`` rows, at partition
    boundaries unless one partition holds twice as many."""
    slice_: list[pa.RecordBatch] = []
    held, day = 0, None
    for run_day, run in runs(batches):
        for start in range(0, run.num_rows, rows):
            piece = run.slice(start, rows)
            if slice_ and ((run_day != day and held >= rows) or held + piece.num_rows > 2 * rows):
                yield slice_
                slice_, held = [], 0
            slice_.append(piece)
            held, day = held + piece.num_rows, run_day
    if slice_:
        yield slice_


def _storable_field(field: pa.Field) -> pa.Field:
    """``field`` with the type :func:`_storable_sql` casts it to."""
    import pyarrow as pa

    kind = field.type
    if pa.types.is_timestamp(kind) and kind.unit != "us":
        return field.with_type(pa.timestamp("us", tz="UTC" if kind.tz else None))
    if pa.types.is_unsigned_integer(kind):
        signed = {8: pa.int8(), 16: pa.int16(), 32: pa.int32(), 64: pa.int64()}
        return field.with_type(signed[kind.bit_width])
    return field


def _storable_sql(field: pa.Field) -> str:
    """The SELECT item writing ``field`` as Delta Lake stores it (as delta-rs's writer casts):
    timestamps in microseconds (nanoseconds rounded up), unsigned integers as signed ones of
    the same width."""
    import pyarrow as pa

    kind, name = field.type, q(field.name)
    if pa.types.is_timestamp(kind) and kind.unit == "ns":
        # Rounded up to the microsecond (DuckDB's cast rounds to the nearest, maybe down).
        minus = f"(-epoch_ns({name}))"
        floor = f"(({minus} - ((({minus} % 1000) + 1000) % 1000)) // 1000)"
        make = "make_timestamptz" if kind.tz else "make_timestamp"
        return f"{make}(-{floor}) AS {name}"
    if pa.types.is_timestamp(kind) and kind.unit != "us":
        return f"CAST({name} AS {'TIMESTAMPTZ' if kind.tz else 'TIMESTAMP'}) AS {name}"
    if pa.types.is_unsigned_integer(kind):
        signed = {8: "TINYINT", 16: "SMALLINT", 32: "INTEGER", 64: "BIGINT"}[kind.bit_width]
        return f"CAST({name} AS {signed}) AS {name}"
    return name


def _check_storable(view: FeatureView, schema: pa.Schema) -> None:
    """Refuse, naming the column, a type Delta Lake cannot hold (``time``, intervals, ...).

    Raises:
        DefinitionError: naming the view, the column and the fix.
    """
    import pyarrow as pa

    for field in schema:
        kind = field.type
        if pa.types.is_time(kind) or pa.types.is_interval(kind) or pa.types.is_duration(kind):
            raise DefinitionError(
                f"view {view.name!r}: column {field.name!r} is {kind}, which the Delta offline "
                "store cannot hold",
                fix="convert it in the view, e.g. CAST(x AS VARCHAR) or epoch_us(x)",
            )
