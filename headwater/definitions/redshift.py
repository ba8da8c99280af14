"""Amazon Redshift sources: a table or query, read over the PostgreSQL protocol or by UNLOAD.

Small and medium reads go through the PostgreSQL wire protocol, exactly like
:class:`~headwater.definitions.PostgresSource`. Large reads can instead ask Redshift to
``UNLOAD`` the rows as Parquet files to S3 (every slice writes in parallel) and read the files
back; ``unload=`` switches a source to that mode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from headwater.definitions.tables import TableSource
from headwater.errors import DefinitionError

UNLOAD_KEYS: dict[str, bool] = {
    "s3_path": True,
    "iam_role": True,
    "region": False,
    "endpoint_url": False,
}
"""Keys of ``unload=`` and whether each is required."""

_S3_PATH = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^'\\\x00-\x1f]*)?$")
_ROLE_ARN = re.compile(r"^arn:aws(-[a-z]+)*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
_ENDPOINT = re.compile(r"^https?://[^\s'\\]+$")
_EXAMPLE = {"s3_path": "s3://bucket/prefix/", "iam_role": "arn:aws:iam::123456789012:role/unload"}


@dataclass(frozen=True, kw_only=True)
class RedshiftSource(TableSource):
    """An Amazon Redshift table or query.

    Args:
        name: unique source name.
        connection: the name of a ``type: redshift`` connection in ``headwater.yaml``.
        table: ``schema.table`` to read (or give ``query``).
        query: a SELECT to read instead of a table; parameters go in ``params``.
        params: values for ``%(name)s`` placeholders of ``query``: bound by the driver over the
            PostgreSQL protocol, rendered as escaped SQL literals in UNLOAD mode.
        timestamp_field: the event-time column.
        created_timestamp_field: optional column telling when a row was written.
        cursor_field: when set, each run reads only rows with ``cursor >= last high-water mark``
            (the boundary is re-read and de-duplicated by ``primary_key``).
        primary_key: the key columns; required with ``cursor_field``.
        batch_size: rows per Arrow record batch while streaming.
        unload: read through ``UNLOAD ... FORMAT AS PARQUET`` instead of the protocol:
            ``{"s3_path": "s3://bucket/prefix/", "iam_role": "arn:aws:iam::<account>:role/<r>"}``
            plus optional ``region`` (the bucket's region) and ``endpoint_url`` (an
            S3-compatible endpoint for reading the files back).
        description, checks, schema_mode: as for every source (:class:`Source`).

    ``lag=`` and ``end_value=`` of the other table sources are not supported here yet (the
    UNLOAD read has no bounds but the mark).
    """

    kind: ClassVar[str] = "redshift"
    __hash__ = TableSource.__hash__  # by kind and name: a list field is not hashable
    connection: str
    unload: dict[str, str] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for option in ("lag", "end_value"):
            if getattr(self, option) is not None:
                raise DefinitionError(
                    f"{self.where}: {option}= is not supported for Redshift sources",
                    fix=f"drop {option}= (PostgreSQL and SQLite sources take it)",
                )
        if self.unload is not None:
            object.__setattr__(self, "unload", check_unload(self.name, self.unload))
        if not self.connection:
            raise DefinitionError(
                f"redshift source {self.name!r} has no connection",
                fix="connection='warehouse' (a type: redshift connection in headwater.yaml)",
            )


def check_unload(source: str, unload: Any) -> dict[str, str]:
    """Validate ``unload=`` and return it normalised (``s3_path`` ends with ``/``).

    Raises:
        DefinitionError: a key is missing or unknown, or a value has the wrong shape.
    """
    where = f"redshift source {source!r}: unload"
    if not isinstance(unload, dict):
        raise DefinitionError(f"{where} must be a dict", fix=f"unload={_EXAMPLE!r}")
    unknown = sorted(set(unload) - set(UNLOAD_KEYS))
    if unknown:
        raise DefinitionError(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}",
            fix=f"use only {', '.join(UNLOAD_KEYS)}",
        )
    missing = [key for key, required in UNLOAD_KEYS.items() if required and key not in unload]
    if missing:
        raise DefinitionError(f"{where} needs {' and '.join(missing)}", fix=f"unload={_EXAMPLE!r}")
    for key, value in unload.items():
        if not isinstance(value, str):
            raise DefinitionError(f"{where}[{key!r}] must be a string, not {value!r}")
    s3_path = unload["s3_path"]
    if not _S3_PATH.match(s3_path):
        raise DefinitionError(
            f"{where}['s3_path'] = {s3_path!r} is not an S3 folder URL",
            fix="s3://<bucket>/<prefix>/ (bucket in lower case; no quotes or backslashes)",
        )
    for role in unload["iam_role"].split(","):
        if not _ROLE_ARN.match(role):
            raise DefinitionError(
                f"{where}['iam_role'] = {unload['iam_role']!r} is not an IAM role ARN",
                fix="arn:aws:iam::<12-digit account id>:role/<role name> (comma-separated to "
                "chain roles); the role must be attached to the cluster",
            )
    region = unload.get("region")
    if region is not None and not _REGION.match(region):
        raise DefinitionError(
            f"{where}['region'] = {region!r} is not an AWS region", fix="e.g. region='us-east-1'"
        )
    endpoint = unload.get("endpoint_url")
    if endpoint is not None and not _ENDPOINT.match(endpoint):
        raise DefinitionError(
            f"{where}['endpoint_url'] = {endpoint!r} is not an http(s) URL",
            fix="e.g. endpoint_url='https://s3.eu-west-1.amazonaws.com'",
        )
    normalised = dict(unload)
    normalised["s3_path"] = s3_path if s3_path.endswith("/") else s3_path + "/"
    return normalised
