"""The shape of ``headwater.yaml``: one pydantic model per connection and store kind.

Each model has a ``type`` discriminator and forbids unknown keys. Secrets (DSNs, URLs with
passwords) are :class:`pydantic.SecretStr` so they never print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


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
    pool_min_size: Annotated[int, Field(ge=0)] = 0
    """psycopg connections (describing reads, partition bounds, the PostgreSQL sink) the
    process keeps open even when idle; 0 opens them on first use and closes them after 10
    idle minutes."""
    pool_max_size: Annotated[int, Field(ge=1)] = 4
    """At most this many psycopg connections are open at once (a further request waits up to
    ``pool_timeout_s``), and at most this many idle reader connections are kept for the next
    read; a partitioned read keeps as many as it reads ranges at once (up to 4)."""
    pool_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    """Seconds a request waits for a free pooled connection before the run fails."""

    @model_validator(mode="after")
    def _pool_sizes(self) -> PostgresConnection:
        if self.pool_max_size < self.pool_min_size:
            raise ValueError(
                f"pool_max_size ({self.pool_max_size}) must be at least pool_min_size "
                f"({self.pool_min_size}): raise pool_max_size or lower pool_min_size"
            )
        return self


class KafkaConnection(_Model):
    """An Apache Kafka cluster (Kafka sources, dead-letter topics, the streaming engine)."""

    type: Literal["kafka"] = "kafka"
    bootstrap_servers: str
    """``host:port[,host:port...]``: the brokers a client contacts first."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How clients talk to the brokers: in clear, over TLS, with SASL, or SASL over TLS."""
    sasl_mechanism: str | None = None
    """SASL mechanism (``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``, ``OAUTHBEARER``, ...)."""
    sasl_username: str | None = None
    """SASL user name."""
    sasl_password: SecretStr | None = None
    """SASL password (take it from the environment: ``${KAFKA_PASSWORD}``)."""
    ssl_ca_location: str | None = None
    """PEM file of the certificate authorities that signed the brokers' certificates (relative
    paths are read from the project folder); also used to check the schema registry."""
    ssl_certificate_location: str | None = None
    """PEM file of this client's certificate, for brokers that require client authentication."""
    ssl_key_location: str | None = None
    """PEM file of this client's private key."""
    ssl_key_password: SecretStr | None = None
    """Password of the private key, if it is encrypted."""
    schema_registry_url: SecretStr | None = None
    """Confluent-compatible schema registry that resolves the schema ids of Avro messages in
    the Confluent wire format, e.g. ``https://user:password@registry:8081``."""
    settings: dict[str, SecretStr] = Field(default_factory=dict)
    """Any librdkafka setting (``client.id``, ``session.timeout.ms``, ...), passed through and
    taking precedence over headwater's defaults; kept secret because some hold credentials."""

    @field_validator("settings", mode="before")
    @classmethod
    def _settings_as_text(cls, value: Any) -> Any:
        # YAML reads ``session.timeout.ms: 6000`` as a number; librdkafka takes text.
        if not isinstance(value, dict):
            return value
        return {key: _setting_text(item) for key, item in value.items()}


def _setting_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


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
    """Entities read per pipeline round trip (writes send all their calls, then read)."""


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
