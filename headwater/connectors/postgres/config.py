"""``connections.<name>`` of ``type: postgres``: a PostgreSQL server."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from headwater.config.models import ConnectionConfig


class PostgresConnection(ConnectionConfig):
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
