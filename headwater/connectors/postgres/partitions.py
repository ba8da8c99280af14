"""Partitioned PostgreSQL reads: ranges of one column, read in parallel, retried one by one.

A source with ``partition_column`` and ``num_partitions`` is read as that many half-open ranges
``[b_i, b_i+1)`` of the column, cut evenly between ``partition_bounds`` (or the ``min`` and
``max`` of the rows to read). The first range has no lower bound and also takes the NULLs; the
last has no upper bound: every row falls in exactly one range, whatever the bounds.

Each range is one COPY on its own connection (``application_name``
``headwater:<source>:p<i>``), a few at a time on a small thread pool; the connections come
from, and go back to, the connection's pool of reader connections
(:mod:`headwater.connectors.postgres.pool`). A range that loses its connection is read again, alone,
after an exponential backoff with jitter. So that a retried range never yields a row twice, its
batches are spooled to an Arrow IPC file in the engine's temp directory and handed on only once
the range is complete (as Spark commits a task's output only when the task succeeds). Memory
stays bounded by about one batch per worker; the spool by the data read.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from headwater.connectors.base import ConnectionLost, backoff_delay
from headwater.connectors.postgres.pool import reader_pool
from headwater.errors import ConnectionFailed, DefinitionError, HeadwaterError
from headwater.observability import get_logger
from headwater.sql import quote_ident

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.connectors.postgres.config import PostgresConnection
    from headwater.connectors.postgres.plan import ReadPlan
    from headwater.connectors.postgres.session import SessionParams

log = get_logger("connectors.postgres")


class RangeReader(Protocol):
    """What a partitioned read needs of the PostgreSQL reader (:class:`PostgresConnector`)."""

    source: Any
    project: ProjectConfig
    conn_config: PostgresConnection

    @property
    def what(self) -> str: ...

    def stream(
        self, schema: pa.Schema, sql: str, params: SessionParams, application_name: str
    ) -> Generator[pa.RecordBatch]: ...

    def read_error(self, exc: BaseException) -> HeadwaterError: ...


MAX_WORKERS = 4
"""Ranges read at the same time (fewer when there are fewer ranges)."""


def cut(low: Any, high: Any, count: int, *, what: str) -> list[Any]:
    """Boundaries cutting ``[low, high]`` into up to ``count`` ranges of equal width.

    Raises:
        DefinitionError: the values are not numbers, dates or datetimes of one kind.
    """
    if low is None or high is None or count < 2:
        return []
    edges: list[Any]
    try:
        if not low < high:
            return []
        if isinstance(low, int) and isinstance(high, int):
            edges = [low + (high - low + 1) * k // count for k in range(1, count)]
        elif isinstance(low, datetime) or type(low) is not date:
            edges = [low + (high - low) * k / count for k in range(1, count)]
        else:
            days = (high - low).days
            edges = [low + timedelta(days=days * k // count) for k in range(1, count)]
    except TypeError:
        raise DefinitionError(
            f"{what}: cannot cut partitions between {low!r} and {high!r}",
            fix="give partition_bounds values of the partition column's type",
        ) from None
    return sorted({edge for edge in edges if low < edge <= high})


def ranges(edges: list[Any]) -> list[tuple[Any, Any]]:
    """``[(None, e1), (e1, e2), ..., (en, None)]``: ``None`` is an open end."""
    points: list[Any] = [None, *edges, None]
    return list(itertools.pairwise(points))


def condition(column: str, low: Any, high: Any, ref: Callable[[str], str]) -> str:
    """The WHERE clause of one range (the first also takes NULLs)."""
    if low is None and high is None:
        return ""
    if low is None:
        return f"({column} < {ref('hw_part_hi')} OR {column} IS NULL)"
    if high is None:
        return f"{column} >= {ref('hw_part_lo')}"
    return f"{column} >= {ref('hw_part_lo')} AND {column} < {ref('hw_part_hi')}"


def partitioned(connector: RangeReader, plan: ReadPlan) -> Iterator[pa.RecordBatch]:
    """The batches of a partitioned read (lazy: nothing runs before the first is asked for).

    Raises:
        DefinitionError: the partition column is not a number, date or timestamp.
    """
    import pyarrow as pa

    source = connector.source
    column = plan.column(str(source.partition_column))
    kind = plan.schema.field(column.name).type
    types = pa.types
    if not (
        types.is_integer(kind)
        or types.is_floating(kind)
        or types.is_decimal(kind)
        or types.is_date(kind)
        or types.is_timestamp(kind)
    ):
        raise DefinitionError(
            f"{connector.what}: partition_column {column.name!r} is {kind}; ranges need an "
            "integer, numeric, float, date or timestamp column",
            fix="partition by another column (e.g. the primary key or a creation time)",
        )
    return _batches(connector, plan, column.name, column.type.sql_name, pa.types.is_integer(kind))


def _batches(
    connector: RangeReader, plan: ReadPlan, name: str, sql_type: str, integer: bool
) -> Iterator[pa.RecordBatch]:
    source = connector.source
    bounds = source.partition_bounds or _min_max(connector, plan, name)
    low, high = bounds
    if integer and isinstance(low, Decimal | float):
        low, high = int(low), int(high)
    pieces = ranges(cut(low, high, int(source.num_partitions or 1), what=connector.what))
    readers = []
    for index, (lo, hi) in enumerate(pieces):
        params = plan.params.copy()
        for key, value in (("hw_part_lo", lo), ("hw_part_hi", hi)):
            if value is not None:
                params.set(key, value, sql_type)
        sql = plan.sql(condition(quote_ident(name), lo, hi, params.ref))
        app = f"headwater:{source.name}:p{index}"
        readers.append(partial(connector.stream, plan.schema, sql, params, app))
    project, config = connector.project, connector.conn_config
    workers = min(len(readers), MAX_WORKERS)
    reader_pool(config).reserve(workers)  # each range's connection is kept for the next read
    yield from run_parallel(
        readers,
        plan.schema,
        workers=workers,
        retries=int(config.retries),
        backoff_s=float(config.retry_backoff_s),
        spool_root=project.resolve(project.engine.temp_directory),
        what=connector.what,
    )


def _min_max(connector: RangeReader, plan: ReadPlan, name: str) -> tuple[Any, Any]:
    import psycopg

    from headwater.connectors.postgres.pool import pooled
    from headwater.connectors.postgres.session import set_config_sql

    column = quote_ident(name)
    settings = plan.params.settings()
    # The settings stay on the pooled session until it is given back (RESET ALL then).
    with pooled(connector.conn_config, what=connector.what) as conn:
        try:
            if settings:
                conn.execute(set_config_sql(len(settings), "%s"), [v for s in settings for v in s])
            row = conn.execute(
                f"SELECT min({column}), max({column}) FROM ({plan.base}) AS b"
            ).fetchone()
        except psycopg.Error as exc:
            raise connector.read_error(exc) from None
    return (None, None) if row is None else (row[0], row[1])


def run_parallel(
    readers: Sequence[Callable[[], Generator[pa.RecordBatch]]],
    schema: pa.Schema,
    *,
    workers: int,
    retries: int,
    backoff_s: float,
    spool_root: str,
    what: str,
) -> Iterator[pa.RecordBatch]:
    """Run ``readers`` on ``workers`` threads; yield each one's batches once it completed.

    Raises:
        ConnectionFailed: a reader lost its connection on every one of its attempts.
    """
    import pyarrow as pa

    Path(spool_root).mkdir(parents=True, exist_ok=True)
    spool = Path(tempfile.mkdtemp(prefix="partitions-", dir=spool_root))
    stop = threading.Event()
    futures: list[Future[Path]] = []
    pool = ThreadPoolExecutor(max_workers=max(workers, 1), thread_name_prefix="headwater-read")
    try:
        for index, read in enumerate(readers):
            job = partial(_spool, index, read, schema, spool, stop, retries, backoff_s, what)
            futures.append(pool.submit(job))
        for future in as_completed(futures):
            path = future.result()
            with pa.OSFile(str(path)) as file:
                yield from pa.ipc.open_stream(file)
            path.unlink()
    finally:
        stop.set()
        for future in futures:
            future.cancel()
        pool.shutdown(wait=True)
        shutil.rmtree(spool, ignore_errors=True)


class _Cancelled(Exception):
    """The consumer went away; a worker stops."""


def _spool(
    index: int,
    read: Callable[[], Generator[pa.RecordBatch]],
    schema: pa.Schema,
    spool: Path,
    stop: threading.Event,
    retries: int,
    backoff_s: float,
    what: str,
) -> Path:
    import pyarrow as pa

    for attempt in range(retries + 1):
        path = spool / f"p{index}-{attempt}.arrows"
        batches = read()
        try:
            with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
                for batch in batches:
                    if stop.is_set():
                        raise _Cancelled
                    writer.write_batch(batch)
            return path
        except ConnectionLost as exc:
            path.unlink(missing_ok=True)
            if attempt == retries:
                raise ConnectionFailed(
                    f"{what}: partition p{index} lost its connection on each of its "
                    f"{retries + 1} attempt(s); the last time: {exc.message}",
                    fix="check the server (restarts, connection limits, idle timeouts), or "
                    "raise retries: on the connection",
                ) from None
            delay = backoff_delay(attempt, backoff_s)
            log.warning(
                "partition read lost its connection; reading it again",
                extra={"fields": {"source": what, "partition": index, "retry_in_s": delay}},
            )
            if stop.wait(delay):
                raise _Cancelled from None
        finally:
            batches.close()  # ends the reader's connection
    raise AssertionError("unreachable")
