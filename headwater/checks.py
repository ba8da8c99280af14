"""Data-quality checks, declared on sources and feature views.

Example:
    >>> from headwater import checks
    >>> rules = [
    ...     checks.not_null("user_id", severity="quarantine"),
    ...     checks.between("amount", 0, 100_000, severity="quarantine"),
    ...     checks.in_set("status", ["new", "paid"], severity="warn", mostly=0.99),
    ... ]

Pass them as ``FileSource(..., checks=rules)`` (any source kind) or ``FeatureView(...,
checks=rules)``. Source checks run on the rows read, before the view computes; view checks run
on the computed rows, before they are written.

Every check has a ``severity``:

* ``"warn"`` — record the result and continue;
* ``"quarantine"`` — the offending rows go to the view's quarantine table, the rest continue
  (row-level checks only);
* ``"fail"`` (the default) — the run stops before anything is written, and says why.

``mostly=0.99`` turns a row-level check into a batch-level one, as Great Expectations' ``mostly``
does: the check passes when at least that share of the rows it applies to pass. When it passes,
the offending rows continue (they are still counted and sampled); when it fails, the severity
applies to them.

These objects are plain declarations; :mod:`headwater.quality` evaluates them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from headwater.definitions.checks import (
    SCHEMA_MODES,
    SEVERITIES,
    BatchFunction,
    Between,
    Check,
    ConformsTo,
    Expression,
    Freshness,
    InSet,
    Matches,
    MaxLength,
    NotNull,
    Python,
    RowCount,
    Schema,
    Severity,
    Sql,
    Unique,
    Value,
)
from headwater.definitions.durations import Duration, to_millis


def not_null(
    column: str,
    *,
    severity: Severity = "fail",
    mostly: float | None = None,
    name: str | None = None,
) -> NotNull:
    """Rows where ``column`` is null fail."""
    return NotNull(name=name or "", column=column, severity=severity, mostly=mostly)


def unique(
    *columns: str,
    stored: bool = True,
    severity: Severity = "fail",
    mostly: float | None = None,
    name: str | None = None,
) -> Unique:
    """Rows sharing the values of ``columns`` fail — every copy, in the batch; and, when
    ``stored``, a row whose values are already stored under another row key (a rerun that
    rewrites the same rows is not a duplicate). Rows with a null in ``columns`` are not
    checked. ``unique("a", "b")`` and ``unique(["a", "b"])`` are the same check."""
    keys: tuple[str, ...] = columns
    if len(columns) == 1 and isinstance(columns[0], list | tuple):
        keys = tuple(columns[0])
    return Unique(name=name or "", keys=keys, stored=stored, severity=severity, mostly=mostly)


def between(
    column: str,
    min_value: Value | None = None,
    max_value: Value | None = None,
    *,
    severity: Severity = "fail",
    mostly: float | None = None,
    name: str | None = None,
) -> Between:
    """Values outside ``[min_value, max_value]`` (inclusive; either bound may be None) fail."""
    return Between(
        name=name or "",
        column=column,
        min_value=min_value,
        max_value=max_value,
        severity=severity,
        mostly=mostly,
    )


def in_set(
    column: str,
    values: Sequence[Value],
    *,
    severity: Severity = "fail",
    mostly: float | None = None,
    name: str | None = None,
) -> InSet:
    """Values not in ``values`` fail."""
    return InSet(name=name or "", column=column, values=values, severity=severity, mostly=mostly)


def matches(
    column: str,
    pattern: str,
    *,
    severity: Severity = "fail",
    mostly: float | None = None,
    name: str | None = None,
) -> Matches:
    """Values (as text) in which ``pattern`` finds no match fail (anchor with ``^...$`` to
    match the whole value). The pattern is RE2 syntax, as DuckDB's ``regexp_matches``."""
    return Matches(
        name=name or "", column=column, pattern=pattern, severity=severity, mostly=mostly
    )


def max_length(
    column: str,
    length: int,
    *,
    severity: Severity = "fail",
    mostly: float | None = None,
    name: str | None = None,
) -> MaxLength:
    """Values longer than ``length`` (characters; list elements; bytes for blobs) fail."""
    return MaxLength(
        name=name or "", column=column, length=length, severity=severity, mostly=mostly
    )


def type_(
    column: str,
    type_name: str,
    *,
    severity: Severity = "fail",
    mostly: float | None = None,
    name: str | None = None,
) -> ConformsTo:
    """Values that cannot be read as ``type_name`` fail (e.g. text ``"12.x"`` for ``DOUBLE``).

    ``type_name`` is a DuckDB type (``BIGINT``, ``DOUBLE``, ``DECIMAL(12,2)``, ``DATE``,
    ``TIMESTAMPTZ``, ``VARCHAR``...) or an Arrow or Python alias (``int64``, ``float64``,
    ``string``; the table is :data:`headwater.definitions.types.TYPE_ALIASES`, shared with
    ``transforms.cast``). Spelled ``checks.type`` in definitions.
    """
    return ConformsTo(
        name=name or "", column=column, type_name=type_name, severity=severity, mostly=mostly
    )


def schema(
    columns: Mapping[str, str],
    *,
    exact: bool = False,
    severity: Literal["warn", "fail"] = "fail",
    name: str = "schema",
) -> Schema:
    """The batch has ``columns`` with exactly these types (DuckDB types or aliases, as for
    :func:`type_`); with ``exact``, no other columns."""
    types = tuple(columns.items()) if isinstance(columns, Mapping) else ()
    return Schema(name=name, types=types, exact=exact, severity=severity)


def row_count(
    min: int | None = None,  # the spelling, row_count(min=..., max=...)
    max: int | None = None,
    *,
    severity: Literal["warn", "fail"] = "fail",
    name: str = "row_count",
) -> RowCount:
    """The batch (the rows one run reads, or one view computes) has between min and max rows."""
    return RowCount(name=name, min_rows=min, max_rows=max, severity=severity)


def freshness(
    max_age: Duration,
    *,
    column: str | None = None,
    severity: Literal["warn", "fail"] = "fail",
    name: str = "freshness",
) -> Freshness:
    """The newest value of ``column`` (default: the event time) is at most ``max_age`` old
    when the check runs. A batch without any value fails."""
    millis = to_millis(max_age, what=f"check {name!r}: max_age")
    return Freshness(name=name, max_age_ms=millis, column=column, severity=severity)


def expression(
    sql: str,
    *,
    severity: Severity = "fail",
    mostly: float | None = None,
    name: str | None = None,
) -> Expression:
    """Rows for which the SQL boolean ``sql`` (DuckDB, over the row's columns) is false fail."""
    return Expression(name=name or "", sql=sql, severity=severity, mostly=mostly)


def sql(
    query: str,
    *,
    name: str,
    severity: Severity = "fail",
    mostly: float | None = None,
) -> Sql:
    """Rows returned by ``query`` — a SELECT over ``{rows}``, the batch — fail.

    The offending rows are matched back to the batch by the query's columns that are columns
    of the batch (``SELECT * FROM {rows} WHERE ...`` matches exactly the rows it returns;
    ``SELECT user_id FROM {rows} GROUP BY user_id HAVING count(*) > 100`` matches every row of
    those users).
    """
    return Sql(name=name, query=query, severity=severity, mostly=mostly)


def python(
    function: BatchFunction | None = None,
    *,
    columns: Sequence[str] | None = None,
    severity: Severity = "fail",
    mostly: float | None = None,
    name: str | None = None,
) -> Any:
    """A check written in Python over Arrow record batches.

    ``function(batch)`` gets a ``pyarrow.RecordBatch`` (of ``columns``, or every column) and
    returns either one boolean per row — true passes; vectorise with ``pyarrow.compute`` — or a
    single bool for the whole batch. Use it plain, ``checks.python(fn, severity="warn")``, or as
    a decorator, ``@checks.python(severity="warn")``.
    """

    def build(fn: BatchFunction) -> Python:
        only = None if columns is None else tuple(columns)
        return Python(name=name or "", function=fn, only=only, severity=severity, mostly=mostly)

    if function is None:
        return build
    return build(function)


# ``checks.type(...)``: the spelling. It shadows the builtin in this module: nothing here
# calls ``type()``.
type = type_


__all__ = [
    "SCHEMA_MODES",
    "SEVERITIES",
    "Between",
    "Check",
    "ConformsTo",
    "Expression",
    "Freshness",
    "InSet",
    "Matches",
    "MaxLength",
    "NotNull",
    "Python",
    "RowCount",
    "Schema",
    "Severity",
    "Sql",
    "Unique",
    "between",
    "expression",
    "freshness",
    "in_set",
    "matches",
    "max_length",
    "not_null",
    "python",
    "row_count",
    "schema",
    "sql",
    "type",
    "unique",
]
