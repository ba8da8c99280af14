"""Amazon Redshift, over the PostgreSQL protocol or through ``UNLOAD`` to Parquet on S3.

*Protocol mode* (default) builds a PostgreSQL connection from the ``type: redshift``
connection — with the password, or with temporary credentials from
``redshift:GetClusterCredentials`` when ``iam: true`` — and delegates the read to
:class:`~headwater.connectors.postgres.reader.PostgresConnector`, so cursors, types and
batching are the PostgreSQL connector's.

*Unload mode* (``unload=`` on the source) runs ``UNLOAD ('<select>') TO 's3://.../<source>/<run>/'
... FORMAT AS PARQUET`` and streams the files back as Arrow record batches. The SELECT is a string
literal inside the statement, so values cannot be bound: they are rendered by :func:`sql_literal`
and the whole SELECT is quoted again by :func:`quote_string`. The cursor's new high-water mark is
the greatest value in the files. The files of earlier runs of the source are deleted when the
next run starts; an S3 lifecycle rule on the prefix is the backstop for sources that stop.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from headwater.connectors.base import Scan
from headwater.connectors.redshift.auth import cluster_credentials
from headwater.connectors.tables import CursorTracker, build_select, decode_cursor
from headwater.errors import ConnectionFailed, DefinitionError, MissingDependency
from headwater.observability import get_logger

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    from pyarrow import fs

    from headwater.config import ProjectConfig
    from headwater.connectors.postgres.config import PostgresConnection
    from headwater.connectors.postgres.reader import PostgresConnector
    from headwater.connectors.redshift.config import RedshiftConnection
    from headwater.definitions import Source
    from headwater.definitions.redshift import RedshiftSource

log = get_logger("connectors.redshift")

T = TypeVar("T")

_PLACEHOLDER = re.compile(r"%\((?P<name>[^)]*)\)[sbt]|%%|%")


# ---------------------------------------------------------------------- SQL text (pure)
def sql_literal(value: Any) -> str:
    """``value`` as a Redshift SQL literal (no bound parameters are possible inside UNLOAD).

    Strings double their single quotes; backslashes, which Redshift reads as escapes inside
    literals, are spelled ``CHR(92)`` so the text means the same under either rule. Negative
    numbers are parenthesised (``x -%(n)s`` must not become a ``--`` comment).

    Raises:
        DefinitionError: the value has no literal form here (NaN, NUL characters, other types).
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"({value})" if value < 0 else str(value)
    if isinstance(value, float | Decimal):
        if (isinstance(value, float) and not math.isfinite(value)) or (
            isinstance(value, Decimal) and not value.is_finite()
        ):
            raise DefinitionError(f"cannot compare with the non-finite number {value!r} in SQL")
        text = repr(value) if isinstance(value, float) else format(value, "f")
        return f"({text})" if text.startswith("-") else text
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return f"CAST('{value.isoformat(sep=' ', timespec='microseconds')}' AS TIMESTAMP)"
        utc = value.astimezone(UTC).replace(tzinfo=None)
        return f"CAST('{utc.isoformat(sep=' ', timespec='microseconds')}+00' AS TIMESTAMPTZ)"
    if isinstance(value, date):
        return f"CAST('{value.isoformat()}' AS DATE)"
    if isinstance(value, time) and value.tzinfo is None:
        return f"CAST('{value.isoformat(timespec='microseconds')}' AS TIME)"
    if isinstance(value, str):
        if "\x00" in value:
            raise DefinitionError(f"cannot write a NUL character into SQL text: {value!r}")
        parts = ["'" + part.replace("'", "''") + "'" for part in value.split("\\")]
        return parts[0] if len(parts) == 1 else "(" + " || CHR(92) || ".join(parts) + ")"
    raise DefinitionError(
        f"cannot write {value!r} ({type(value).__name__}) as a Redshift SQL literal",
        fix="use str, int, float, Decimal, bool, date, time or datetime values",
    )


def quote_string(text: str) -> str:
    """``text`` as a Redshift string literal: quotes and backslashes doubled."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def render_params(query: str, params: Mapping[str, Any]) -> str:
    """Replace ``%(name)s`` placeholders of ``query`` by literals (``%%`` becomes ``%``).

    Without params the text is kept as is, as the PostgreSQL driver would send it.

    Raises:
        DefinitionError: a placeholder has no value, or a lone ``%`` is in the text.
    """
    if not params:
        return query

    def replace(match: re.Match[str]) -> str:
        token, name = match.group(0), match.group("name")
        if token == "%%":
            return "%"
        if name is None:
            raise DefinitionError(
                f"query has a lone '%' at character {match.start()}", fix="write a literal % as %%"
            )
        if name not in params:
            raise DefinitionError(
                f"query placeholder %({name})s has no value in params",
                fix=f"add {name!r} to params (given: {', '.join(sorted(params))})",
            )
        return sql_literal(params[name])

    return _PLACEHOLDER.sub(replace, query)


def build_unload_select(
    *,
    table: str | None,
    query: str | None,
    params: Mapping[str, Any],
    cursor_field: str | None,
    mark: Any,
) -> str:
    """The SELECT an UNLOAD runs: the same text as the protocol read, with literal values."""
    return build_select(
        table=table,
        query=None if query is None else render_params(query, params),
        cursor_field=cursor_field,
        has_mark=mark is not None,
        placeholder=lambda _name: sql_literal(mark),
    )


def build_unload_sql(select: str, *, to: str, iam_role: str, region: str | None = None) -> str:
    """The UNLOAD statement writing ``select``'s rows as Parquet files under ``to``."""
    sql = (
        f"UNLOAD ({quote_string(select)}) TO {quote_string(to)} "
        f"IAM_ROLE {quote_string(iam_role)} FORMAT AS PARQUET ALLOWOVERWRITE PARALLEL ON"
    )
    return sql + (f" REGION AS {quote_string(region)}" if region else "")


# ---------------------------------------------------------------------- connections
def postgres_config(
    conn: RedshiftConnection, *, user: str | None, password: str | None
) -> PostgresConnection:
    """A PostgreSQL connection config reaching the cluster as ``user`` with ``password``."""
    from pydantic import SecretStr

    from headwater.connectors.postgres.config import PostgresConnection

    try:
        from psycopg.conninfo import make_conninfo
    except ImportError as exc:
        raise MissingDependency("psycopg", "redshift") from exc
    parts: dict[str, str | int | None] = {"host": conn.host, "port": conn.port}
    parts.update(dbname=conn.database, user=user, password=password)
    dsn = make_conninfo("", **{key: value for key, value in parts.items() if value is not None})
    return PostgresConnection(
        dsn=SecretStr(dsn), options=dict(conn.options), connect_timeout_s=conn.connect_timeout_s
    )


# ---------------------------------------------------------------------- connector
class RedshiftConnector:
    """Reads a :class:`~headwater.definitions.RedshiftSource` (protocol or unload mode)."""

    SUPPORTS_INCREMENTAL: ClassVar[bool] = True
    REQUIRES: ClassVar[tuple[str, ...]] = ("psycopg",)
    EXTRA: ClassVar[str] = "redshift"

    def __init__(self, source: Source, project: ProjectConfig) -> None:
        self.source: RedshiftSource = source  # type: ignore[assignment]  # registered for kind "redshift"
        self.project = project
        self.conn_config: RedshiftConnection = project.connection(
            self.source.connection, "redshift"
        )

    def postgres_connection(self) -> PostgresConnection:
        """The PostgreSQL-protocol config, fetching temporary IAM credentials when configured."""
        conn = self.conn_config
        if conn.iam:
            user, password = cluster_credentials(conn, name=self.source.connection)
            return postgres_config(conn, user=user, password=password)
        secret = conn.password
        return postgres_config(
            conn, user=conn.user, password=None if secret is None else secret.get_secret_value()
        )

    def _postgres(self) -> PostgresConnector:
        from headwater.connectors.postgres.reader import PostgresConnector

        connections = dict(self.project.connections)
        connections[self.source.connection] = self.postgres_connection()
        project = self.project.model_copy(update={"connections": connections})
        return PostgresConnector(self.source, project)

    def schema(self) -> pa.Schema:
        """The result columns, read with ``LIMIT 0`` over the protocol (both modes)."""
        return self._postgres().schema()

    def scan(self, con: duckdb.DuckDBPyConnection, *, checkpoint: Any = None) -> Scan:
        """Read from ``checkpoint``: through the protocol, or by UNLOAD and Parquet on S3."""
        if self.source.unload is None:
            return self._postgres().scan(con, checkpoint=checkpoint)
        return self._scan_unload(con, decode_cursor(checkpoint))

    def execute_unload(self, statement: str) -> None:
        """Run the UNLOAD statement on the cluster (tests replace this hook)."""
        import psycopg

        from headwater.connectors.postgres.reader import connect

        conn = connect(self.postgres_connection(), what=f"source {self.source.name!r}")
        try:
            with conn.transaction():
                conn.execute(statement)
        except psycopg.Error as exc:
            raise DefinitionError(
                f"source {self.source.name!r}: Redshift rejected the UNLOAD: "
                f"{str(exc).strip().splitlines()[0]}",
                fix="check the table / query, and that iam_role is attached to the cluster and "
                "may write to s3_path",
            ) from None
        finally:
            conn.close()

    def _scan_unload(self, con: duckdb.DuckDBPyConnection, mark: Any) -> Scan:
        import pyarrow as pa
        import pyarrow.dataset as ds

        source, unload = self.source, self.source.unload or {}
        base = f"{unload['s3_path']}{source.name}/"
        target = f"{base}{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}/"
        filesystem = self._filesystem()
        # Earlier runs' files: their data was written (or will be re-read from the old mark).
        self._s3(lambda: _delete_folder(filesystem, _key(base)), base)
        select = build_unload_select(
            table=source.table,
            query=source.query,
            params=source.params,
            cursor_field=source.cursor_field,
            mark=mark,
        )
        statement = build_unload_sql(
            select, to=target, iam_role=unload["iam_role"], region=unload.get("region")
        )
        log.info("unloading", extra={"fields": {"source": source.name, "to": target}})
        self.execute_unload(statement)
        files = self._s3(lambda: _parquet_files(filesystem, _key(target)), target)
        dataset = ds.dataset(files, format="parquet", filesystem=filesystem) if files else None
        schema = dataset.schema if dataset is not None else self.schema()
        if source.cursor_field and source.cursor_field not in schema.names:
            raise DefinitionError(
                f"source {source.name!r}: cursor_field {source.cursor_field!r} is not a column "
                f"(columns: {', '.join(schema.names)})",
                fix="name an existing, monotonically increasing column (e.g. updated_at)",
            )
        tracker = CursorTracker(source.cursor_field, mark)

        def batches() -> Iterator[pa.RecordBatch]:
            if dataset is not None:
                yield from dataset.to_batches(batch_size=int(source.batch_size))

        reader = pa.RecordBatchReader.from_batches(schema, tracker.track(batches()))
        view = f"__hw_src_{source.name}"
        con.register(view, reader)
        return Scan(
            relation=view,
            checkpoint=tracker.checkpoint,
            rows_read=lambda: tracker.rows,
            one_shot=True,
        )

    def _filesystem(self) -> fs.S3FileSystem:
        from pyarrow import fs

        unload = self.source.unload or {}
        options: dict[str, Any] = {}
        region = unload.get("region") or self.conn_config.region
        if region:
            options["region"] = region
        if endpoint := unload.get("endpoint_url"):
            scheme, _, address = endpoint.partition("://")
            options.update(scheme=scheme, endpoint_override=address.rstrip("/"))
        return fs.S3FileSystem(**options)

    def _s3(self, action: Callable[[], T], url: str) -> T:
        try:
            return action()
        except OSError as exc:
            raise ConnectionFailed(
                f"source {self.source.name!r}: S3 request under {url} failed: {exc}",
                fix="check that the AWS credentials (environment, profile or instance role) may "
                "list, read and delete under s3_path, and unload's region / endpoint_url",
            ) from None


def _key(url: str) -> str:
    """``bucket/prefix`` of an ``s3://bucket/prefix/`` URL, as pyarrow file systems take it."""
    return url.removeprefix("s3://").rstrip("/")


def _parquet_files(filesystem: fs.S3FileSystem, prefix: str) -> list[str]:
    from pyarrow import fs

    infos = filesystem.get_file_info(fs.FileSelector(prefix, allow_not_found=True, recursive=True))
    return sorted(i.path for i in infos if i.type == fs.FileType.File and i.size)


def _delete_folder(filesystem: fs.S3FileSystem, prefix: str) -> None:
    from pyarrow import fs

    if filesystem.get_file_info(prefix).type != fs.FileType.NotFound:
        filesystem.delete_dir(prefix)
