"""The shape of ``headwater.yaml``: one pydantic model per connection and store kind.

Each model has a ``type`` discriminator and forbids unknown keys. Secrets (DSNs, URLs with
passwords) are :class:`pydantic.SecretStr` so they never print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------ connections
class PostgresConnection(_Model):
    """A PostgreSQL server."""

    type: Literal["postgres"] = "postgres"
    dsn: SecretStr
    """libpq connection string or URL, e.g. ``postgresql://app@127.0.0.1:5432/shop``."""
    options: dict[str, SecretStr] = Field(default_factory=dict)
    """Extra libpq parameters (``sslmode``, ``application_name``, ...); kept secret because
    they may hold credentials (``password``, ``sslpassword``)."""
    connect_timeout_s: float = 10.0
    """Seconds to wait for a connection before failing."""
    statement_timeout_ms: int | None = None
    """Server-side statement timeout, in milliseconds; it bounds each whole read (one COPY
    statement per read or partition) as well as every other statement."""
    retries: Annotated[int, Field(ge=0)] = 3
    """How many times a read that lost its connection is started again (0: never). A plain
    read is retried whole from the same checkpoint; a partitioned read retries the partition."""
    retry_backoff_s: Annotated[float, Field(ge=0)] = 0.5
    """Delay before the first retry, in seconds; doubled on each further retry, with jitter."""


class KafkaConnection(_Model):
    """An Apache Kafka cluster (used by streaming sources)."""

    type: Literal["kafka"] = "kafka"
    bootstrap_servers: str
    """``host:port[,host:port...]``."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    settings: dict[str, str] = Field(default_factory=dict)
    """Any librdkafka setting, passed through."""


class RedshiftConnection(_Model):
    """An Amazon Redshift cluster, reached over the PostgreSQL protocol."""

    type: Literal["redshift"] = "redshift"
    host: str
    """The cluster endpoint, e.g. ``analytics.abc123.eu-west-1.redshift.amazonaws.com``."""
    port: int = 5439
    database: str
    user: str
    """The database user (with ``iam: true``, the user temporary credentials are issued for)."""
    password: SecretStr | None = None
    """The user's password; leave out with ``iam: true``."""
    iam: bool = False
    """Connect with temporary credentials from ``redshift:GetClusterCredentials``."""
    cluster_identifier: str | None = None
    """The cluster's name; required with ``iam: true``."""
    region: str | None = None
    """AWS region of the cluster (default: the AWS SDK's configured region)."""
    options: dict[str, SecretStr] = Field(default_factory=dict)
    """Extra libpq parameters (``sslmode``, ``application_name``, ...), kept secret."""
    connect_timeout_s: float = 10.0
    """Seconds to wait for a connection before failing."""


Connection = Annotated[
    PostgresConnection | KafkaConnection | RedshiftConnection, Field(discriminator="type")
]


# ------------------------------------------------------------------ registry
class SqliteRegistry(_Model):
    """The registry in a local SQLite file (default)."""

    type: Literal["sqlite"] = "sqlite"
    path: str = ".headwater/registry.db"


class PostgresRegistry(_Model):
    """The registry in a PostgreSQL schema, shared by a team."""

    type: Literal["postgres"] = "postgres"
    dsn: SecretStr
    db_schema: str = Field("headwater", alias="schema")
    """Schema holding the registry tables."""


RegistryConfig = Annotated[SqliteRegistry | PostgresRegistry, Field(discriminator="type")]


# ------------------------------------------------------------------ offline store
class DeltaOfflineStore(_Model):
    """History in Delta Lake tables, one per feature view (default)."""

    type: Literal["delta"] = "delta"
    path: str = "data/offline"
    storage_options: dict[str, SecretStr] = Field(default_factory=dict)
    """Object-store options (S3 keys, endpoint, region) passed to delta-rs."""


class ParquetOfflineStore(_Model):
    """History in plain hive-partitioned Parquet folders, one per feature view."""

    type: Literal["parquet"] = "parquet"
    path: str = "data/offline"


OfflineStoreConfig = Annotated[DeltaOfflineStore | ParquetOfflineStore, Field(discriminator="type")]


# ------------------------------------------------------------------ online store
class SqliteOnlineStore(_Model):
    """Latest values in a local SQLite file (default)."""

    type: Literal["sqlite"] = "sqlite"
    path: str = "data/online.db"


class RedisOnlineStore(_Model):
    """Latest values in Redis hashes."""

    type: Literal["redis"] = "redis"
    url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    key_prefix: str | None = None
    """Prefix of every key (default: ``<project>:``)."""
    batch_size: int = 1_000
    """Entities written per pipeline round trip."""


OnlineStoreConfig = Annotated[SqliteOnlineStore | RedisOnlineStore, Field(discriminator="type")]


# ------------------------------------------------------------------ engine
class DuckDBEngine(_Model):
    """The embedded batch engine."""

    type: Literal["duckdb"] = "duckdb"
    memory_limit: str | None = None
    """DuckDB ``memory_limit`` (e.g. ``"2GB"``); larger work spills to ``temp_directory``."""
    threads: int | None = None
    temp_directory: str = ".headwater/tmp"


EngineConfig = Annotated[DuckDBEngine, Field(discriminator="type")]


# ------------------------------------------------------------------ project
class ProjectConfig(_Model):
    """The whole of ``headwater.yaml``."""

    project: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    """Project name; prefixes keys in shared stores."""
    registry: RegistryConfig = Field(default_factory=SqliteRegistry)
    offline_store: OfflineStoreConfig = Field(default_factory=DeltaOfflineStore)
    online_store: OnlineStoreConfig = Field(default_factory=SqliteOnlineStore)
    engine: EngineConfig = Field(default_factory=DuckDBEngine)
    connections: dict[str, Connection] = Field(default_factory=dict)
    root: Path = Field(default=Path("."), exclude=True)
    """The project folder (set by the loader, not read from YAML)."""

    def resolve(self, path: str) -> str:
        """An absolute path for a project-relative path; URLs (``s3://``) pass through."""
        if "://" in path:
            return path
        candidate = Path(path)
        return str(candidate if candidate.is_absolute() else (self.root / candidate).resolve())

    def connection(self, name: str, kind: str) -> Any:
        from headwater.errors import ConfigError

        conn = self.connections.get(name)
        if conn is None:
            known = ", ".join(sorted(self.connections)) or "none"
            raise ConfigError(
                f"connection {name!r} is not defined in headwater.yaml (defined: {known})",
                fix=f"add connections: {{{name}: {{type: {kind}, ...}}}}",
            )
        if conn.type != kind:
            raise ConfigError(
                f"connection {name!r} is of type {conn.type!r}, but a {kind} source uses it",
                fix=f"point the source at a connection of type {kind}",
            )
        return conn
