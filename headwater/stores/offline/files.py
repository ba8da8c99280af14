"""Hive-partitioned Parquet files of a first write, written partition after partition.

The rows come ordered by ``event_date`` (sorted by DuckDB, or by the engine in event-time
order). :class:`PartitionFiles` buffers one row group, then hands it to the writer thread of
its file: each new file goes to the thread with the least work queued, so while one thread
encodes and compresses a day, another encodes the next one, and each file's row groups stay in
order on its thread. Memory holds the row group being filled plus, per thread, the one it
writes and one waiting.

Dictionary encoding is chosen per column from a sample of the first rows: Arrow's writer would
otherwise build a dictionary for every column of every row group and drop it once it outgrows
its page limit, which on columns of distinct values (ids, times, amounts) took half the time
of the write and gave larger files.
"""

from __future__ import annotations

import itertools
import queue
import threading
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.stores.offline.base import PARTITION

if TYPE_CHECKING:
    import pyarrow as pa

ROW_GROUP_ROWS = 128 * 1024
"""Rows per Parquet row group of a first write."""
FILE_ROWS = 4 * 1024 * 1024
"""Rows per file of a first write, at most (a partition with more gets several files)."""
WRITERS = 2
"""Threads writing files at the same time."""
DICTIONARY_SAMPLE = 16 * 1024
"""Rows of the first row group whose distinct values decide the dictionary-encoded columns."""


class PartitionFiles:
    """Files of ``event_date=<day>/part-<uuid>.parquet`` under ``root``, one partition after the
    other (a day never comes back), written by up to :data:`WRITERS` threads."""

    def __init__(self, root: Path, writers: int | None = None) -> None:
        self.root = root
        self.rows = 0
        self._day: Any = None
        self._in_file = 0
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._dictionary: list[str] | bool | None = None
        self._threads = [_Writer() for _ in range(max(1, writers or WRITERS))]
        self._writer = self._threads[0]  # the thread of the current file
        self._open = False  # the current day's file has been handed to a thread

    def __enter__(self) -> PartitionFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self._flush()
                self._close_file()
        finally:
            for thread in self._threads:
                thread.finish()
        if exc[0] is None:
            for thread in self._threads:
                thread.raise_failure()

    def append(self, day: Any, rows: pa.RecordBatch) -> None:
        """Add ``rows`` of partition ``day`` (days in order: a day never comes back)."""
        if day != self._day or self._in_file >= FILE_ROWS:
            self._flush()
            self._close_file()
            self._day, self._in_file = day, 0
        self._pending.append(rows)
        self._pending_rows += rows.num_rows
        self._in_file += rows.num_rows
        self.rows += rows.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _close_file(self) -> None:
        if self._open:
            self._writer.send(("close",))
            self._open = False

    def _flush(self) -> None:
        import pyarrow as pa

        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending)
        self._pending, self._pending_rows = [], 0
        if self._dictionary is None:
            self._dictionary = dictionary_columns(table)
        if not self._open:
            value = "__HIVE_DEFAULT_PARTITION__" if self._day is None else self._day.isoformat()
            folder = self.root / f"{PARTITION}={value}"
            # Not ``parents=True``: a staging folder removed under the writer must fail the
            # write, not be recreated with only the partitions written after.
            folder.mkdir(exist_ok=True)
            path = folder / f"part-{uuid.uuid4().hex}.parquet"
            # A new file goes to the thread with the least work queued.
            self._writer = min(self._threads, key=lambda thread: thread.backlog())
            self._writer.send(("open", path, table.schema, self._dictionary))
            self._open = True
        self._writer.send(("write", table))


class _Writer:
    """A thread writing the files it is sent, in order: ``open``, ``write``s, ``close``."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=1)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="headwater-parquet", daemon=True)
        self._thread.start()

    def send(self, message: tuple[Any, ...]) -> None:
        """Queue ``message`` (waits while the thread is busy with the one before)."""
        self.raise_failure()
        self._queue.put(message)

    def backlog(self) -> int:
        """Messages sent and not yet done with."""
        return self._queue.unfinished_tasks

    def finish(self) -> None:
        """Let the thread end once it has written what it was sent, and wait for it."""
        self._queue.put(None)
        self._thread.join()

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        import pyarrow.parquet as pq

        writer: Any = None
        while (message := self._queue.get()) is not None:
            if self._failure is not None:
                self._queue.task_done()
                continue  # drain: the sender finds the failure at its next message
            try:
                if message[0] == "open":
                    _, path, schema, dictionary = message
                    writer = pq.ParquetWriter(
                        str(path), schema, compression="snappy", use_dictionary=dictionary
                    )
                elif message[0] == "write":
                    writer.write_table(message[1], row_group_size=ROW_GROUP_ROWS)
                else:
                    writer.close()
                    writer = None
            except BaseException as exc:  # handed to the sender, which raises it
                self._failure = exc
            self._queue.task_done()
        if writer is not None:  # the write failed: close the file (its folder is removed)
            writer.close()


def dictionary_columns(table: pa.Table) -> list[str] | bool:
    """The columns worth dictionary encoding: those with at most one distinct value in two
    rows of a sample of ``table``'s first rows (nested columns keep Arrow's default: all their
    leaves)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    sample = table.slice(0, DICTIONARY_SAMPLE)
    if sample.num_rows < 2:
        return True
    chosen = []
    for field in table.schema:
        kind = field.type
        if pa.types.is_nested(kind):
            chosen += _leaves(field.name, kind)
        elif pa.types.is_boolean(kind) or pa.types.is_null(kind):
            continue
        elif pc.count_distinct(sample.column(field.name)).as_py() * 2 <= sample.num_rows:
            chosen.append(field.name)
    return chosen


def _leaves(path: str, kind: pa.DataType) -> list[str]:
    """The Parquet column paths of a column of type ``kind`` at ``path``, as Arrow's writer
    names them (lists as ``<name>.list.element``)."""
    import pyarrow as pa

    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _leaves(f"{path}.list.element", kind.value_type)
    if pa.types.is_map(kind):
        return _leaves(f"{path}.key_value.key", kind.key_type) + _leaves(
            f"{path}.key_value.value", kind.item_type
        )
    if pa.types.is_struct(kind):
        return [leaf for child in kind for leaf in _leaves(f"{path}.{child.name}", child.type)]
    return [path]


def runs(batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[Any, pa.RecordBatch]]:
    """``(event_date, rows)`` runs of batches ordered by ``event_date`` (NULLs last)."""
    import numpy as np
    import pyarrow as pa

    for batch in batches:
        days = batch.column(batch.schema.get_field_index(PARTITION))
        valid = len(days) - days.null_count  # ordered: the nulls are the last rows
        numbers = _int32s(days.slice(0, valid).cast(pa.int32()))
        edges = [0, *(np.flatnonzero(numbers[1:] != numbers[:-1]) + 1).tolist(), valid]
        for start, end in itertools.pairwise(edges):
            if end > start:
                yield days[start].as_py(), batch.slice(start, end - start)
        if valid < len(days):
            yield None, batch.slice(valid)


def _int32s(array: pa.Array) -> Any:
    """The values of an int32 array without nulls, as NumPy sees its buffer (``to_numpy``
    imports pandas, when it is installed, to check what it converts)."""
    import numpy as np

    data = array.buffers()[1]
    if data is None:
        return np.zeros(0, dtype=np.int32)
    return np.frombuffer(data, dtype=np.int32, count=len(array), offset=array.offset * 4)
