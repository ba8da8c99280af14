"""Warehouse sinks: load a view's offline rows into PostgreSQL or Redshift tables after a run.

Writers are registered by sink kind in :data:`headwater.plugins.SINKS`, imported on first use;
third parties register under the ``headwater.sinks`` entry-point group. :func:`deliver` is what
the runner calls after the offline write and before the source checkpoint is committed.

Which rows are sent: each sink's state table (next to the target table) holds the last offline
write sequence it loaded; a run sends the offline rows with ``last < _seq <= seq`` (``replace``
sends every row). Because the mark commits in the warehouse transaction that loads the rows, a
run that fails anywhere is repaired by the next run, which sends what the warehouse lacks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from headwater.observability import get_logger
from headwater.plugins import load_plugin

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads

    from headwater.config import ProjectConfig
    from headwater.connectors.sinks.base import SinkStats, SinkWriter
    from headwater.definitions import FeatureView
    from headwater.definitions.sinks import Sink
    from headwater.stores.offline.base import OfflineStore

STORAGE_COLUMNS = ("_seq", "event_date")
"""Offline-store bookkeeping columns that are not sent to warehouses."""

log = get_logger("connectors.sinks")


def open_sink(sink: Sink, view: FeatureView, project: ProjectConfig) -> SinkWriter:
    """The writer for ``sink.kind`` (built-in, or from the ``headwater.sinks`` group)."""
    cls: Any = load_plugin("headwater.sinks", sink.kind)
    writer: SinkWriter = cls(sink, view, project)
    return writer


def offline_rows(
    dataset: pads.Dataset, *, after: int | None, upto: int, batch_rows: int = 100_000
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The rows of an offline dataset with ``after < _seq <= upto`` (all up to ``upto`` when
    ``after`` is None), without the storage columns, streamed in batches."""
    import pyarrow.dataset as pads

    seq = pads.field("_seq")
    condition = seq <= upto if after is None else (seq > after) & (seq <= upto)
    columns = [n for n in dataset.schema.names if n not in STORAGE_COLUMNS]
    schema = dataset.schema
    for name in STORAGE_COLUMNS:
        if name in schema.names:
            schema = schema.remove(schema.get_field_index(name))
    batches = dataset.to_batches(columns=columns, filter=condition, batch_size=batch_rows)
    return schema, (b for b in batches if b.num_rows)


def deliver(
    view: FeatureView,
    offline: OfflineStore,
    project: ProjectConfig,
    *,
    seq: int,
    run_id: str,
    table: str | None = None,
) -> list[SinkStats]:
    """Load the rows the view's sinks lack, one sink after the other.

    Args:
        view: the view just written to the offline store.
        offline: the offline store holding its rows.
        project: the configuration (for the sinks' connections).
        seq: the write sequence of this run's offline write.
        run_id: this run's id (names staged files).
        table: the offline table the run wrote (a table version's; default the view's name).

    Raises:
        SinkError: a warehouse rejected the load; the run fails before its checkpoint and the
            next run sends the rows again.
    """
    dataset = offline.dataset(table or view.name)
    results: list[SinkStats] = []
    if dataset is None:
        return results
    for sink in view.sinks:
        started = time.perf_counter()
        writer = open_sink(sink, view, project)
        try:
            after = None if sink.mode == "replace" else writer.last_seq()
            schema, batches = offline_rows(dataset, after=after, upto=seq)
            stats = writer.write(schema, batches, seq=seq, run_id=run_id)
        finally:
            writer.close()
        results.append(stats)
        log.info(
            "sink loaded",
            extra={
                "fields": {
                    "view": view.name,
                    "run_id": run_id,
                    "sink": sink.kind,
                    "table": sink.table,
                    "mode": sink.mode,
                    "since_seq": after,
                    "rows": stats.rows,
                    "seconds": round(time.perf_counter() - started, 3),
                }
            },
        )
    return results
