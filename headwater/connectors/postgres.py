"""PostgreSQL tables and queries, streamed into Arrow record batches through a server-side cursor.

Full refresh or incremental by ``cursor_field`` (see :mod:`headwater.connectors.sql`). The
session runs in UTC so ``timestamptz`` values arrive normalised.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from headwater.connectors.sql import TableConnector
from headwater.errors import ConnectionFailed, DefinitionError, MissingDependency
from headwater.observability import redact

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.config.models import PostgresConnection
    from headwater.definitions import PostgresSource, Source


def _arrow_type(oid: int, precision: int | None, scale: int | None) -> pa.DataType:
    import pyarrow as pa

    simple = {
        16: pa.bool_(),
        17: pa.binary(),
        20: pa.int64(),
        21: pa.int16(),
        23: pa.int32(),
        25: pa.string(),
        700: pa.float32(),
        701: pa.float64(),
        1043: pa.string(),
        1042: pa.string(),
        1082: pa.date32(),
        1083: pa.time64("us"),
        1114: pa.timestamp("us"),
        1184: pa.timestamp("us", tz="UTC"),
        2950: pa.string(),
        114: pa.string(),
        3802: pa.string(),
        19: pa.string(),
        18: pa.string(),
    }
    if oid in simple:
        return simple[oid]
    if oid == 1700:  # numeric
        if precision is not None and precision <= 38:
            return pa.decimal128(precision, scale or 0)
        return pa.float64()
    return pa.string()


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
        # libpq's message spans lines ("...: Connection refused\n\tIs the server running...");
        # keep every part, on one line.
        reason = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        reason = reason or type(exc).__name__
        raise ConnectionFailed(
            f"{what}: cannot connect to PostgreSQL at {redact(dsn)}: {redact(reason)}",
            fix="check that the server is running and the dsn in headwater.yaml is right",
        ) from None
    # json / jsonb arrive as the server's JSON text, not as parsed Python objects.
    from psycopg.types.string import TextLoader

    conn.adapters.register_loader("json", TextLoader)
    conn.adapters.register_loader("jsonb", TextLoader)
    conn.execute("SET TIME ZONE 'UTC'")
    if conn_config.statement_timeout_ms:
        conn.execute(f"SET statement_timeout = {int(conn_config.statement_timeout_ms)}")
    return conn


class PostgresConnector(TableConnector):
    """Reads a :class:`PostgresSource` through a server-side cursor."""

    def __init__(self, source: Source, project: ProjectConfig) -> None:
        self.source: PostgresSource = source  # type: ignore[assignment]  # registered for kind "postgres"
        self.conn_config: PostgresConnection = project.connection(source.connection, "postgres")  # type: ignore[attr-defined]  # PostgresSource has it

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(self.conn_config, what=f"source {self.source.name!r}")

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
            raise DefinitionError(
                f"source {self.source.name!r}: PostgreSQL rejected the read: "
                f"{str(exc).strip().splitlines()[0]}",
                fix="check the table name / query and that the connection may read it",
            ) from None
        return pa.schema(
            [
                pa.field(col.name, _arrow_type(col.type_code, col.precision, col.scale))
                for col in description
            ]
        )

    def _fetch(
        self, conn: psycopg.Connection[Any], sql: str, params: dict[str, Any], batch_size: int
    ) -> Iterator[Sequence[Sequence[Any]]]:
        with conn.transaction(), conn.cursor(name="headwater_scan") as cur:
            cur.itersize = batch_size
            cur.execute(sql, params or None)
            while rows := cur.fetchmany(batch_size):
                yield rows
