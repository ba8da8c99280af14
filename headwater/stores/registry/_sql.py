"""The registry backends: one connection wrapper per SQL dialect, and its ``registry`` model.

The backends are registered in :data:`headwater.plugins.REGISTRIES` (``registry.type``).
Statements are written once, with ``?`` parameter markers and ``{name}`` slots for tables and
column types; each backend compiles them for its dialect (quoted, schema-qualified identifiers
in PostgreSQL) and caches the result. Values are always passed as parameters.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import Field, SecretStr

from headwater.config.models import RegistryConfig
from headwater.errors import ConfigError, ConnectionFailed, MissingDependency
from headwater.observability.redact import redact
from headwater.stores._sqlite import wal_mode

if TYPE_CHECKING:
    from headwater.config import ProjectConfig

TABLES = (
    "meta",
    "definitions",
    "view_schemas",
    "runs",
    "checkpoints",
    "counters",
    "stream_partitions",
    "stream_state_pieces",
    "check_results",
    "source_schemas",
    "fitted_statistics",
)
DDL = (
    "CREATE TABLE IF NOT EXISTS {meta} (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {definitions} (kind TEXT NOT NULL, name TEXT NOT NULL,"
    " version INTEGER NOT NULL, spec TEXT NOT NULL, applied_at {ts} NOT NULL,"
    " removed_at {ts}, PRIMARY KEY (kind, name, version))",
    "CREATE TABLE IF NOT EXISTS {view_schemas} (view_name TEXT PRIMARY KEY,"
    " arrow_schema {blob} NOT NULL, updated_at {ts} NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {runs} (id {serial}, run_id TEXT NOT NULL UNIQUE,"
    " view_name TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,"
    " started_at {ts} NOT NULL, ended_at {ts}, rows_in BIGINT NOT NULL DEFAULT 0,"
    " rows_out BIGINT NOT NULL DEFAULT 0, error TEXT, details TEXT NOT NULL, owner TEXT,"
    " heartbeat_at {ts})",
    "CREATE INDEX IF NOT EXISTS runs_view_kind_started ON {runs} (view_name, kind, started_at)",
    "CREATE TABLE IF NOT EXISTS {checkpoints} (name TEXT PRIMARY KEY, value TEXT NOT NULL,"
    " updated_at {ts} NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {counters} (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {stream_partitions} (view_name TEXT NOT NULL, topic TEXT NOT NULL,"
    " kafka_partition INTEGER NOT NULL, next_offset BIGINT NOT NULL, meta TEXT NOT NULL,"
    " state {blob}, updated_at {ts} NOT NULL, PRIMARY KEY (view_name, topic, kafka_partition))",
    "CREATE TABLE IF NOT EXISTS {stream_state_pieces} (view_name TEXT NOT NULL,"
    " topic TEXT NOT NULL, kafka_partition INTEGER NOT NULL, next_offset BIGINT NOT NULL,"
    " window_end BIGINT, state {blob} NOT NULL,"
    " PRIMARY KEY (view_name, topic, kafka_partition, next_offset))",
    "CREATE TABLE IF NOT EXISTS {check_results} (run_id TEXT NOT NULL, view_name TEXT NOT NULL,"
    " stage TEXT NOT NULL, subject TEXT NOT NULL, check_name TEXT NOT NULL,"
    " position INTEGER NOT NULL, kind TEXT NOT NULL, severity TEXT NOT NULL,"
    " column_names TEXT NOT NULL, passed INTEGER NOT NULL, action TEXT NOT NULL,"
    " rows_checked BIGINT NOT NULL, rows_failed BIGINT NOT NULL, message TEXT NOT NULL,"
    " sample TEXT NOT NULL, recorded_at {ts} NOT NULL, PRIMARY KEY (run_id, stage, check_name))",
    "CREATE INDEX IF NOT EXISTS check_results_view ON {check_results} (view_name, recorded_at)",
    "CREATE TABLE IF NOT EXISTS {source_schemas} (source_name TEXT PRIMARY KEY,"
    " arrow_schema {blob} NOT NULL, updated_at {ts} NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {fitted_statistics} (view_name TEXT NOT NULL,"
    " step_key TEXT NOT NULL, step TEXT NOT NULL, position INTEGER NOT NULL,"
    " fit_start_ms BIGINT NOT NULL, fit_end_ms BIGINT NOT NULL, stats TEXT NOT NULL,"
    " rows_fitted BIGINT NOT NULL, view_version INTEGER, fitted_at {ts} NOT NULL,"
    " PRIMARY KEY (view_name, step_key))",
)

MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 1 -> 2: runs know their owner process and its heartbeat (dead runs become "aborted").
    1: (
        "ALTER TABLE {runs} ADD COLUMN owner TEXT",
        "ALTER TABLE {runs} ADD COLUMN heartbeat_at {ts}",
    ),
}
"""Statements that bring a registry of schema version N to N + 1, run in the bootstrap
transaction."""


class SqliteRegistryConfig(RegistryConfig):
    """``registry`` of ``type: sqlite``: the registry in a local SQLite file (the default)."""

    type: Literal["sqlite"] = "sqlite"
    path: str = ".headwater/registry.db"
    """The database file (relative paths are read from the project folder)."""


class PostgresRegistryConfig(RegistryConfig):
    """``registry`` of ``type: postgres``: the registry in a PostgreSQL schema, shared by a
    team."""

    type: Literal["postgres"] = "postgres"
    dsn: SecretStr
    """libpq connection string or URL of the server."""
    db_schema: str = Field("headwater", alias="schema")
    """Schema holding the registry tables."""


class Db(ABC):
    """A connection plus the dialect details: column types, parameter style, timestamps."""

    config_model: ClassVar[type[RegistryConfig]]
    """The model of the ``registry`` section that selects this backend."""
    types: dict[str, str]
    """Fillers of the ``{ts}``, ``{blob}`` and ``{serial}`` slots of :data:`DDL`."""

    def __init__(self) -> None:
        self._compiled: dict[str, Any] = {}

    @classmethod
    @abstractmethod
    def open(cls, config: RegistryConfig, project: ProjectConfig) -> Db:
        """Connect as ``config`` (an instance of :attr:`config_model`) says."""

    def run(self, template: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Execute a statement template; return its rows (empty without a result set)."""
        query = self._compiled.get(template)
        if query is None:
            query = self._compiled[template] = self._compile(template)
        return self._execute(query, tuple(params))

    @abstractmethod
    def prelude(self) -> None:
        """Run dialect-specific setup inside the bootstrap transaction."""

    @abstractmethod
    def _compile(self, template: str) -> Any: ...

    @abstractmethod
    def _execute(self, query: Any, params: tuple[Any, ...]) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """One write transaction, serialised against other writers."""

    @abstractmethod
    def to_db_ts(self, value: datetime) -> Any:
        """A timestamp as the database stores it (UTC)."""

    @abstractmethod
    def from_db_ts(self, value: Any) -> datetime:
        """A stored timestamp as an aware UTC datetime."""

    @abstractmethod
    def close(self) -> None: ...


class SqliteDb(Db):
    """A SQLite file in WAL mode; write transactions are ``BEGIN IMMEDIATE``."""

    config_model = SqliteRegistryConfig
    types = {"ts": "TEXT", "blob": "BLOB", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"}

    def __init__(self, path: str) -> None:
        super().__init__()
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the SQLite registry at {path}: {exc}",
                fix="set registry.path in headwater.yaml to a writable location",
            ) from exc
        try:
            self._conn.execute("PRAGMA busy_timeout = 30000")
            wal_mode(self._conn)
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open(cls, config: RegistryConfig, project: ProjectConfig) -> SqliteDb:
        return cls(project.resolve(cast(SqliteRegistryConfig, config).path))

    def _compile(self, template: str) -> Any:
        slots = {table: f'"{table}"' for table in TABLES}
        return template.format(**slots, **self.types)

    def _execute(self, query: Any, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        cursor = self._conn.execute(query, params)
        try:
            return cursor.fetchall()
        finally:
            cursor.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def prelude(self) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already serialises concurrent first opens."""

    def to_db_ts(self, value: datetime) -> Any:
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def from_db_ts(self, value: Any) -> datetime:
        return datetime.fromisoformat(value).astimezone(UTC)

    def close(self) -> None:
        self._conn.close()


class PostgresDb(Db):
    """A psycopg 3 connection in autocommit mode; tables live in one (quoted) schema."""

    config_model = PostgresRegistryConfig
    REQUIRES: ClassVar[tuple[str, ...]] = ("psycopg",)
    EXTRA: ClassVar[str] = "postgres"
    types = {
        "ts": "TIMESTAMPTZ",
        "blob": "BYTEA",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    }

    def __init__(self, dsn: str, schema: str) -> None:
        super().__init__()
        try:
            import psycopg
        except ImportError as exc:
            raise MissingDependency("psycopg", "postgres") from exc
        self._schema = schema
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            # ``from None``: the driver's message is repeated here, redacted.
            raise ConnectionFailed(
                f"cannot connect to the PostgreSQL registry at {redact(dsn)}: "
                f"{redact(' '.join(str(exc).split()))}",
                fix="start the server, or correct registry.dsn in headwater.yaml",
            ) from None

    @classmethod
    def open(cls, config: RegistryConfig, project: ProjectConfig) -> PostgresDb:
        settings = cast(PostgresRegistryConfig, config)
        return cls(settings.dsn.get_secret_value(), settings.db_schema)

    def _compile(self, template: str) -> Any:
        from psycopg import sql

        slots: dict[str, Any] = {t: sql.Identifier(self._schema, t) for t in TABLES}
        slots.update({k: sql.SQL(v) for k, v in self.types.items()})
        slots["schema"] = sql.Identifier(self._schema)
        return sql.SQL(template.replace("?", "%s")).format(**slots)

    def _execute(self, query: Any, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._conn.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall() if cursor.description is not None else []

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            yield

    def prelude(self) -> None:
        # Concurrent first opens would race on CREATE SCHEMA / CREATE TABLE.
        self.run("SELECT pg_advisory_xact_lock(hashtext(?))", (f"headwater:{self._schema}",))
        self.run("CREATE SCHEMA IF NOT EXISTS {schema}")

    def to_db_ts(self, value: datetime) -> Any:
        return value.astimezone(UTC)

    def from_db_ts(self, value: Any) -> datetime:
        return value.astimezone(UTC)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._conn.close()
