"""Temporary Redshift credentials from the AWS API (``redshift:GetClusterCredentials``).

Shared by the Redshift source and sink: with ``iam: true`` a connection asks AWS for a
15-minute database password for its ``user`` on ``cluster_identifier`` each time it connects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headwater.errors import ConfigError, ConnectionFailed, MissingDependency

if TYPE_CHECKING:
    from headwater.connectors.redshift.config import RedshiftConnection


def credentials_request(config: RedshiftConnection) -> dict[str, Any]:
    """The ``GetClusterCredentials`` arguments for ``config``.

    Raises:
        ConfigError: the connection lacks ``cluster_identifier`` or ``user``.
    """
    if not config.cluster_identifier or not config.user:
        raise ConfigError(
            "a redshift connection with iam: true needs cluster_identifier and user",
            fix="add cluster_identifier: <cluster> and user: <database user> (and region:) "
            "to the connection",
        )
    return {
        "DbUser": config.user,
        "DbName": config.database,
        "ClusterIdentifier": config.cluster_identifier,
        "DurationSeconds": 900,
        "AutoCreate": False,
    }


def boto3_module() -> Any:
    """boto3, or :class:`MissingDependency` naming the extra."""
    try:
        import boto3  # type: ignore[import-untyped]  # boto3 ships no type information
    except ImportError as exc:
        raise MissingDependency("boto3", "redshift") from exc
    return boto3


def cluster_credentials(
    config: RedshiftConnection, *, client: Any = None, name: str | None = None
) -> tuple[str, str]:
    """Temporary ``(user, password)`` for ``config.user``.

    Args:
        config: the redshift connection.
        client: a boto3 Redshift client (default: one for ``config.region``).
        name: the connection's name, for messages.

    Raises:
        ConfigError: the connection lacks ``cluster_identifier`` or ``user``.
        ConnectionFailed: AWS refused the request or could not be reached.
    """
    request = credentials_request(config)
    if client is None:
        client = boto3_module().client("redshift", region_name=config.region)
    try:
        response = client.get_cluster_credentials(**request)
    except Exception as exc:  # botocore's ClientError / BotoCoreError and their kin
        where = f"connection {name!r}: " if name else ""
        raise ConnectionFailed(
            f"{where}cannot get temporary Redshift credentials for user {config.user!r} on "
            f"cluster {config.cluster_identifier!r}: {exc}",
            fix="check region and cluster_identifier, and that your AWS identity may call "
            "redshift:GetClusterCredentials",
        ) from None
    return str(response["DbUser"]), str(response["DbPassword"])
