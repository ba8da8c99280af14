"""The offline store protocol: append-only feature history, one table per feature view.

Rows are keyed by (join keys, ``event_timestamp``): writing a row whose key exists replaces it
(only when a value changed, and never with an older ``created_timestamp``), so reruns over the
same input leave the table as it was. Tables are partitioned by ``event_date`` (UTC) and carry a
``_seq`` column: the write sequence number of the run that last changed the row, which
``materialize`` uses to move only what changed. A batch may carry a boolean ``_deleted`` column;
rows flagged true delete their key (used when recomputed windows become empty).

Beside the views' history a store keeps *side tables* — landing, quarantine and dead-letter
tables — written by :meth:`OfflineStore.write_table` (see :mod:`headwater.stores.offline.tables`),
so they follow the configured store, its credentials and plugins.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads

    from headwater.config.models import OfflineStoreConfig
    from headwater.definitions import FeatureView
    from headwater.stores.offline.tables import TableMode

SEQ = "_seq"
DELETED = "_deleted"
PARTITION = "event_date"
TIME_ORDERED = {b"headwater.order": b"event_timestamp"}
"""Schema metadata of a reader whose rows come in ``event_timestamp`` order, one per key (the
engine's ordered output): a store may write them by event date without sorting them first.
Whatever re-reads the rows in another order (DuckDB, a check stage) drops the metadata."""


def time_ordered(schema: pa.Schema) -> bool:
    """Whether rows of ``schema`` come in ``event_timestamp`` order (:data:`TIME_ORDERED`)."""
    metadata = schema.metadata or {}
    return all(metadata.get(k) == v for k, v in TIME_ORDERED.items())


@dataclass(frozen=True)
class WriteStats:
    """What one write changed."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted


class OfflineStore(Protocol):
    """What every offline store implements (constructed as ``Store(store_config, project)``)."""

    config_model: ClassVar[type[OfflineStoreConfig]]
    """The model of its ``offline_store`` section (see :mod:`headwater.plugins`)."""
    SUPPORTS_TIME_TRAVEL: ClassVar[bool]

    def location(self, view_name: str) -> str:
        """Where the view's table lives (a path or URL)."""
        ...

    def write(self, view: FeatureView, data: pa.RecordBatchReader, *, seq: int) -> WriteStats:
        """Merge ``data`` (the engine's output rows) into the view's table."""
        ...

    def dataset(self, view_name: str) -> pads.Dataset | None:
        """The view's table as a pyarrow dataset (``None`` before the first write)."""
        ...

    def delete_view(self, view_name: str) -> None:
        """Remove the view's table (or a side table, by its name)."""
        ...

    def write_table(
        self, name: str, data: pa.RecordBatchReader, *, keys: Sequence[str], mode: TableMode
    ) -> int:
        """Write the side table ``name`` (a landing, quarantine or dead-letter table) keyed by
        ``keys``: ``upsert``, ``insert`` (new keys only) or ``overwrite``; new columns are added,
        stored ones keep their type. Returns the rows inserted or replaced. See
        :mod:`headwater.stores.offline.tables`."""
        ...

    def read_table(self, name: str) -> pads.Dataset | None:
        """The side table ``name`` as a pyarrow dataset (``None`` before its first write)."""
        ...


def with_storage_columns(
    data: pa.RecordBatchReader, seq: int
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Add ``event_date`` (from ``event_timestamp``, UTC) and ``_seq`` to every batch."""
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = data.schema.append(pa.field(PARTITION, pa.date32())).append(pa.field(SEQ, pa.int64()))

    def batches() -> Iterator[pa.RecordBatch]:
        seqs = _repeated(seq, 0)
        for batch in data:
            if batch.num_rows == 0:
                continue
            ts = batch.column(batch.schema.get_field_index("event_timestamp"))
            # The UTC day: times without their zone are the UTC ones (a cast through the zone
            # looks each one up in the zone database, ten times slower).
            day = pc.cast(pc.cast(ts, pa.timestamp(ts.type.unit)), pa.date32())
            if len(seqs) < batch.num_rows:
                seqs = _repeated(seq, batch.num_rows)
            seq_col = seqs.slice(0, batch.num_rows)
            yield pa.RecordBatch.from_arrays([*batch.columns, day, seq_col], schema=schema)

    return schema, batches()


def _repeated(value: int, count: int) -> pa.Array:
    """An int64 array of ``count`` times ``value``, from a NumPy buffer: ``pa.array`` of a list
    converts item by item, and imports pandas to check what it was given."""
    import numpy as np
    import pyarrow as pa

    values = np.full(count, value, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), count, [None, pa.py_buffer(values)])
