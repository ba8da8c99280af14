"""Load feature rows into Amazon Redshift through Parquet files staged on S3.

A load writes the rows as ``<s3_staging><view>/<run id>/part-NNNNN.parquet`` (boto3), then, in
one transaction: ``CREATE TEMP TABLE`` the staging table, ``COPY ... FORMAT AS PARQUET`` from the
run's prefix, apply the rows (``MERGE`` for upsert, ``INSERT`` for append, ``DELETE`` + ``INSERT``
for replace — Redshift's ``TRUNCATE`` would commit) and record the write sequence in the state
table. The staged files are deleted afterwards, whether the load succeeded or not. Creating the
table or adding columns runs before the load transaction, on its own.

The SQL text comes from the pure functions of :mod:`headwater.connectors.redshift.statements`.
The connection speaks the PostgreSQL protocol (psycopg, client-side parameter binding, which
Redshift accepts like psycopg2's); with ``iam: true`` the password is a temporary one from
``redshift:GetClusterCredentials``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from headwater.connectors.redshift import statements as rs
from headwater.connectors.redshift.auth import boto3_module, cluster_credentials
from headwater.connectors.s3 import delete_staged, stage_parquet
from headwater.connectors.sinks.base import (
    STATE_TABLE,
    SinkError,
    SinkStats,
    check_evolution,
    check_keys,
    merge_keys,
    missing_columns,
    sink_connection,
)
from headwater.connectors.sinks.typemap import column_types, for_parquet, redshift_type
from headwater.errors import ConnectionFailed, MissingDependency
from headwater.observability import redact
from headwater.sql import quote_ident as q

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.connectors.redshift.config import RedshiftConnection
    from headwater.definitions import FeatureView
    from headwater.definitions.sinks import RedshiftSink, Sink


# ---------------------------------------------------------------------- credentials, connection
def connect(
    config: RedshiftConnection, *, what: str, redshift_client: Any = None
) -> psycopg.Connection[Any]:
    """An autocommit connection to the cluster or :class:`ConnectionFailed`."""
    try:
        import psycopg
    except ImportError as exc:
        raise MissingDependency("psycopg", "redshift") from exc
    user, password = config.user, config.password and config.password.get_secret_value()
    if config.iam:
        user, password = cluster_credentials(config, client=redshift_client)
    params: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "dbname": config.database,
        "user": user,
        "connect_timeout": max(1, int(config.connect_timeout_s)),
        **{k: v.get_secret_value() for k, v in config.options.items()},
    }
    if password is not None:
        params["password"] = password
    try:
        return psycopg.connect(
            psycopg.conninfo.make_conninfo("", **params),
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,
        )
    except psycopg.OperationalError as exc:
        reason = " ".join(p.strip() for p in str(exc).splitlines() if p.strip())
        raise ConnectionFailed(
            f"{what}: cannot connect to Redshift at {config.host}:{config.port}: "
            f"{redact(reason or type(exc).__name__)}",
            fix="check host, port, database and credentials of the connection, and that the "
            "cluster accepts connections from here",
        ) from None


# ---------------------------------------------------------------------- writer
class RedshiftSinkWriter:
    """Loads a view's rows into the table of a :class:`~headwater.definitions.RedshiftSink`."""

    SUPPORTS_UPSERT: ClassVar[bool] = True
    REQUIRES: ClassVar[tuple[str, ...]] = ("psycopg",)
    EXTRA: ClassVar[str] = "redshift"
    rows_per_file: ClassVar[int] = 1_000_000

    def __init__(
        self,
        sink: Sink,
        view: FeatureView,
        project: ProjectConfig,
        *,
        s3_client: Any = None,
        redshift_client: Any = None,
    ) -> None:
        self.sink: RedshiftSink = sink  # type: ignore[assignment]  # registered for kind "redshift"
        self.view = view
        self.config: RedshiftConnection = sink_connection(project, sink, view)
        self._s3 = s3_client
        self._redshift = redshift_client
        self._conn: psycopg.Connection[Any] | None = None
        self.target = rs.table_ref(self.sink.schema_name, self.sink.table_name)
        self.state = rs.table_ref(self.sink.schema_name, STATE_TABLE)

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            what = f"view {self.view.name!r}: sink {self.sink.table!r}"
            self._conn = connect(self.config, what=what, redshift_client=self._redshift)
        return self._conn

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = boto3_module().client("s3", region_name=self.config.region)
        return self._s3

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _columns(self, table: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "COALESCE(%s, current_schema()) AND lower(table_name) = lower(%s)",
            (self.sink.schema_name, table),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def last_seq(self) -> int | None:
        if not self._columns(self.sink.table_name) or not self._columns(STATE_TABLE):
            return None
        row = self.conn.execute(
            f"SELECT last_seq FROM {self.state} WHERE target_table = %s AND view_name = %s",
            (self.sink.table, self.view.name),
        ).fetchone()
        return None if row is None else int(row[0])

    def write(
        self, schema: pa.Schema, batches: Iterable[pa.RecordBatch], *, seq: int, run_id: str
    ) -> SinkStats:
        import pyarrow as pa

        started = time.perf_counter()
        check_keys(self.sink, self.view, schema)
        where = f"view {self.view.name!r}: sink {self.sink.table!r}"
        columns = column_types(schema, redshift_type, where=where)
        self._ensure_tables(schema, columns)
        url = f"{self.sink.s3_staging}{self.view.name}/{run_id}/"
        staged_schema = for_parquet(pa.RecordBatch.from_pylist([], schema=schema)).schema
        prepared: Iterator[pa.RecordBatch] = (for_parquet(b) for b in batches)
        staged = stage_parquet(
            self.s3, url, staged_schema, prepared, rows_per_file=self.rows_per_file
        )
        try:
            load = rs.build_load_sql(
                self.sink.mode,
                target=self.target,
                columns=columns,
                keys=merge_keys(self.view),
                s3_prefix=staged.url if staged.keys else None,
                iam_role=self.sink.iam_role,
            )
            state = rs.build_state_sql(
                self.state, table=self.sink.table, view=self.view.name, seq=seq, run_id=run_id
            )
            self.execute_transaction([(s, ()) for s in load] + state)
        finally:
            delete_staged(self.s3, staged)
        return SinkStats(
            self.sink.table, self.sink.mode, staged.rows, time.perf_counter() - started
        )

    def _ensure_tables(self, schema: pa.Schema, columns: list[tuple[str, str]]) -> None:
        """Create the target (or add its missing columns) and the state table, outside the
        load transaction."""
        statements: list[str] = []
        existing = self._columns(self.sink.table_name)
        if not existing:
            if not self.sink.create:
                raise SinkError(
                    f"view {self.view.name!r}: sink table {self.sink.table!r} does not exist",
                    fix="create it, or set create=True on the sink",
                )
            if self.sink.schema_name:
                statements.append(f"CREATE SCHEMA IF NOT EXISTS {q(self.sink.schema_name)}")
            keys = None if self.sink.mode == "append" else merge_keys(self.view)
            statements.append(rs.build_create_table_sql(self.target, columns, keys))
        else:
            missing = missing_columns(schema, existing, fold_case=True)
            check_evolution(self.sink, self.view, missing)
            kinds = dict(columns)
            statements += [rs.build_add_column_sql(self.target, n, kinds[n]) for n in missing]
        statements.append(rs.build_state_table_sql(self.state))
        self.execute_transaction([(s, ()) for s in statements], atomic=False)

    def execute_transaction(self, statements: list[rs.Statement], *, atomic: bool = True) -> None:
        """Run ``statements`` in one transaction (or one by one when not ``atomic``)."""
        import psycopg

        try:
            if atomic:
                with self.conn.transaction(), self.conn.cursor() as cur:
                    for text, values in statements:
                        cur.execute(text, values or None)
            else:
                for text, values in statements:
                    self.conn.execute(text, values or None)
        except psycopg.Error as exc:
            raise SinkError(
                f"view {self.view.name!r}: Redshift rejected the load into {self.sink.table!r}: "
                f"{str(exc).strip().splitlines()[0]}",
                fix="check that iam_role is attached to the cluster and may read s3_staging, "
                "and that the table's column types match the view's (docs/connectors/sinks.md)",
            ) from None
