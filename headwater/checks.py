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

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

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
    normalise_type,
)
from headwater.errors import DefinitionError

if TYPE_CHECKING:
    from headwater.definitions.durations import Duration


def not_null(
    column: str,
    *,
    severity: Severity = "fail",
    mostly: float | None = None,
    name: str | None = None,
) -> NotNull:
    """Rows where ``column`` is null fail."""
    column = _column(column, "not_null")
    return NotNull(
        name=name or f"not_null({column})", column=column, severity=severity, mostly=mostly
    )


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
    checked."""
    keys = _columns(columns, "unique")
    return Unique(
        name=name or f"unique({','.join(keys)})",
        keys=keys,
        stored=bool(stored),
        severity=severity,
        mostly=mostly,
    )


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
    column = _column(column, "between")
    where = f"check {name or f'between({column})'!r}"
    if min_value is None and max_value is None:
        raise DefinitionError(f"{where}: give min_value, max_value or both", fix="between(c, 0)")
    for bound in (min_value, max_value):
        if bound is not None and not isinstance(bound, Value):
            raise DefinitionError(
                f"{where}: bound {bound!r} is not a number, text, date or datetime",
                fix="e.g. between('amount', 0, 100_000)",
            )
    if min_value is not None and max_value is not None:
        try:
            ordered = min_value <= max_value  # type: ignore[operator]  # mixed types raise below
        except TypeError:
            ordered = False
        if not ordered:
            raise DefinitionError(
                f"{where}: min_value {min_value!r} is not <= max_value {max_value!r}",
                fix="pass the lower bound first",
            )
    return Between(
        name=name or f"between({column})",
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
    column = _column(column, "in_set")
    label = name or f"in_set({column})"
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | set | frozenset):
        raise DefinitionError(
            f"check {label!r}: values must be a list, not {values!r}",
            fix='e.g. in_set("status", ["new", "paid"])',
        )
    items = tuple(values)
    if not items:
        raise DefinitionError(f"check {label!r}: the set of values is empty", fix="list them")
    for item in items:
        if not isinstance(item, Value):
            raise DefinitionError(
                f"check {label!r}: {item!r} is not a number, text, date or datetime",
                fix="list plain values",
            )
    return InSet(name=label, column=column, values=items, severity=severity, mostly=mostly)


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
    column = _column(column, "matches")
    label = name or f"matches({column})"
    if not isinstance(pattern, str) or not pattern:
        raise DefinitionError(
            f"check {label!r}: pattern must be a non-empty string", fix=r"e.g. r'^\d+$'"
        )
    try:
        re.compile(pattern)
    except re.error as exc:
        raise DefinitionError(
            f"check {label!r}: the regular expression {pattern!r} does not compile: {exc}",
            fix="fix the pattern (RE2 syntax; escape backslashes or use a raw string r'...')",
        ) from None
    return Matches(name=label, column=column, pattern=pattern, severity=severity, mostly=mostly)


def max_length(
    column: str,
    length: int,
    *,
    severity: Severity = "fail",
    mostly: float | None = None,
    name: str | None = None,
) -> MaxLength:
    """Values longer than ``length`` (characters; list elements; bytes for blobs) fail."""
    column = _column(column, "max_length")
    label = name or f"max_length({column})"
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise DefinitionError(
            f"check {label!r}: length={length!r} is not a non-negative int", fix="e.g. 64"
        )
    return MaxLength(name=label, column=column, length=length, severity=severity, mostly=mostly)


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
    ``TIMESTAMPTZ``, ``VARCHAR``...) or an Arrow-style alias (``int64``, ``float64``,
    ``string``). Spelled ``checks.type`` in definitions.
    """
    column = _column(column, "type")
    label = name or f"type({column})"
    return ConformsTo(
        name=label,
        column=column,
        type_name=normalise_type(type_name, label),
        severity=severity,
        mostly=mostly,
    )


def schema(
    columns: Mapping[str, str],
    *,
    exact: bool = False,
    severity: Literal["warn", "fail"] = "fail",
    name: str = "schema",
) -> Schema:
    """The batch has ``columns`` with exactly these types; with ``exact``, no other columns."""
    if not isinstance(columns, Mapping) or not columns:
        raise DefinitionError(
            f"check {name!r}: columns must be a non-empty mapping name -> type",
            fix='e.g. checks.schema({"user_id": "BIGINT", "amount": "DOUBLE"})',
        )
    types = tuple(
        (_column(column, "schema"), normalise_type(kind, name)) for column, kind in columns.items()
    )
    return Schema(name=name, types=types, exact=bool(exact), severity=severity)


def row_count(
    min: int | None = None,  # the spelling, row_count(min=..., max=...)
    max: int | None = None,
    *,
    severity: Literal["warn", "fail"] = "fail",
    name: str = "row_count",
) -> RowCount:
    """The batch (the rows one run reads, or one view computes) has between min and max rows."""
    for bound in (min, max):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
            raise DefinitionError(f"check {name!r}: {bound!r} is not a row count", fix="min=1")
        if bound is not None and bound < 0:
            raise DefinitionError(f"check {name!r}: {bound!r} is negative", fix="min=1")
    if min is None and max is None:
        raise DefinitionError(f"check {name!r}: give min, max or both", fix="row_count(min=1)")
    if min is not None and max is not None and min > max:
        raise DefinitionError(
            f"check {name!r}: min {min} is above max {max}", fix="pass the smaller bound as min"
        )
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
    from headwater.definitions.durations import to_millis

    millis = to_millis(max_age, what=f"check {name!r}: max_age")
    return Freshness(
        name=name,
        max_age_ms=millis,
        column=None if column is None else _column(column, "freshness"),
        severity=severity,
    )


def expression(
    sql: str,
    *,
    severity: Severity = "fail",
    mostly: float | None = None,
    name: str | None = None,
) -> Expression:
    """Rows for which the SQL boolean ``sql`` (DuckDB, over the row's columns) is false fail."""
    if not isinstance(sql, str) or not sql.strip():
        raise DefinitionError("an expression check needs a SQL boolean", fix="'amount >= 0'")
    label = name or f"expression({_short(sql)})"
    return Expression(name=label, sql=sql.strip(), severity=severity, mostly=mostly)


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
    if not isinstance(query, str) or "{rows}" not in query:
        raise DefinitionError(
            f"check {name!r}: the query must select from {{rows}} (the batch)",
            fix="e.g. 'SELECT * FROM {rows} WHERE amount > credit_limit'",
        )
    return Sql(name=name, query=query.strip(), severity=severity, mostly=mostly)


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
    only = () if columns is None else _columns(tuple(columns), "python")

    def build(fn: BatchFunction) -> Python:
        if not callable(fn):
            raise DefinitionError(
                f"a python check needs a function, not {fn!r}", fix="checks.python(my_function)"
            )
        label = name or f"python({getattr(fn, '__name__', 'check')})"
        return Python(name=label, function=fn, only=only, severity=severity, mostly=mostly)

    if function is None:
        return build
    return build(function)


# ``checks.type(...)``: the spelling. It shadows the builtin in this module: nothing here
# calls ``type()``.
type = type_


def _column(column: object, kind: str) -> str:
    if not isinstance(column, str) or not column:
        raise DefinitionError(
            f"a {kind} check needs a column name, not {column!r}", fix=f'{kind}("user_id", ...)'
        )
    return column


def _columns(columns: tuple[object, ...], kind: str) -> tuple[str, ...]:
    if len(columns) == 1 and isinstance(columns[0], list | tuple):
        columns = tuple(columns[0])
    if not columns:
        raise DefinitionError(f"a {kind} check needs at least one column", fix=f'{kind}("id")')
    return tuple(_column(c, kind) for c in columns)


def _short(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


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
