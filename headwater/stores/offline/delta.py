"""Offline store on Delta Lake (delta-rs): ACID merges, time travel, readable by Spark/Trino."""

from __future__ import annotations

import shutil
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
        from deltalake import write_deltalake

        schema, batches = with_storage_columns(data, seq)
        table = self._table(view.name)
        has_deleted = DELETED in schema.names
        stored_schema = schema.remove(schema.get_field_index(DELETED)) if has_deleted else schema
        if table is None:
            write_deltalake(
                self.location(view.name),
                stored_schema.empty_table(),
                partition_by=[PARTITION],
                mode="append",
                storage_options=self.storage_options or None,
                configuration={"delta.appendOnly": "false"},
            )
            table = self._table(view.name)
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
