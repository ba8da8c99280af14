"""Data-quality check declarations: the classes behind :mod:`headwater.checks`.

Users build checks with the functions of :mod:`headwater.checks` (``checks.not_null(...)``);
sources and views hold these objects, and :mod:`headwater.quality` evaluates them. Each check
knows its columns, its severity and ``mostly``, and validates them when it is built.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

from headwater.errors import DefinitionError

Severity = Literal["warn", "quarantine", "fail"]
SEVERITIES: tuple[str, ...] = ("warn", "quarantine", "fail")
SchemaMode = Literal["evolve", "freeze", "discard_row", "discard_column"]
SCHEMA_MODES: tuple[str, ...] = ("evolve", "freeze", "discard_row", "discard_column")

_TYPE_NAME = re.compile(
    r"^[A-Za-z][A-Za-z0-9_]*( [A-Za-z][A-Za-z0-9_]*)*(\(\s*\d+\s*(,\s*\d+\s*)?\))?(\[\])?$"
)
_TYPE_ALIASES = {
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int": "BIGINT",
    "int64": "BIGINT",
    "uint8": "UTINYINT",
    "uint16": "USMALLINT",
    "uint32": "UINTEGER",
    "uint64": "UBIGINT",
    "float32": "FLOAT",
    "float": "DOUBLE",
    "float64": "DOUBLE",
    "str": "VARCHAR",
    "string": "VARCHAR",
    "utf8": "VARCHAR",
    "large_string": "VARCHAR",
    "bool": "BOOLEAN",
    "date32": "DATE",
    "timestamptz": "TIMESTAMPTZ",
    "timestamp[us, utc]": "TIMESTAMPTZ",
    "binary": "BLOB",
    "bytes": "BLOB",
}

Value = int | float | Decimal | str | date | datetime | bool


@dataclass(frozen=True, kw_only=True)
class Check:
    """Base of every check: a name, a severity and, for row-level checks, ``mostly``.

    Attributes:
        name: unique among the checks of one source or view; names the check in results, in
            the quarantine table's ``_check`` column and in error messages.
        severity: ``"warn"``, ``"quarantine"`` or ``"fail"``.
        mostly: for row-level checks, the share of rows (0 < mostly <= 1) that must pass.
    """

    kind: ClassVar[str] = ""
    ROW_LEVEL: ClassVar[bool] = True
    """Whether the check judges each row (and can quarantine the offending ones)."""

    name: str
    severity: str = "fail"
    mostly: float | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns the check reads (checked to exist at ``apply``)."""
        return ()

    def describe(self) -> str:
        """What a passing row (or batch) satisfies, in words."""
        return self.kind

    def params(self) -> dict[str, Any]:
        """The check's own parameters, JSON-able (for registry specs)."""
        return {}

    def to_spec(self) -> dict[str, Any]:
        """A JSON-able description recorded with the definition."""
        spec: dict[str, Any] = {"kind": self.kind, "name": self.name, "severity": self.severity}
        if self.mostly is not None:
            spec["mostly"] = self.mostly
        spec.update({k: _jsonable(v) for k, v in self.params().items()})
        return spec

    def __post_init__(self) -> None:
        where = f"check {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise DefinitionError(f"a {self.kind} check needs a name", fix="pass name='...'")
        if self.severity not in SEVERITIES:
            raise DefinitionError(
                f"{where}: unknown severity {self.severity!r}",
                fix="use severity='warn', 'quarantine' or 'fail'",
            )
        mostly = self.mostly
        if mostly is not None:
            if isinstance(mostly, bool) or not isinstance(mostly, int | float):
                raise DefinitionError(
                    f"{where}: mostly={mostly!r} is not a number", fix="e.g. mostly=0.99"
                )
            if not 0 < mostly <= 1:  # also refuses NaN
                raise DefinitionError(
                    f"{where}: mostly={mostly!r} is outside (0, 1]",
                    fix="mostly is the share of rows that must pass, e.g. mostly=0.99",
                )
            if not self.ROW_LEVEL:
                raise DefinitionError(
                    f"{where}: mostly= applies to row-level checks; {self.kind} judges the "
                    "whole batch",
                    fix="drop mostly=",
                )
        if self.severity == "quarantine" and not self.ROW_LEVEL:
            raise DefinitionError(
                f"{where}: severity='quarantine' sets offending rows aside, but {self.kind} "
                "judges the whole batch",
                fix="use severity='warn' or 'fail'",
            )


@dataclass(frozen=True, kw_only=True)
class ColumnCheck(Check):
    """A row-level check on one column; null values are not checked (except by not_null)."""

    column: str

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def params(self) -> dict[str, Any]:
        return {"column": self.column}


@dataclass(frozen=True, kw_only=True)
class NotNull(ColumnCheck):
    kind: ClassVar[str] = "not_null"

    def describe(self) -> str:
        return f"{self.column} is not null"


@dataclass(frozen=True, kw_only=True)
class Unique(Check):
    """No two rows share the values of ``keys`` — in the batch and, with ``stored``, against
    the rows already stored (rows with a null key are not checked)."""

    kind: ClassVar[str] = "unique"
    keys: tuple[str, ...]
    stored: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        return self.keys

    def describe(self) -> str:
        return f"{', '.join(self.keys)} unique"

    def params(self) -> dict[str, Any]:
        return {"columns": list(self.keys), "stored": self.stored}


@dataclass(frozen=True, kw_only=True)
class Between(ColumnCheck):
    kind: ClassVar[str] = "between"
    min_value: Value | None = None
    max_value: Value | None = None

    def describe(self) -> str:
        low = "-inf" if self.min_value is None else str(self.min_value)
        high = "inf" if self.max_value is None else str(self.max_value)
        return f"{self.column} in [{low}, {high}]"

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "min": self.min_value, "max": self.max_value}


@dataclass(frozen=True, kw_only=True)
class InSet(ColumnCheck):
    kind: ClassVar[str] = "in_set"
    values: tuple[Value, ...]

    def describe(self) -> str:
        shown = ", ".join(repr(v) for v in self.values[:10])
        return f"{self.column} in {{{shown}{', ...' if len(self.values) > 10 else ''}}}"

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "values": list(self.values)}


@dataclass(frozen=True, kw_only=True)
class Matches(ColumnCheck):
    """The value (as text) contains a match of ``pattern`` (anchor it with ``^...$``)."""

    kind: ClassVar[str] = "matches"
    pattern: str

    def describe(self) -> str:
        return f"{self.column} matches {self.pattern!r}"

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "pattern": self.pattern}


@dataclass(frozen=True, kw_only=True)
class MaxLength(ColumnCheck):
    kind: ClassVar[str] = "max_length"
    length: int

    def describe(self) -> str:
        return f"length({self.column}) <= {self.length}"

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "length": self.length}


@dataclass(frozen=True, kw_only=True)
class ConformsTo(ColumnCheck):
    """The value can be read as ``type_name`` (a DuckDB type, e.g. ``DOUBLE``)."""

    kind: ClassVar[str] = "type"
    type_name: str

    def describe(self) -> str:
        return f"{self.column} is a valid {self.type_name}"

    def params(self) -> dict[str, Any]:
        return {"column": self.column, "type": self.type_name}


@dataclass(frozen=True, kw_only=True)
class Schema(Check):
    """The batch has these columns with these types (and, with ``exact``, no others)."""

    kind: ClassVar[str] = "schema"
    ROW_LEVEL: ClassVar[bool] = False
    types: tuple[tuple[str, str], ...]
    exact: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.types)

    def describe(self) -> str:
        return "columns " + ", ".join(f"{n} {t}" for n, t in self.types)

    def params(self) -> dict[str, Any]:
        return {"columns": dict(self.types), "exact": self.exact}


@dataclass(frozen=True, kw_only=True)
class RowCount(Check):
    kind: ClassVar[str] = "row_count"
    ROW_LEVEL: ClassVar[bool] = False
    min_rows: int | None = None
    max_rows: int | None = None

    def describe(self) -> str:
        low = "0" if self.min_rows is None else str(self.min_rows)
        high = "any" if self.max_rows is None else str(self.max_rows)
        return f"between {low} and {high} rows"

    def params(self) -> dict[str, Any]:
        return {"min": self.min_rows, "max": self.max_rows}


@dataclass(frozen=True, kw_only=True)
class Freshness(Check):
    """The newest event is at most ``max_age_ms`` old; ``column`` defaults to the event time
    (the source's ``timestamp_field``, or a view's ``event_timestamp``)."""

    kind: ClassVar[str] = "freshness"
    ROW_LEVEL: ClassVar[bool] = False
    max_age_ms: int
    column: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return () if self.column is None else (self.column,)

    def describe(self) -> str:
        from headwater.definitions.durations import format_millis

        return f"newest {self.column or 'event'} at most {format_millis(self.max_age_ms)} old"

    def params(self) -> dict[str, Any]:
        from headwater.definitions.durations import format_millis

        return {"max_age": format_millis(self.max_age_ms), "column": self.column}


@dataclass(frozen=True, kw_only=True)
class Expression(Check):
    """A SQL boolean over the row's columns; a row fails when it is false (null passes, as
    in a SQL ``CHECK`` constraint)."""

    kind: ClassVar[str] = "expression"
    sql: str

    def describe(self) -> str:
        return self.sql

    def params(self) -> dict[str, Any]:
        return {"sql": self.sql}


@dataclass(frozen=True, kw_only=True)
class Sql(Check):
    """A query over ``{rows}`` (the batch) that returns the offending rows."""

    kind: ClassVar[str] = "sql"
    query: str

    def describe(self) -> str:
        return f"no row returned by {self.query!r}"

    def params(self) -> dict[str, Any]:
        return {"query": self.query}


BatchFunction = Callable[[Any], Any]
"""``fn(batch: pyarrow.RecordBatch)`` returning one boolean per row (row-level: true passes)
or a single bool for the whole batch."""


@dataclass(frozen=True, kw_only=True)
class Python(Check):
    """A Python function over Arrow record batches (called once per batch, never per row)."""

    kind: ClassVar[str] = "python"
    function: BatchFunction = field(compare=False)
    only: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.only

    def describe(self) -> str:
        return f"{_qualname(self.function)}(batch) is true"

    def params(self) -> dict[str, Any]:
        return {"function": _qualname(self.function), "columns": list(self.only)}


def normalise_type(type_name: str, label: str) -> str:
    """An upper-case DuckDB type name for ``type_name`` (aliases like ``int64`` mapped)."""
    if not isinstance(type_name, str) or not _TYPE_NAME.match(type_name.strip()):
        raise DefinitionError(
            f"check {label!r}: {type_name!r} is not a type name",
            fix="use a DuckDB type such as BIGINT, DOUBLE, DECIMAL(12,2), DATE, TIMESTAMPTZ, "
            "VARCHAR",
        )
    text = type_name.strip()
    return _TYPE_ALIASES.get(text.lower(), text.upper())


def check_list(checks: object, owner: str) -> tuple[Check, ...]:
    """Validate the ``checks=`` of a source or view: a list of checks with distinct names."""
    if checks is None:
        return ()
    if isinstance(checks, Check):
        checks = [checks]
    if isinstance(checks, str | bytes) or not isinstance(checks, Sequence):
        raise DefinitionError(
            f"{owner}: checks must be a list of checks, not {builtins.type(checks).__name__}",
            fix='checks=[checks.not_null("user_id")]',
        )
    found: list[Check] = []
    for item in checks:
        if not isinstance(item, Check):
            raise DefinitionError(
                f"{owner}: {item!r} is not a check",
                fix="build checks with headwater.checks: not_null, unique, between, ...",
            )
        found.append(item)
    names = [c.name for c in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DefinitionError(
            f"{owner}: two checks are named {twice[0]!r}",
            fix="give one of them another name= (names are unique per source or view)",
        )
    return tuple(found)


def check_schema_mode(mode: object, owner: str) -> str:
    """Validate a source's ``schema_mode=``."""
    if mode not in SCHEMA_MODES:
        raise DefinitionError(
            f"{owner}: unknown schema_mode {mode!r}",
            fix="use 'evolve', 'freeze', 'discard_row' or 'discard_column'",
        )
    return str(mode)


def _qualname(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or ""
    qual = getattr(fn, "__qualname__", None) or builtins.type(fn).__name__
    return f"{module}.{qual}" if module else qual


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
