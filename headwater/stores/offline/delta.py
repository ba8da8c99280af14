"""Offline store on Delta Lake (delta-rs): ACID merges, time travel, readable by Spark/Trino."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from headwater.definitions.naming import quote_ident as q
from headwater.stores.offline.base import (
    DELETED,
    PARTITION,
    SEQ,
    WriteStats,
    with_storage_columns,
)

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads

    from headwater.config import ProjectConfig
    from headwater.config.models import DeltaOfflineStore as DeltaConfig
    from headwater.definitions import FeatureView


class DeltaOfflineStore:
    """One Delta table per feature view at ``<path>/<view name>/``, partitioned by event date."""

    SUPPORTS_TIME_TRAVEL: ClassVar[bool] = True

    def __init__(self, config: DeltaConfig, project: ProjectConfig) -> None:
        self.root = project.resolve(config.path).rstrip("/")
        self.storage_options = {k: v.get_secret_value() for k, v in config.storage_options.items()}

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
        stored_schema = schema.remove(schema.get_field_index(DELETED)) if has_deleted else schema
        if table is None:
            # A new table has nothing to merge with, and the engine's output holds one row per
            # key: a streaming append writes the same rows in bounded memory, much faster.
            return self._create(view, stored_schema, batches, has_deleted)
        source = pa.RecordBatchReader.from_batches(schema, batches)
        keys = [*view.join_keys, "event_timestamp"]
        predicate = " AND ".join(
            [f"t.{PARTITION} = s.{PARTITION}"] + [f"t.{q(k)} = s.{q(k)}" for k in keys]
        )
        values = [n for n in stored_schema.names if n not in (*keys, PARTITION, SEQ)]
        changed = " OR ".join(f"(t.{q(c)} IS DISTINCT FROM s.{q(c)})" for c in values) or "false"
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
        batches: Iterator[pa.RecordBatch],
        has_deleted: bool,
    ) -> WriteStats:
        import pyarrow as pa
        import pyarrow.compute as pc
        from deltalake import write_deltalake

        written = 0

        def rows() -> Iterator[pa.RecordBatch]:
            nonlocal written
            for batch in batches:
                if has_deleted:  # tombstones delete nothing in an empty table
                    flags = batch.column(batch.schema.get_field_index(DELETED))
                    batch = batch.filter(pc.invert(pc.fill_null(flags, False)))
                    batch = batch.drop_columns([DELETED])
                written += batch.num_rows
                yield batch

        write_deltalake(
            self.location(view.name),
            pa.RecordBatchReader.from_batches(schema, rows()),
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

    def delete_view(self, view_name: str) -> None:
        location = self.location(view_name)
        if "://" in location:
            table = self._table(view_name)
            if table is not None:
                table.delete()
                table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
            return
        shutil.rmtree(location, ignore_errors=True)
