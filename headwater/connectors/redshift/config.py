"""``connections.<name>`` of ``type: redshift``: an Amazon Redshift cluster."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from headwater.config.models import ConnectionConfig


class RedshiftConnection(ConnectionConfig):
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
