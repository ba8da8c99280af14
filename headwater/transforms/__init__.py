"""Cleaning transforms: ordinary steps of a feature view, run on the source rows in order.

Example:
    >>> from headwater import transforms
    >>> steps = [
    ...     transforms.dedupe(["order_id"], order_by="updated_at"),
    ...     transforms.fill_null("amount", 0),
    ...     transforms.clip("amount", 0, 10_000),
    ...     transforms.hash("email", salt_env="PII_SALT"),
    ...     transforms.mask("card", keep_last=4),
    ...     transforms.drop("ssn"),
    ...     transforms.standardize("amount", fit=("2024-01-01", "2024-07-01")),
    ... ]

Pass them as ``FeatureView(..., transforms=steps)``. They run after the source's checks and
before the features are computed, so features and aggregations see the transformed columns.
SQL-expressible steps compile to DuckDB SQL (vectorised); ``@transforms.python`` functions
take and return Arrow tables (or pandas / polars DataFrames). Statistics of ``normalize``,
``standardize`` and of ``fill_null``/``outliers`` given ``fit=`` are computed once over the
declared training range and stored in the registry, so every later run and streaming
micro-batch uses the same numbers. See docs/transforms.md.

These functions only build declarations; :mod:`headwater.transforms.pipeline` runs them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from headwater.errors import DefinitionError
from headwater.transforms.steps import (
    FRAMES,
    PIVOT_AGGREGATIONS,
    STRATEGIES,
    Cast,
    Clip,
    Dedupe,
    Drop,
    FillNull,
    FitRange,
    Hash,
    Mask,
    Normalize,
    Outliers,
    Pivot,
    PythonTransform,
    Rename,
    Standardize,
    Step,
    Unpivot,
    Value,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TYPE_NAME = re.compile(
    r"^[A-Za-z][A-Za-z0-9_]*( [A-Za-z][A-Za-z0-9_]*)*(\(\s*\d+\s*(,\s*\d+\s*)?\))?(\[\])?$"
)
_TYPE_ALIASES = {
    "int": "BIGINT",
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float": "DOUBLE",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "str": "VARCHAR",
    "string": "VARCHAR",
    "utf8": "VARCHAR",
    "bool": "BOOLEAN",
    "timestamptz": "TIMESTAMPTZ",
    "bytes": "BLOB",
}


def dedupe(keys: str | Sequence[str], order_by: str | Sequence[str] | None = None) -> Dedupe:
    """Keep one row per ``keys``: the latest by ``order_by`` (default: the source's
    ``timestamp_field``). Ties resolve by the other columns, so reruns keep the same row."""
    return Dedupe(keys=_names(keys, "dedupe", "keys"), order_by=_names(order_by, "dedupe", None))


def fill_null(
    column: str,
    value: Value,
    *,
    fit: tuple[Any, Any] | None = None,
    by: str | Sequence[str] | None = None,
    order_by: str | Sequence[str] | None = None,
) -> FillNull:
    """Replace nulls of ``column``.

    Args:
        column: the column to fill.
        value: a constant, or ``"mean"`` / ``"median"`` (of the column's values), or
            ``"previous"`` (the last non-null value of the same entity, in event-time order).
        fit: for ``"mean"``/``"median"``: ``(start, end)`` of the source's event time; the
            statistic is computed once over it and stored. Without it the statistic is
            computed over each run's rows (batch only).
        by: for ``"previous"``: the columns grouping rows (default: the view's join keys).
        order_by: for ``"previous"``: the ordering columns (default: the source's
            ``timestamp_field``).
    """
    name = _column(column, "fill_null")
    if value is None:
        raise DefinitionError(
            f"fill_null({name}) needs a value to fill with",
            fix=f'fill_null("{name}", 0), or "mean", "median" or "previous"',
        )
    strategy = value if isinstance(value, str) and value in STRATEGIES else None
    if fit is not None and strategy not in ("mean", "median"):
        raise DefinitionError(
            f"fill_null({name}): fit= applies to the 'mean' and 'median' strategies",
            fix="drop fit=, or fill with 'mean' or 'median'",
        )
    if (by is not None or order_by is not None) and strategy != "previous":
        raise DefinitionError(
            f"fill_null({name}): by= and order_by= apply to the 'previous' strategy",
            fix="drop them, or fill with 'previous'",
        )
    return FillNull(
        column=name,
        value=None if strategy else _value(value, f"fill_null({name})"),
        strategy=strategy,
        fit_range=None if fit is None else _fit(fit, f"fill_null({name})"),
        by=_names(by, "fill_null", None),
        order_by=_names(order_by, "fill_null", None),
    )


def clip(column: str, lower: Value | None = None, upper: Value | None = None) -> Clip:
    """Bound ``column`` to ``[lower, upper]``: smaller values become ``lower``, greater ones
    ``upper`` (converted to the column's type); nulls stay null."""
    name = _column(column, "clip")
    label = f"clip({name})"
    if lower is None and upper is None:
        raise DefinitionError(f"{label} needs a lower or an upper bound", fix="clip('x', 0, 100)")
    low = None if lower is None else _value(lower, label)
    high = None if upper is None else _value(upper, label)
    if low is not None and high is not None:
        try:
            inverted = low > high  # type: ignore[operator]  # mixed kinds raise TypeError
        except TypeError:
            raise DefinitionError(
                f"{label}: bounds {lower!r} and {upper!r} are not comparable",
                fix="give both bounds as numbers (or both as dates)",
            ) from None
        if inverted:
            raise DefinitionError(f"{label}: lower {lower!r} is above upper {upper!r}", fix="swap")
    return Clip(column=name, lower=low, upper=high)


def outliers(
    column: str,
    method: str = "iqr",
    *,
    factor: float | None = None,
    action: str = "clip",
    fit: tuple[Any, Any] | None = None,
) -> Outliers:
    """Handle values outside ``[q1 - factor*IQR, q3 + factor*IQR]`` (``method="iqr"``, factor
    1.5) or ``mean ± factor*std`` (``method="zscore"``, factor 3).

    ``action="clip"`` bounds them, ``"null"`` makes them null (to set whole rows aside, use a
    check with ``severity="quarantine"``). With ``fit=`` the bounds come from statistics
    fitted once on that training range and stored; without it, from each run's rows (batch
    only).
    """
    name = _column(column, "outliers")
    label = f"outliers({name})"
    if method not in ("iqr", "zscore"):
        raise DefinitionError(f"{label}: unknown method {method!r}", fix="method='iqr' or 'zscore'")
    if action not in ("clip", "null"):
        raise DefinitionError(f"{label}: unknown action {action!r}", fix="action='clip' or 'null'")
    chosen = (1.5 if method == "iqr" else 3.0) if factor is None else factor
    if isinstance(chosen, bool) or not isinstance(chosen, int | float) or not chosen > 0:
        raise DefinitionError(f"{label}: factor={factor!r} is not a positive number", fix="e.g. 3")
    return Outliers(
        column=name,
        method=method,
        factor=float(chosen),
        action=action,
        fit_range=None if fit is None else _fit(fit, label),
    )


def cast(
    column: str | Mapping[str, str], type: str | None = None, *, on_error: str = "fail"
) -> Cast:
    """Convert columns to DuckDB types: ``cast("amount", "DOUBLE")`` or
    ``cast({"amount": "DOUBLE", "qty": "int64"})`` (Arrow aliases accepted).

    ``on_error="fail"`` (default) stops the run on a value that does not convert (pair it with
    ``checks.type(..., severity="quarantine")`` on the source to set such rows aside first);
    ``"null"`` turns it into null.
    """
    if isinstance(column, Mapping):
        if type is not None:
            raise DefinitionError("cast: pass a mapping or a column and a type", fix="not both")
        pairs = list(column.items())
    else:
        if type is None:
            raise DefinitionError(
                f"cast({column!r}) needs a type", fix=f'cast("{column}", "DOUBLE")'
            )
        pairs = [(column, type)]
    if not pairs:
        raise DefinitionError("cast needs at least one column", fix='cast("x", "DOUBLE")')
    if on_error not in ("fail", "null"):
        raise DefinitionError(f"cast: on_error={on_error!r}", fix="on_error='fail' or 'null'")
    types = tuple((_column(c, "cast"), _type(t, c)) for c, t in pairs)
    return Cast(types=types, on_error=on_error)


def rename(mapping: str | Mapping[str, str], new: str | None = None) -> Rename:
    """Rename columns: ``rename("amt", "amount")`` or ``rename({"amt": "amount"})``."""
    if isinstance(mapping, Mapping):
        if new is not None:
            raise DefinitionError("rename: pass a mapping or two names", fix="not both")
        pairs = list(mapping.items())
    else:
        if new is None:
            raise DefinitionError(f"rename({mapping!r}) needs a new name", fix='rename("a", "b")')
        pairs = [(mapping, new)]
    names = tuple((_column(old, "rename"), _column(to, "rename")) for old, to in pairs)
    targets = [to for _, to in names]
    if not names or len(set(targets)) != len(targets):
        raise DefinitionError("rename: give each column one distinct new name", fix="check it")
    return Rename(names=names)


def normalize(column: str, *, fit: tuple[Any, Any], output: str | None = None) -> Normalize:
    """Min-max scaling to ``[0, 1]`` over the training range ``fit=(start, end)`` of the
    source's event time (``max == min`` gives 0). ``output=`` writes a new column instead."""
    name = _column(column, "normalize")
    return Normalize(
        column=name,
        fit_range=_required_fit(fit, f"normalize({name})"),
        output=None if output is None else _column(output, "normalize"),
    )


def standardize(column: str, *, fit: tuple[Any, Any], output: str | None = None) -> Standardize:
    """``(x - mean) / std`` with the mean and population standard deviation fitted on the
    training range ``fit=(start, end)`` (``std == 0`` gives 0). ``output=`` writes a new
    column instead."""
    name = _column(column, "standardize")
    return Standardize(
        column=name,
        fit_range=_required_fit(fit, f"standardize({name})"),
        output=None if output is None else _column(output, "standardize"),
    )


def pivot(
    column: str, values: str, names: Sequence[str] | Mapping[str, str], *, agg: str = "max"
) -> Pivot:
    """Long to wide: for each value of ``column`` listed in ``names`` (a list, or a mapping
    value -> output column), a column holding ``agg(values)`` over the rows that share all
    other columns. Batch only."""
    col, val = _column(column, "pivot"), _column(values, "pivot")
    if isinstance(names, str) or not isinstance(names, Sequence | Mapping) or not names:
        raise DefinitionError(
            f"pivot({col}) needs the values that become columns", fix='names=["clicks", "views"]'
        )
    pairs = list(names.items()) if isinstance(names, Mapping) else [(n, n) for n in names]
    out = tuple((str(value), _column(target, "pivot")) for value, target in pairs)
    if agg not in PIVOT_AGGREGATIONS:
        raise DefinitionError(
            f"pivot({col}): unknown agg {agg!r}", fix=f"one of {', '.join(PIVOT_AGGREGATIONS)}"
        )
    return Pivot(column=col, values=val, names=out, agg=agg)


def unpivot(columns: Sequence[str], *, name: str = "name", value: str = "value") -> Unpivot:
    """Wide to long: each input row becomes one row per column of ``columns``, with the
    column's name in ``name`` and its value (nulls kept) in ``value``."""
    cols = _names(columns, "unpivot", "columns")
    return Unpivot(columns=cols, name=_column(name, "unpivot"), value=_column(value, "unpivot"))


def hash(column: str, *, salt_env: str) -> Hash:
    """Replace ``column`` by the hex SHA-256 of salt + value (as text); nulls stay null.

    The salt is read from the environment variable ``salt_env`` when the view runs (``apply``
    and every run check that it is set); it never appears in specs, logs or the registry.
    """
    name = _column(column, "hash")
    if not isinstance(salt_env, str) or not _ENV_NAME.match(salt_env):
        raise DefinitionError(
            f"hash({name}): salt_env={salt_env!r} is not an environment variable name",
            fix='salt_env="PII_SALT"',
        )
    return Hash(column=name, salt_env=salt_env)


def mask(column: str, *, keep_last: int = 4, char: str = "*") -> Mask:
    """Replace every character of ``column`` (as text) but the last ``keep_last`` by ``char``;
    a value no longer than ``keep_last`` is masked entirely, so it is never shown whole."""
    name = _column(column, "mask")
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
        raise DefinitionError(f"mask({name}): keep_last={keep_last!r}", fix="e.g. keep_last=4")
    if not isinstance(char, str) or len(char) != 1:
        raise DefinitionError(f"mask({name}): char={char!r} is not one character", fix="'*'")
    return Mask(column=name, keep_last=keep_last, char=char)


def drop(*columns: str | Sequence[str]) -> Drop:
    """Remove columns: ``drop("ssn")``, ``drop("ssn", "phone")`` or ``drop(["ssn"])``."""
    flat: list[Any] = []
    for item in columns:
        flat += [item] if isinstance(item, str) else list(item)
    return Drop(columns=_names(flat, "drop", "columns"))


def python(
    function: Callable[[Any], Any] | None = None, *, frame: str = "arrow", name: str | None = None
) -> Any:
    """A transform written in Python: ``@transforms.python`` or
    ``@transforms.python(frame="pandas")`` on ``def f(table) -> table``.

    The function gets the rows as an Arrow table (``frame="pandas"`` / ``"polars"``: a
    DataFrame) in chunks of up to 100 000 rows — in batch as in streaming, where a chunk is one
    micro-batch — so it must work row by row (or per chunk). It returns the new rows.
    """
    if frame not in FRAMES:
        raise DefinitionError(
            f"transforms.python: unknown frame {frame!r}", fix="arrow, pandas or polars"
        )

    def build(fn: Callable[[Any], Any]) -> PythonTransform:
        if not callable(fn):
            raise DefinitionError(
                f"transforms.python needs a function, not {fn!r}", fix="@transforms.python"
            )
        label = name or str(getattr(fn, "__name__", "transform"))
        return PythonTransform(function=fn, frame=frame, name=label)

    return build if function is None else build(function)


# ---------------------------------------------------------------------- argument checks
def _column(column: object, kind: str) -> str:
    if not isinstance(column, str) or not column.strip():
        raise DefinitionError(
            f"{kind}: {column!r} is not a column name", fix=f'{kind}("amount", ...)'
        )
    return column


def _names(names: object, kind: str, required: str | None) -> tuple[str, ...]:
    if names is None:
        names = ()
    if isinstance(names, str):
        names = (names,)
    if not isinstance(names, Sequence):
        raise DefinitionError(f"{kind}: {names!r} is not a list of columns", fix='["order_id"]')
    found = tuple(_column(n, kind) for n in names)
    if required and not found:
        raise DefinitionError(f"{kind} needs at least one column in {required}=", fix='["id"]')
    if len(set(found)) != len(found):
        raise DefinitionError(f"{kind}: a column is named twice in {list(found)}", fix="once")
    return found


def _value(value: object, label: str) -> Value:
    if isinstance(value, bool | int | float | str | date | datetime):
        if isinstance(value, float) and value != value:  # NaN
            raise DefinitionError(f"{label}: NaN is not a value to use", fix="use a number")
        return value
    raise DefinitionError(
        f"{label}: {value!r} is not a number, string, date or timestamp", fix="use a plain value"
    )


def _type(type_name: object, column: str) -> str:
    if not isinstance(type_name, str) or not _TYPE_NAME.match(type_name.strip()):
        raise DefinitionError(
            f"cast({column}): {type_name!r} is not a type name",
            fix="use a DuckDB type such as BIGINT, DOUBLE, DECIMAL(12,2), DATE, TIMESTAMPTZ, "
            "VARCHAR (or int64, float64, string)",
        )
    text = type_name.strip()
    return _TYPE_ALIASES.get(text.lower(), text.upper())


def _required_fit(fit: object, label: str) -> FitRange:
    if fit is None:
        raise DefinitionError(
            f"{label} needs fit=(start, end): the training range its statistics are computed on",
            fix='fit=("2024-01-01", "2024-07-01") — statistics from one batch would leak',
        )
    return _fit(fit, label)


def _fit(fit: object, label: str) -> FitRange:
    if isinstance(fit, str | bytes) or not isinstance(fit, Sequence) or len(fit) != 2:
        raise DefinitionError(
            f"{label}: fit={fit!r} is not a (start, end) pair",
            fix='fit=("2024-01-01", "2024-07-01")',
        )
    start, end = (_instant(v, label) for v in fit)
    if start >= end:
        raise DefinitionError(f"{label}: fit range {fit!r} is empty", fix="start before end")
    return FitRange(start, end)


def _instant(value: object, label: str) -> int:
    """Epoch milliseconds of a date, a datetime (naive = UTC), an ISO string or an int (ms)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
    if moment is None:
        raise DefinitionError(
            f"{label}: {value!r} is not a date or a timestamp", fix='e.g. "2024-01-01"'
        )
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


__all__ = [
    "Step",
    "cast",
    "clip",
    "dedupe",
    "drop",
    "fill_null",
    "hash",
    "mask",
    "normalize",
    "outliers",
    "pivot",
    "python",
    "rename",
    "standardize",
    "unpivot",
]
