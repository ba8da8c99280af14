"""Process-wide pools of PostgreSQL connections, one set per connection configuration.

Two kinds of connection serve a PostgreSQL source, and both are reused across reads, runs and
partitions instead of being opened for each (see decision 12 in docs/decisions/):

* **psycopg** connections (describing a read, the ``min``/``max`` of partitioned reads, the
  PostgreSQL sink) come from a :class:`psycopg_pool.ConnectionPool`: at most
  ``pool_max_size`` open, ``pool_min_size`` kept even when idle, a request waits
  ``pool_timeout_s`` at most. Each connection is checked (an empty query) when it is handed
  out, so one whose backend ended while idle is replaced rather than used, and ``RESET ALL``
  runs when it comes back.
* **ADBC** connections (the COPY of each read or partition) are kept in a small LIFO list of
  idle ones. A read takes one (or opens one) and gives it back only once its COPY completed and
  ``RESET ALL`` succeeded; a read that failed or was abandoned closes its connection. A pooled
  connection whose first statement finds the backend gone is closed and replaced at once. They
  are driven through the driver manager's low-level API (:class:`ReaderConnection`): its DB-API
  module imports pandas and polars when they are installed, a third of a second of a run.

Every connection, new or reused, starts with the connection's ``options`` (``sslmode``, ...),
``TimeZone=UTC`` and the statement timeout as libpq startup options, so ``RESET ALL`` returns a
session to exactly that state. Pools are closed by :func:`close_pools` (called by
``FeatureStore.close()``) and at process exit; a forked child starts with pools of its own.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from headwater.connectors.postgres.session import session_conninfo, unreachable
from headwater.errors import ConnectionFailed, MissingDependency

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa
    from psycopg_pool import ConnectionPool

    from headwater.config import ProjectConfig
    from headwater.connectors.postgres.config import PostgresConnection

MAX_IDLE_S = 600.0
"""Seconds an idle connection is kept before it is closed (both kinds)."""


class ReaderConnection:
    """One ADBC PostgreSQL connection (autocommit, as ADBC connections start).

    Raises (every method):
        adbc_driver_manager.Error: the driver's error, with the server's SQLSTATE when it sent
            one.
    """

    def __init__(self, conninfo: str) -> None:
        import adbc_driver_manager
        import adbc_driver_postgresql  # type: ignore[import-untyped]  # no py.typed

        self._database = adbc_driver_postgresql.connect(conninfo)
        try:
            self._connection = adbc_driver_manager.AdbcConnection(self._database)
        except BaseException:
            self._database.close()
            raise

    def execute(self, sql: str, params: Sequence[str] = ()) -> None:
        """Run ``sql`` with ``params`` bound as text to ``$1, $2, ...``; drop its result."""
        statement = self._statement(sql)
        try:
            if params:
                import pyarrow as pa

                values = [_text(value) for value in params]
                names = [f"p{i}" for i in range(len(values))]
                statement.bind(pa.RecordBatch.from_arrays(values, names=names))
            handle, _ = statement.execute_query()
            read_stream(handle).read_all()
        finally:
            statement.close()

    def query(self, sql: str, options: dict[str, str]) -> tuple[Any, pa.RecordBatchReader]:
        """Start ``sql`` with statement ``options``: ``(statement, reader of its batches)``.
        Close the reader, then the statement, once done."""
        statement = self._statement(sql)
        try:
            if options:
                statement.set_options(**options)
            handle, _ = statement.execute_query()
            return statement, read_stream(handle)
        except BaseException:
            statement.close()
            raise

    def _statement(self, sql: str) -> Any:
        import adbc_driver_manager

        statement = adbc_driver_manager.AdbcStatement(self._connection)
        statement.set_sql_query(sql)
        return statement

    def close(self) -> None:
        try:
            self._connection.close()
        finally:
            self._database.close()


def _text(value: str) -> pa.Array:
    """A one-value string array, built from its buffers: ``pa.array`` and ``pa.scalar`` import
    pandas (when it is installed) to check whether they were given a pandas object."""
    import struct

    import pyarrow as pa

    data = value.encode()
    offsets = pa.py_buffer(struct.pack("<ii", 0, len(data)))
    return pa.StringArray.from_buffers(1, offsets, pa.py_buffer(data))


def read_stream(handle: Any) -> pa.RecordBatchReader:
    """The record batches of an executed statement; a failure mid-stream raises the driver's
    error (``adbc_driver_manager.Error`` with the SQLSTATE), as the DB-API's readers do."""
    from adbc_driver_manager import _reader  # the DB-API's reader, without the DB-API module

    reader: pa.RecordBatchReader = _reader.AdbcRecordBatchReader._import_from_c(handle.address)
    return reader


class ReaderPool:
    """Idle ADBC connections of one configuration, reused newest first."""

    def __init__(self, conninfo: str, capacity: int) -> None:
        self.conninfo = conninfo
        self.capacity = capacity
        self._idle: list[tuple[float, ReaderConnection]] = []
        self._lock = threading.Lock()
        self._closed = False
        self.opened = 0
        """Connections opened so far (for tests and logs)."""

    def reserve(self, count: int) -> None:
        """Keep up to ``count`` idle connections (e.g. one per range read at once)."""
        with self._lock:
            self.capacity = max(self.capacity, count)

    def acquire(self) -> tuple[ReaderConnection, bool]:
        """An idle connection, or a new one; ``(connection, is_new)``.

        Raises:
            adbc_driver_manager.Error: a new connection could not be opened.
        """
        stale: list[ReaderConnection] = []
        found = None
        now = time.monotonic()
        with self._lock:
            while self._idle:
                since, conn = self._idle.pop()
                if now - since > MAX_IDLE_S:
                    stale.append(conn)
                else:
                    found = conn
                    break
            stale += [conn for since, conn in self._idle if now - since > MAX_IDLE_S]
            self._idle = [(since, conn) for since, conn in self._idle if now - since <= MAX_IDLE_S]
        for conn in stale:
            _close_quietly(conn)
        if found is not None:
            return found, False
        conn = ReaderConnection(self.conninfo)
        with self._lock:
            self.opened += 1
        return conn, True

    def release(self, conn: ReaderConnection, *, reusable: bool) -> None:
        """Give ``conn`` back: kept when ``reusable`` and its session resets, else closed."""
        if reusable and not self._closed:
            try:
                conn.execute("RESET ALL")
            except Exception:  # any failure: the connection is not kept
                reusable = False
        if reusable:
            with self._lock:
                if not self._closed and len(self._idle) < self.capacity:
                    self._idle.append((time.monotonic(), conn))
                    return
        _close_quietly(conn)

    def close(self) -> None:
        """Close the idle connections; connections in use are closed when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for _, conn in idle:
            _close_quietly(conn)

    def idle(self) -> int:
        """How many idle connections are kept."""
        with self._lock:
            return len(self._idle)


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


class _Pools:
    """The pools of one connection configuration."""

    def __init__(self, config: PostgresConnection, conninfo: str) -> None:
        self.config = config
        self.conninfo = conninfo
        self.psycopg: ConnectionPool[Any] | None = None
        self.readers = ReaderPool(conninfo, int(config.pool_max_size))
        self.lock = threading.Lock()

    def close(self) -> None:
        self.readers.close()
        if self.psycopg is not None:
            self.psycopg.close(timeout=5.0)


_registry: dict[str, _Pools] = {}
_lent: dict[int, ConnectionPool[Any]] = {}
"""The pool of each connection handed out by :func:`checkout`, by ``id``."""
_registry_lock = threading.Lock()
_registry_used: list[bool] = []
"""Non-empty once a pool was created (and pools are closed at exit)."""
_owner_pid = os.getpid()


def _pools(config: PostgresConnection) -> _Pools:
    """The pools of ``config`` (created on first use)."""
    global _owner_pid
    conninfo = session_conninfo(config)
    key = "\x00".join(
        [conninfo, str(config.pool_min_size), str(config.pool_max_size), str(config.pool_timeout_s)]
    )
    with _registry_lock:
        if os.getpid() != _owner_pid:
            # A forked child must not use its parent's sockets: forget them (unclosed, as they
            # are the parent's) and open its own.
            _registry.clear()
            _lent.clear()
            _owner_pid = os.getpid()
        pools = _registry.get(key)
        if pools is None:
            if not _registry_used:
                atexit.register(close_pools)
                _registry_used.append(True)
            pools = _registry[key] = _Pools(config, conninfo)
        return pools


def reader_pool(config: PostgresConnection) -> ReaderPool:
    """The pool of ADBC reader connections of ``config``."""
    return _pools(config).readers


def _psycopg_pool(pools: _Pools, *, what: str) -> ConnectionPool[Any]:
    if pools.psycopg is not None:
        return pools.psycopg
    with pools.lock:
        if pools.psycopg is None:
            try:
                import psycopg
                from psycopg_pool import ConnectionPool
            except ImportError as exc:
                raise MissingDependency("psycopg-pool", "postgres") from exc
            config = pools.config
            # One connection first, in this thread: an unreachable server or a bad password is
            # reported at once with libpq's words, not after pool_timeout_s of silent retries.
            try:
                psycopg.connect(pools.conninfo).close()
            except psycopg.OperationalError as exc:
                raise unreachable(what, config.dsn.get_secret_value(), exc) from None
            pools.psycopg = ConnectionPool(
                pools.conninfo,
                kwargs={"autocommit": True},
                min_size=int(config.pool_min_size),
                max_size=int(config.pool_max_size),
                timeout=float(config.pool_timeout_s),
                max_idle=MAX_IDLE_S,
                configure=_configure,
                check=ConnectionPool.check_connection,
                reset=_reset,
                name="headwater",
                num_workers=1,
                open=True,
            )
    return pools.psycopg


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Loaders of a new pooled connection: json / jsonb arrive as the server's JSON text."""
    from psycopg.types.string import TextLoader

    conn.adapters.register_loader("json", TextLoader)
    conn.adapters.register_loader("jsonb", TextLoader)


def _reset(conn: psycopg.Connection[Any]) -> None:
    """Back to the session's startup state (options, UTC, statement timeout) when returned."""
    conn.execute("RESET ALL")


def checkout(config: PostgresConnection, *, what: str) -> psycopg.Connection[Any]:
    """A pooled psycopg connection (autocommit, UTC); give it back with :func:`checkin`.

    Raises:
        ConnectionFailed: the server cannot be reached, or no connection came free within
            ``pool_timeout_s``.
    """
    from psycopg_pool import PoolTimeout

    pools = _pools(config)
    pool = _psycopg_pool(pools, what=what)
    try:
        conn: psycopg.Connection[Any] = pool.getconn()
    except PoolTimeout:
        raise _diagnose(config, pools.conninfo, what) from None
    with _registry_lock:
        _lent[id(conn)] = pool
    return conn


def checkin(conn: psycopg.Connection[Any]) -> None:
    """Give back a connection from :func:`checkout` (closed if its pool was closed since)."""
    with _registry_lock:
        pool = _lent.pop(id(conn), None)
    if pool is None or pool.closed:
        conn.close()
    else:
        pool.putconn(conn)


@contextlib.contextmanager
def pooled(config: PostgresConnection, *, what: str) -> Iterator[psycopg.Connection[Any]]:
    """A pooled psycopg connection for the duration of a ``with`` block."""
    conn = checkout(config, what=what)
    try:
        yield conn
    finally:
        checkin(conn)


def _diagnose(config: PostgresConnection, conninfo: str, what: str) -> ConnectionFailed:
    """Why no pooled connection came: the server is unreachable, or the pool is exhausted."""
    import psycopg

    try:
        psycopg.connect(conninfo).close()
    except psycopg.OperationalError as exc:
        return unreachable(what, config.dsn.get_secret_value(), exc)
    return ConnectionFailed(
        f"{what}: no PostgreSQL connection came free within pool_timeout_s="
        f"{config.pool_timeout_s:g} (pool_max_size={config.pool_max_size} in use)",
        fix="raise pool_max_size or pool_timeout_s on the connection in headwater.yaml",
    )


def close_pools(project: ProjectConfig | None = None) -> None:
    """Close the pools of ``project``'s PostgreSQL connections (of every one when ``None``).

    Connections in use are closed when given back; a later read opens new pools.
    """
    from headwater.connectors.postgres.config import PostgresConnection

    infos = None
    if project is not None:
        conns = project.connections.values()
        infos = {session_conninfo(c) for c in conns if isinstance(c, PostgresConnection)}
    with _registry_lock:
        keys = [k for k, p in _registry.items() if infos is None or p.conninfo in infos]
        closing = [_registry.pop(k) for k in keys]
    for pools in closing:
        with contextlib.suppress(Exception):
            pools.close()


def pool_stats(config: PostgresConnection) -> dict[str, int]:
    """Counters of ``config``'s pools: psycopg connections open and idle, ADBC idle and opened."""
    pools = _pools(config)
    stats: dict[str, int] = {"readers_idle": pools.readers.idle(), "readers_opened": 0}
    stats["readers_opened"] = pools.readers.opened
    if pools.psycopg is not None:
        raw = pools.psycopg.get_stats()
        stats["psycopg_size"] = int(raw.get("pool_size", 0))
        stats["psycopg_idle"] = int(raw.get("pool_available", 0))
    return stats
