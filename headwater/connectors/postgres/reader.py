"""PostgreSQL tables and queries, read as Arrow record batches by the ADBC driver.

Each read is one ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` that the ADBC PostgreSQL driver
decodes to Arrow in C++ and streams in batches (docs/decisions/0009-postgres-arrow-reader.md).
psycopg describes the read first (a prepared statement: result columns and parameter types, no
execution) and serves everything else. The batches are converted to the mapping of
:mod:`headwater.connectors.postgres.typemap`. Values of ``params`` and cursor bounds travel in
session settings (:class:`SessionParams`) because a COPY statement takes no bound parameters.

Full refresh, incremental by ``cursor_field`` (with ``lag`` and ``end_value``, see
:mod:`headwater.connectors.tables`), and partitioned reads
(:mod:`headwater.connectors.postgres.partitions`).
Redshift speaks the protocol but not binary COPY: its sources are read through a psycopg
server-side cursor instead (the row-tuple path of :class:`TableConnector`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from headwater.connectors.base import ConnectionLost
from headwater.connectors.postgres import typemap as pg_types
from headwater.connectors.postgres.plan import ReadPlan
from headwater.connectors.postgres.pool import ReaderConnection, ReaderPool, pooled, reader_pool
from headwater.connectors.postgres.session import (
    SessionParams,
    connection_lost,
    reason,
    render_query,
    set_config_sql,
    unreachable,
)
from headwater.connectors.tables import TableConnector, build_select, check_column
from headwater.errors import DefinitionError, HeadwaterError, MissingDependency, RunFailed

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.connectors.postgres.config import PostgresConnection
    from headwater.definitions import PostgresSource, Source

BATCH_HINT_BYTES = "adbc.postgresql.batch_size_hint_bytes"


def connect(conn_config: PostgresConnection, *, what: str) -> psycopg.Connection[Any]:
    """Open a connection (UTC session) or raise :class:`ConnectionFailed` with a redacted DSN."""
    try:
        import psycopg
    except ImportError as exc:
        raise MissingDependency("psycopg", "postgres") from exc
    dsn = conn_config.dsn.get_secret_value()
    try:
        conn = psycopg.connect(
            psycopg.conninfo.make_conninfo(
                dsn,
                connect_timeout=max(1, int(conn_config.connect_timeout_s)),
                **{k: v.get_secret_value() for k, v in conn_config.options.items()},
            )
        )
    except psycopg.OperationalError as exc:
        raise unreachable(what, dsn, exc) from None
    # json / jsonb arrive as the server's JSON text, not as parsed Python objects.
    from psycopg.types.string import TextLoader

    conn.adapters.register_loader("json", TextLoader)
    conn.adapters.register_loader("jsonb", TextLoader)
    conn.execute("SET TIME ZONE 'UTC'")
    if conn_config.statement_timeout_ms:
        conn.execute(f"SET statement_timeout = {int(conn_config.statement_timeout_ms)}")
    return conn


class PostgresConnector(TableConnector):
    """Reads a :class:`PostgresSource` (or, over the protocol, a Redshift source)."""

    REQUIRES: ClassVar[tuple[str, ...]] = (
        "psycopg",
        "psycopg_pool",
        "adbc_driver_manager",
        "adbc_driver_postgresql",
    )
    EXTRA: ClassVar[str] = "postgres"

    def __init__(self, source: Source, project: ProjectConfig) -> None:
        self.source: PostgresSource = source  # type: ignore[assignment]  # registered for kind "postgres"
        self.project = project
        self.conn_config: PostgresConnection = project.connection(source.connection, "postgres")  # type: ignore[attr-defined]  # PostgresSource has it
        self.arrow = source.kind == "postgres"

    # ------------------------------------------------------------------ psycopg (describing)
    def _connect(self) -> psycopg.Connection[Any]:
        return connect(self.conn_config, what=self.what)

    def _placeholder(self, name: str) -> str:
        return f"%({name})s"

    def _query_text(self, has_mark: bool) -> str | None:
        query = self.source.query
        if query is not None and has_mark and not self.source.params:
            # Without params the query is sent as plain SQL (a literal % is just a %); the
            # cursor's placeholder turns the whole text into a template, so escape it.
            query = query.replace("%", "%%")
        return query

    def _describe(self, conn: psycopg.Connection[Any]) -> pa.Schema:
        """Columns of a protocol read (Redshift): ``LIMIT 0``, built-in types by OID."""
        import psycopg
        import pyarrow as pa

        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"SELECT * FROM ({self._select(False)}) AS d LIMIT 0",
                    self.source.params or None,
                )
                description = cur.description or []
        except psycopg.Error as exc:
            raise self._rejected(exc) from None
        return pa.schema(
            pg_types.protocol_field(c.name, c.type_code, c.precision, c.scale) for c in description
        )

    def _fetch(
        self, conn: psycopg.Connection[Any], sql: str, params: dict[str, Any], batch_size: int
    ) -> Iterator[Sequence[Sequence[Any]]]:
        import psycopg

        try:
            with conn.transaction(), conn.cursor(name="headwater_scan") as cur:
                cur.itersize = batch_size
                cur.execute(sql, params or None)
                while rows := cur.fetchmany(batch_size):
                    yield rows
        except psycopg.Error as exc:
            raise self.read_error(exc) from None

    def _rejected(self, exc: BaseException) -> DefinitionError:
        """The error for a read PostgreSQL refused to prepare (unknown table, bad SQL, ...)."""
        return DefinitionError(
            f"{self.what}: PostgreSQL rejected the read: {reason(exc)}",
            fix="check the table name / query and that the connection may read it",
        )

    def schema(self) -> pa.Schema:
        """The Arrow schema of the source's rows (described, not read).

        Raises:
            DefinitionError: PostgreSQL rejected the read, or a column's type has no mapping.
        """
        if not self.arrow:
            return super().schema()
        with pooled(self.conn_config, what=self.what) as conn:
            return self._plan(conn, {}, check=False).schema

    def _plan(
        self, conn: psycopg.Connection[Any], bounds: dict[str, Any], *, check: bool = True
    ) -> ReadPlan:
        """Describe the read and map its types; with ``check``, the cursor and partition
        columns must be among the result's columns."""
        import pyarrow as pa

        source, user = self.source, self.source.params
        columns, param_types = self._prepare(conn, user)
        schema = pa.schema([pg_types.arrow_field(c, what=self.what) for c in columns])
        if check:
            check_column(schema, source.cursor_field, "cursor_field", what=self.what)
            partition_column = getattr(source, "partition_column", None)
            check_column(schema, partition_column, "partition_column", what=self.what)
        params = SessionParams()
        for name, sql_type in param_types.items():
            params.set(name, user[name], sql_type)
        cursor = next((c for c in columns if c.name == source.cursor_field), None)
        for name, value in bounds.items():
            params.set(name, value, cursor.type.sql_name if cursor else "text")
        return ReadPlan(columns, schema, params, self._template(params.ref, set(bounds), user))

    def _prepare(
        self, conn: psycopg.Connection[Any], user: dict[str, Any]
    ) -> tuple[list[pg_types.PgColumn], dict[str, str]]:
        """The result columns of the read and the types PostgreSQL infers for its ``params``,
        from a prepared statement (described, never executed)."""
        from psycopg import pq

        numbers: dict[str, int] = {}

        def dollar(name: str) -> str:
            return f"${numbers.setdefault(name, len(numbers) + 1)}"

        encoding = conn.info.encoding
        result = conn.pgconn.prepare(b"", self._template(dollar, set(), user).encode(encoding))
        if result.status == pq.ExecStatus.COMMAND_OK:
            result = conn.pgconn.describe_prepared(b"")
        if result.status != pq.ExecStatus.COMMAND_OK:
            message = (result.error_message or b"").decode(encoding, "replace")
            raise self._rejected(RuntimeError(message))
        fields = [
            ((result.fname(i) or b"").decode(encoding), result.ftype(i), result.fmod(i))
            for i in range(result.nfields)
        ]
        param_oids = {name: result.param_type(n - 1) for name, n in numbers.items()}
        types = pg_types.lookup_types(conn, {f[1] for f in fields} | set(param_oids.values()))
        columns = [pg_types.PgColumn(name, types[oid], mod) for name, oid, mod in fields]
        # A placeholder PostgreSQL could not type (``SELECT %(x)s``) reads as text.
        param_types = {
            n: types[o].sql_name if o in types and o != 705 else "text"
            for n, o in param_oids.items()
        }
        return columns, param_types

    def _template(
        self, placeholder: Callable[[str], str], bounds: set[str], user: dict[str, Any]
    ) -> str:
        """The read's SELECT, each value written as ``placeholder(name)``."""
        query = self.source.query
        if query is not None and user:
            query = render_query(query, user, placeholder, what=self.what)
        return build_select(
            table=self.source.table,
            query=query,
            cursor_field=self.source.cursor_field,
            has_mark="hw_cursor_low" in bounds,
            has_end="hw_cursor_end" in bounds,
            placeholder=placeholder,
        )

    # ------------------------------------------------------------------ ADBC (reading)
    def _retry_policy(self) -> tuple[int, float]:
        return int(self.conn_config.retries), float(self.conn_config.retry_backoff_s)

    def _read(self, mark: Any) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        if not self.arrow:
            return super()._read(mark)
        with pooled(self.conn_config, what=self.what) as conn:
            plan = self._plan(conn, self._bounds(mark))
        if getattr(self.source, "partition_column", None):
            from headwater.connectors.postgres.partitions import partitioned

            return plan.schema, partitioned(self, plan)
        app = f"headwater:{self.source.name}"
        return plan.schema, self.stream(plan.schema, plan.sql(), plan.params, app)

    def stream(
        self, schema: pa.Schema, sql: str, params: SessionParams, application_name: str
    ) -> Generator[pa.RecordBatch]:
        """Run ``sql`` as one COPY on a pooled ADBC connection; yield batches of ``schema``.

        The connection goes back to the pool only when the COPY completed; a pooled one whose
        backend has gone (found by the first statement) is replaced by a new one.

        Raises:
            ConnectionLost: the connection broke, or could not be opened (the read may be
                started again).
            RunFailed: PostgreSQL failed the statement (e.g. its statement timeout).
        """
        try:
            import adbc_driver_manager
        except ImportError as exc:
            raise MissingDependency("adbc-driver-postgresql", "postgres") from exc
        pool = reader_pool(self.conn_config)
        settings = [("application_name", application_name), *params.settings()]
        conn, statement, reader, completed = None, None, None, False
        try:
            conn = self._session(pool, settings)
            hint = int(self.source.batch_size) * pg_types.row_bytes(schema)
            hint = min(max(hint, 1 << 16), 1 << 28)
            statement, reader = conn.query(sql, {BATCH_HINT_BYTES: str(hint)})
            for batch in reader:
                yield pg_types.conform_batch(batch, schema, what=self.what)
            completed = True
        except (OSError, adbc_driver_manager.Error) as exc:
            raise self.read_error(exc) from None
        finally:
            for resource in (reader, statement):
                with contextlib.suppress(OSError, adbc_driver_manager.Error):
                    if resource is not None:
                        resource.close()
            if conn is not None:
                pool.release(conn, reusable=completed)

    def _session(self, pool: ReaderPool, settings: list[tuple[str, str]]) -> ReaderConnection:
        """A reader connection with ``settings`` applied.

        Raises:
            ConnectionLost: no connection could be opened.
            adbc_driver_manager.Error: the settings failed on a new connection.
        """
        import adbc_driver_manager

        while True:
            try:
                conn, new = pool.acquire()
            except adbc_driver_manager.Error as exc:
                # The read was just described on another connection: most likely a restart or
                # a failover under way, worth another attempt.
                failed = unreachable(self.what, self.conn_config.dsn.get_secret_value(), exc)
                raise ConnectionLost(failed.message, fix=failed.fix) from None
            try:
                conn.execute(set_config_sql(len(settings), "$"), [v for s in settings for v in s])
                return conn
            except (OSError, adbc_driver_manager.Error) as exc:
                pool.release(conn, reusable=False)
                if new or not connection_lost(exc):
                    raise
                # An idle pooled connection whose backend ended: take another one.

    def read_error(self, exc: BaseException) -> HeadwaterError:
        """The error to raise for a driver error of a read (connection lost, timeout, ...)."""
        text = reason(exc)
        if connection_lost(exc):
            return ConnectionLost(
                f"{self.what}: lost the connection to PostgreSQL while reading: {text}",
                fix="the server restarted or ended the session; reads are retried "
                f"{self.conn_config.retries} time(s) (retries: on the connection)",
            )
        if getattr(exc, "sqlstate", None) == "57014" or "statement timeout" in text:
            return RunFailed(
                f"{self.what}: PostgreSQL cancelled the read after statement_timeout_ms="
                f"{self.conn_config.statement_timeout_ms}: {text}",
                fix="raise statement_timeout_ms of the connection, or read less per statement "
                "(cursor_field, partition_column)",
            )
        return RunFailed(f"{self.what}: PostgreSQL failed the read: {text}")
