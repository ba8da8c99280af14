"""Sources: where raw records come from.

A source names its event-time column (``timestamp_field``) and optionally a
``created_timestamp_field`` (when the row was written, used to break ties), a ``primary_key``
and, for incremental loads, a ``cursor_field``. Sources are plain declarations: reading them is
the job of :mod:`headwater.connectors`.

Every kind is a frozen keyword-only dataclass (its ``name`` also positional) that checks and
normalises its fields in ``__post_init__``. Database tables (PostgreSQL, SQLite) are in
:mod:`headwater.definitions.tables`, Kafka and Redshift sources in
:mod:`headwater.definitions.kafka` and :mod:`headwater.definitions.redshift`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from headwater.definitions.checks import Check, check_list, check_schema_mode
from headwater.definitions.naming import check_name
from headwater.definitions.specs import jsonable
from headwater.errors import DefinitionError


@dataclass(frozen=True, kw_only=True)
class Source:
    """Base of all source kinds.

    Args:
        name: unique source name.
        timestamp_field: the event-time column.
        created_timestamp_field: optional column telling when a row was written.
        primary_key: the key columns (a lone column name is accepted).
        description: free text shown in the registry and dashboard.
        checks: data-quality checks run on the rows read (:mod:`headwater.checks`).
        schema_mode: what a run does when the source's columns differ from those recorded at
            ``apply``: ``"evolve"`` (default), ``"freeze"``, ``"discard_row"`` or
            ``"discard_column"`` (see docs/quality.md).
    """

    kind: ClassVar[str] = ""
    name: str = field(kw_only=False)
    timestamp_field: str
    created_timestamp_field: str | None = None
    primary_key: list[str] | str = field(default_factory=list)
    description: str = ""
    checks: Sequence[Check] = ()
    schema_mode: str = "evolve"

    def __post_init__(self) -> None:
        check_name(self.name, "source")
        owner = f"{self.kind or 'source'} source {self.name!r}"
        object.__setattr__(self, "checks", check_list(self.checks, owner))
        object.__setattr__(self, "schema_mode", check_schema_mode(self.schema_mode, owner))
        if not self.timestamp_field:
            raise DefinitionError(
                f"source {self.name!r} has no timestamp_field",
                fix="name the event-time column, e.g. timestamp_field='event_timestamp'",
            )
        key: Any = self.primary_key
        object.__setattr__(self, "primary_key", [key] if isinstance(key, str) else list(key or []))

    @property
    def where(self) -> str:
        """How errors name the source: ``postgres source 'orders'``."""
        return f"{self.kind} source {self.name!r}"

    @property
    def incremental(self) -> bool:
        """True when the source is read incrementally by a cursor."""
        return False

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description (parameter values such as dates become strings)."""
        spec: dict[str, Any] = {"kind": self.kind}
        for key, value in self.__dict__.items():
            if (key, value) in (("checks", ()), ("schema_mode", "evolve"), ("columns", {})):
                continue  # defaults stay out, so specs of sources without checks do not change
            if key == "checks":
                spec[key] = [c.to_spec() for c in value]
            else:
                spec[key] = jsonable(value, iso_dates=False)
        return spec

    def __hash__(self) -> int:
        return hash((self.kind, self.name))


_FORMATS = ("csv", "json", "parquet")
_TYPE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_ ]*(\([0-9, ]+\))?")


@dataclass(frozen=True, kw_only=True)
class FileSource(Source):
    """Files in a data lake: CSV, JSON (newline-delimited or arrays) or Parquet.

    Args:
        name: unique source name.
        path: a file, a glob (``data/clicks/*.parquet``) or a folder of hive partitions
            (``data/clicks/``, with ``date=2024-01-01/`` sub-folders). Relative paths are read
            from the project folder.
        timestamp_field: the event-time column.
        created_timestamp_field: optional column telling when a row was written.
        format: ``csv``, ``json`` or ``parquet``; guessed from the path's extension when omitted.
        hive_partitioning: read ``key=value`` folder names as columns (default: on for folders
            and globs that cross such folders).
        options: extra reader options (for CSV: ``delim``, ``header``, ``quote``,
            ``null_padding``, ...).
        columns: column types to read every file as, ``{"amount": "DOUBLE"}`` (DuckDB type
            names): each file's column is cast to it, for files that disagree on a column's
            type and CSV files that have a header and no rows.
        primary_key: optional key columns.
        description, checks, schema_mode: as for every source (:class:`Source`).
    """

    kind: ClassVar[str] = "file"
    __hash__ = Source.__hash__  # by kind and name: a list field is not hashable
    path: str
    format: str | None = None
    hive_partitioning: bool | None = None
    options: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "options", dict(self.options or {}))
        object.__setattr__(self, "columns", dict(self.columns or {}))
        for column, type_name in self.columns.items():
            if not isinstance(type_name, str) or not _TYPE_NAME.fullmatch(type_name):
                raise DefinitionError(
                    f"file source {self.name!r}: columns[{column!r}] = {type_name!r} is not a "
                    "type name",
                    fix="use a DuckDB type such as 'DOUBLE', 'BIGINT', 'VARCHAR', 'TIMESTAMP'",
                )
        if not self.path:
            raise DefinitionError(
                f"file source {self.name!r} has no path", fix="path='data/x/*.parquet'"
            )
        fmt = self.format or _guess_format(self.path)
        if fmt not in _FORMATS:
            raise DefinitionError(
                f"file source {self.name!r}: cannot tell the format of {self.path!r}",
                fix=f"pass format= one of {', '.join(_FORMATS)}",
            )
        object.__setattr__(self, "format", fmt)


def _guess_format(path: str) -> str | None:
    lowered = path.lower().rstrip("/")
    for suffix, fmt in (
        (".parquet", "parquet"),
        (".pq", "parquet"),
        (".csv", "csv"),
        (".tsv", "csv"),
        (".json", "json"),
        (".jsonl", "json"),
        (".ndjson", "json"),
        (".csv.gz", "csv"),
        (".json.gz", "json"),
    ):
        if lowered.endswith(suffix):
            return fmt
    return None
