"""Side tables of the offline store: keyed tables that are not feature history.

Landing tables (the current rows of an incremental source), quarantine tables (rows checks set
aside) and dead-letter tables (messages a streaming view could not use) live in the configured
offline store, beside the views' history — with its credentials, its format and, for a plugin
store, its implementation — and are written through one operation,
``OfflineStore.write_table(name, rows, keys=..., mode=...)``:

============  ====================================================================================
``upsert``    rows replace the stored rows with the same keys; the others are added
``insert``    only rows whose keys are new are added: a replay after a crash stores nothing twice
``overwrite`` the rows replace the whole table
============  ====================================================================================

Columns new to a table are added to it (earlier rows read null there); columns it has keep
their stored type, and incoming values are converted to it — or the write fails naming the
table, the columns and the fix. This module holds what every store's implementation shares.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Literal

from headwater.errors import DefinitionError, RunFailed

if TYPE_CHECKING:
    import pyarrow as pa

TableMode = Literal["upsert", "insert", "overwrite"]
MODES: tuple[str, ...] = ("upsert", "insert", "overwrite")

LANDING = "_landing"
"""Folder of the landing tables: ``_landing/<view>``."""


def landing_table(view: str) -> str:
    """The side table holding the current rows of ``view``'s incremental source."""
    return f"{LANDING}/{view}"


def check_write(name: str, keys: Sequence[str], mode: str) -> None:
    """Refuse a write that names no key (except a whole overwrite) or an unknown mode."""
    if mode not in MODES:
        raise DefinitionError(f"side table {name!r}: unknown write mode {mode!r}")
    if mode != "overwrite" and not keys:
        raise DefinitionError(f"side table {name!r}: a {mode} needs key columns")


def aligned(incoming: pa.Schema, stored: pa.Schema) -> pa.Schema:
    """``incoming`` with the stored type for the columns the table already has."""
    import pyarrow as pa

    fields = []
    for item in incoming:
        index = stored.get_field_index(item.name)
        fields.append(item if index < 0 else pa.field(item.name, stored.field(index).type))
    return pa.schema(fields)


def conformed(
    reader: pa.RecordBatchReader, stored: pa.Schema, location: str
) -> pa.RecordBatchReader:
    """``reader``'s batches with the columns the table has cast to its types.

    Raises:
        RunFailed: a value does not convert (names the table, the columns and the fix).
    """
    import pyarrow as pa

    target = aligned(reader.schema, stored)
    if target.equals(reader.schema):
        return reader

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            try:
                yield batch.cast(target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                changed = [
                    f"{f.name} ({f.type} -> {target.field(f.name).type})"
                    for f in batch.schema
                    if f.type != target.field(f.name).type
                ]
                raise RunFailed(
                    f"the table {location} stores {', '.join(changed)} with another type, and "
                    f"the new rows do not convert: {exc}",
                    fix="rename the column, or move the old table aside",
                ) from exc

    return pa.RecordBatchReader.from_batches(target, batches())


class Feed:
    """Batches handed to a consumer (DuckDB, delta-rs) that reports an exception raised while
    it reads them as an error of its own: the feed keeps the original, to be raised instead
    (:meth:`errors`), and counts the rows read.

    Args:
        schema: the batches' schema.
        batches: the batches (a reader, or any iterator of record batches).
    """

    def __init__(self, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> None:
        self.schema = schema
        self.batches = batches
        self.error: BaseException | None = None
        self.rows = 0

    @classmethod
    def of(cls, reader: pa.RecordBatchReader) -> Feed:
        return cls(reader.schema, iter(reader))

    def reader(self) -> pa.RecordBatchReader:
        import pyarrow as pa

        def guarded() -> Iterator[pa.RecordBatch]:
            try:
                for batch in self.batches:
                    self.rows += batch.num_rows
                    yield batch
            except Exception as exc:
                self.error = exc
                raise

        return pa.RecordBatchReader.from_batches(self.schema, guarded())

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Raise the batches' own exception in place of the consumer's report of it."""
        try:
            yield
        except Exception:
            if self.error is not None:
                raise self.error from None
            raise
