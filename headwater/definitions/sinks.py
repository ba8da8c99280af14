"""Warehouse sinks: where a feature view's rows are loaded for analysts, besides the offline store.

A sink is a plain declaration attached to a view (``FeatureView(..., sinks=[...])``); loading it
is the job of :mod:`headwater.connectors.sinks`. After each run the rows the offline store
received since the sink's last load are sent to the warehouse table in one transaction:

* ``upsert`` — insert or update by (join keys, ``event_timestamp``); reruns are idempotent;
* ``append`` — insert every changed row (a log of versions);
* ``replace`` — empty the table and load the view's whole history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from headwater.errors import DefinitionError

SinkMode = Literal["upsert", "append", "replace"]
MODES: tuple[str, ...] = ("upsert", "append", "replace")

_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_S3_PREFIX = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*()/=+-]*)?$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")


@dataclass(frozen=True, kw_only=True)
class Sink:
    """Base of the warehouse sink kinds.

    Args:
        connection: the name of a connection in ``headwater.yaml``.
        table: the target table, ``table`` or ``schema.table``.
        mode: ``"upsert"`` (default), ``"append"`` or ``"replace"``.
        create: create the table (and its schema) from the rows' Arrow schema when missing.
        evolve: add columns the table lacks with ``ALTER TABLE ... ADD COLUMN``; when false a
            missing column fails the run and names the columns.
    """

    kind: ClassVar[str] = ""
    max_identifier: ClassVar[int] = 127
    connection: str
    table: str
    mode: SinkMode = "upsert"
    create: bool = True
    evolve: bool = True

    def __post_init__(self) -> None:
        what = f"{self.kind} sink"
        if not isinstance(self.connection, str) or not _PART.match(self.connection):
            raise DefinitionError(
                f"{what} to {self.table!r}: connection {self.connection!r} is not a valid name",
                fix="name a connection of headwater.yaml, e.g. connection='warehouse'",
            )
        parts = self.table.split(".") if isinstance(self.table, str) else []
        if not 1 <= len(parts) <= 2 or not all(
            _PART.match(p) and len(p) <= self.max_identifier for p in parts
        ):
            raise DefinitionError(
                f"{what} table {self.table!r} is not a valid table name",
                fix="write 'table' or 'schema.table' with letters, digits and underscores "
                "(starting with a letter), e.g. table='analytics.user_orders_daily'",
            )
        if self.mode not in MODES:
            raise DefinitionError(
                f"{what} to {self.table!r}: mode {self.mode!r} is not valid",
                fix="use mode='upsert', 'append' or 'replace'",
            )
        for flag in ("create", "evolve"):
            if not isinstance(getattr(self, flag), bool):
                raise DefinitionError(
                    f"{what} to {self.table!r}: {flag} must be True or False",
                    fix=f"{flag}=True",
                )

    @property
    def schema_name(self) -> str | None:
        """The schema part of ``table`` (``None`` means the connection's search path)."""
        return self.table.split(".")[0] if "." in self.table else None

    @property
    def table_name(self) -> str:
        """The table part of ``table``."""
        return self.table.rsplit(".", 1)[-1]

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description used for registry versions and diffs."""
        spec: dict[str, Any] = {"kind": self.kind}
        spec.update(self.__dict__)
        return spec


@dataclass(frozen=True, kw_only=True)
class PostgresSink(Sink):
    """Load a view's rows into a PostgreSQL table (bulk binary ``COPY`` into a staging table).

    Args:
        connection: the name of a ``type: postgres`` connection in ``headwater.yaml``.
        table: the target table, ``table`` or ``schema.table``.
        mode: ``"upsert"`` (default; needs a primary key or unique index on the join keys and
            ``event_timestamp``, created with the table), ``"append"`` or ``"replace"``.
        create: create the table from the rows' Arrow schema when missing.
        evolve: add missing columns with ``ALTER TABLE ... ADD COLUMN``.
    """

    kind: ClassVar[str] = "postgres"
    max_identifier: ClassVar[int] = 63


@dataclass(frozen=True, kw_only=True)
class RedshiftSink(Sink):
    """Load a view's rows into Amazon Redshift through Parquet files staged on S3.

    Args:
        connection: the name of a ``type: redshift`` connection in ``headwater.yaml``.
        table: the target table, ``table`` or ``schema.table``.
        mode: ``"upsert"`` (default; ``MERGE`` on the join keys and ``event_timestamp``),
            ``"append"`` or ``"replace"`` (``DELETE`` + ``INSERT`` in one transaction).
        s3_staging: ``s3://bucket/prefix/`` where the Parquet parts are written (and deleted
            after the load).
        iam_role: the ARN of the IAM role Redshift assumes to read ``s3_staging``.
        create: create the table from the rows' Arrow schema when missing.
        evolve: add missing columns with ``ALTER TABLE ... ADD COLUMN``.
    """

    kind: ClassVar[str] = "redshift"
    s3_staging: str
    iam_role: str

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.s3_staging, str) or not _S3_PREFIX.match(self.s3_staging):
            raise DefinitionError(
                f"redshift sink to {self.table!r}: s3_staging {self.s3_staging!r} is not an "
                "S3 prefix",
                fix="s3_staging='s3://my-bucket/headwater/staging/' (lower-case bucket; no "
                "quotes, spaces or backslashes)",
            )
        if not isinstance(self.iam_role, str) or not _ROLE_ARN.match(self.iam_role):
            raise DefinitionError(
                f"redshift sink to {self.table!r}: iam_role {self.iam_role!r} is not an IAM "
                "role ARN",
                fix="iam_role='arn:aws:iam::123456789012:role/redshift-copy'",
            )
        if not self.s3_staging.endswith("/"):
            object.__setattr__(self, "s3_staging", self.s3_staging + "/")
