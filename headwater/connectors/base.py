"""The source-connector protocol, scans, and when a lost read is started again.

A connector turns a :class:`~headwater.definitions.Source` into something the batch engine can
select from (a DuckDB relation) and, for incremental sources, tells the new checkpoint once the
scan has been read to the end. Connectors never advance a checkpoint themselves: the
orchestrator commits it only after the data it covers is written.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from headwater.errors import ConnectionFailed

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.definitions import Source


@dataclass
class Scan:
    """One read of a source, ready to be selected from.

    Attributes:
        relation: SQL text usable after ``FROM`` (a table function call or a view name).
        checkpoint: called after the relation was consumed; the checkpoint to commit once the
            results are written (``None`` when the source is not incremental).
        rows_read: called after the relation was consumed; rows the source yielded.
        one_shot: the relation is a stream that can be read once (a registered Arrow reader),
            which the runner stages in DuckDB before using it.
        empty: the source has no rows (no file matches, or every file is empty) and no
            relation; the runner reads an empty table of the columns recorded at ``apply``.
    """

    relation: str
    checkpoint: Callable[[], Any] = field(default=lambda: None)
    rows_read: Callable[[], int | None] = field(default=lambda: None)
    one_shot: bool = False
    empty: bool = False


class SourceConnector(Protocol):
    """What every source connector implements."""

    SUPPORTS_INCREMENTAL: ClassVar[bool]

    def __init__(self, source: Source, project: ProjectConfig) -> None: ...

    def schema(self) -> pa.Schema:
        """The columns the source yields (read cheaply: metadata or ``LIMIT 0``)."""
        ...

    def scan(self, con: duckdb.DuckDBPyConnection, *, checkpoint: Any = None) -> Scan:
        """Prepare a read from ``checkpoint`` (``None`` = from the beginning)."""
        ...


# ---------------------------------------------------------------------- one-shot streams
# DuckDB reports an error raised inside a registered Arrow stream only as text, so a
# StreamScan keeps the connector's own exception. A read that lost its connection
# (ConnectionLost) may be started again from the same checkpoint, since nothing was written
# yet: read_failure tells the orchestrator whether and when.


class ConnectionLost(ConnectionFailed):
    """The connection broke while a read was streaming; the read may be started again."""


@dataclass
class StreamScan(Scan):
    """A :class:`Scan` of a one-shot Arrow stream, which the runner stages in DuckDB when the
    view needs its rows more than once, or computes from as it comes.

    Attributes:
        failure: the exception that ended the stream early, as the connector raised it.
        retries: how many times the whole read may be started again after a
            :class:`ConnectionLost`.
        backoff_s: delay before the first such retry (doubled each time, with jitter).
        complete: whether the stream has yielded its last batch.
        watchers: called with each batch as the stream yields it, so that the runner can count
            rows on the way instead of keeping the stream; ``None`` when the stream does not
            call them (it is then kept). :func:`stream_scan` builds scans that do.
    """

    failure: Callable[[], BaseException | None] = field(default=lambda: None)
    one_shot: bool = True
    retries: int = 0
    backoff_s: float = 0.5
    complete: Callable[[], bool] = field(default=lambda: False)
    watchers: list[Callable[[pa.RecordBatch], None]] | None = None


def stream_scan(
    con: duckdb.DuckDBPyConnection,
    name: str,
    schema: pa.Schema,
    batches: Iterator[pa.RecordBatch],
    *,
    checkpoint: Callable[[], Any] = lambda: None,
    rows_read: Callable[[], int | None] = lambda: None,
    retries: int = 0,
    backoff_s: float = 0.5,
) -> StreamScan:
    """Register the lazy ``batches`` of source ``name`` with ``con`` (as ``__hw_src_<name>``)
    and describe them as a :class:`StreamScan` that keeps the exception ending them early,
    knows when they are complete, and calls its watchers with each batch."""
    import pyarrow as pa

    failures: list[BaseException] = []
    ended: list[bool] = []
    watchers: list[Callable[[pa.RecordBatch], None]] = []

    def guarded() -> Iterator[pa.RecordBatch]:
        try:
            for batch in batches:
                for watch in watchers:
                    watch(batch)
                yield batch
        except Exception as exc:
            failures.append(exc)
            raise
        ended.append(True)

    relation = f"__hw_src_{name}"
    con.register(relation, pa.RecordBatchReader.from_batches(schema, guarded()))
    return StreamScan(
        relation=relation,
        checkpoint=checkpoint,
        rows_read=rows_read,
        failure=lambda: failures[-1] if failures else None,
        retries=retries,
        backoff_s=backoff_s,
        complete=lambda: bool(ended),
        watchers=watchers,
    )


def backoff_delay(attempt: int, base_s: float) -> float:
    """Seconds to wait before retry number ``attempt + 1``: ``base * 2**attempt``, half of it
    jittered, so that readers that failed together do not come back together."""
    delay = base_s * (1 << attempt)
    return delay / 2 + random.uniform(0, delay / 2)


def read_failure(scan: Scan, error: BaseException, attempt: int) -> tuple[BaseException, float]:
    """What to do after reading ``scan`` failed with ``error`` on try number ``attempt``.

    Returns:
        The error to report (the connector's own when the stream failed inside DuckDB) and the
        delay before reading again, or a negative delay when the read must not be retried.
    """
    if not isinstance(scan, StreamScan):
        return error, -1.0
    cause = scan.failure() or error
    if isinstance(cause, ConnectionLost) and attempt < scan.retries:
        return cause, backoff_delay(attempt, scan.backoff_s)
    return cause, -1.0
