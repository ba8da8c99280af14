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

These functions only spell declarations (the classes of :mod:`headwater.definitions.steps`,
which check their fields); :mod:`headwater.transforms.pipeline` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from headwater.definitions.steps import (
    OUTLIER_METHODS,
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
    check_frame,
)
from headwater.errors import DefinitionError


def dedupe(keys: str | Sequence[str], order_by: str | Sequence[str] | None = None) -> Dedupe:
    """Keep one row per ``keys``: the latest by ``order_by`` (default: the source's
    ``timestamp_field``). Ties resolve by the other columns, so reruns keep the same row."""
    return Dedupe(keys=keys, order_by=order_by or ())


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
    strategy = value if isinstance(value, str) and value in STRATEGIES else None
    return FillNull(
        column=column,
        value=None if strategy else value,
        strategy=strategy,
        fit_range=None if fit is None else FitRange.parse(fit, f"fill_null({column})"),
        by=by or (),
        order_by=order_by or (),
    )


def clip(column: str, lower: Value | None = None, upper: Value | None = None) -> Clip:
    """Bound ``column`` to ``[lower, upper]``: smaller values become ``lower``, greater ones
    ``upper`` (converted to the column's type); nulls stay null."""
    return Clip(column=column, lower=lower, upper=upper)


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
    return Outliers(
        column=column,
        method=method,
        factor=OUTLIER_METHODS.get(method, 1.5) if factor is None else factor,
        action=action,
        fit_range=None if fit is None else FitRange.parse(fit, f"outliers({column})"),
    )


def cast(
    column: str | Mapping[str, str], type: str | None = None, *, on_error: str = "fail"
) -> Cast:
    """Convert columns to DuckDB types: ``cast("amount", "DOUBLE")`` or
    ``cast({"amount": "DOUBLE", "qty": "int64"})``. Arrow and Python aliases are accepted —
    the same table as ``checks.type`` (:data:`headwater.definitions.types.TYPE_ALIASES`).

    ``on_error="fail"`` (default) stops the run on a value that does not convert (pair it with
    ``checks.type(..., severity="quarantine")`` on the source to set such rows aside first);
    ``"null"`` turns it into null.
    """
    if isinstance(column, Mapping):
        if type is not None:
            raise DefinitionError("cast: pass a mapping or a column and a type", fix="not both")
        return Cast(types=tuple(column.items()), on_error=on_error)
    if type is None:
        raise DefinitionError(f"cast({column!r}) needs a type", fix=f'cast("{column}", "DOUBLE")')
    return Cast(types=((column, type),), on_error=on_error)


def rename(mapping: str | Mapping[str, str], new: str | None = None) -> Rename:
    """Rename columns: ``rename("amt", "amount")`` or ``rename({"amt": "amount"})``."""
    if isinstance(mapping, Mapping):
        if new is not None:
            raise DefinitionError("rename: pass a mapping or two names", fix="not both")
        return Rename(names=tuple(mapping.items()))
    if new is None:
        raise DefinitionError(f"rename({mapping!r}) needs a new name", fix='rename("a", "b")')
    return Rename(names=((mapping, new),))


def normalize(column: str, *, fit: tuple[Any, Any], output: str | None = None) -> Normalize:
    """Min-max scaling to ``[0, 1]`` over the training range ``fit=(start, end)`` of the
    source's event time (``max == min`` gives 0). ``output=`` writes a new column instead."""
    fitted = FitRange.parse(fit, f"normalize({column})")
    return Normalize(column=column, fit_range=fitted, output=output)


def standardize(column: str, *, fit: tuple[Any, Any], output: str | None = None) -> Standardize:
    """``(x - mean) / std`` with the mean and population standard deviation fitted on the
    training range ``fit=(start, end)`` (``std == 0`` gives 0). ``output=`` writes a new
    column instead."""
    fitted = FitRange.parse(fit, f"standardize({column})")
    return Standardize(column=column, fit_range=fitted, output=output)


def pivot(
    column: str, values: str, names: Sequence[str] | Mapping[str, str], *, agg: str = "max"
) -> Pivot:
    """Long to wide: for each value of ``column`` listed in ``names`` (a list, or a mapping
    value -> output column), a column holding ``agg(values)`` over the rows that share all
    other columns. Batch only."""
    pairs: tuple[tuple[str, str], ...] = ()
    if isinstance(names, Mapping):
        pairs = tuple(names.items())
    elif isinstance(names, Sequence) and not isinstance(names, str):
        pairs = tuple((name, name) for name in names)
    return Pivot(column=column, values=values, names=pairs, agg=agg)


def unpivot(columns: Sequence[str], *, name: str = "name", value: str = "value") -> Unpivot:
    """Wide to long: each input row becomes one row per column of ``columns``, with the
    column's name in ``name`` and its value (nulls kept) in ``value``."""
    return Unpivot(columns=columns, name=name, value=value)


def hash(column: str, *, salt_env: str) -> Hash:
    """Replace ``column`` by the hex SHA-256 of salt + value (as text); nulls stay null.

    The salt is read from the environment variable ``salt_env`` when the view runs (``apply``
    and every run check that it is set); it never appears in specs, logs or the registry.
    """
    return Hash(column=column, salt_env=salt_env)


def mask(column: str, *, keep_last: int = 4, char: str = "*") -> Mask:
    """Replace every character of ``column`` (as text) but the last ``keep_last`` by ``char``;
    a value no longer than ``keep_last`` is masked entirely, so it is never shown whole."""
    return Mask(column=column, keep_last=keep_last, char=char)


def drop(*columns: str | Sequence[str]) -> Drop:
    """Remove columns: ``drop("ssn")``, ``drop("ssn", "phone")`` or ``drop(["ssn"])``."""
    flat: list[str] = []
    for item in columns:
        flat += [item] if isinstance(item, str) else list(item)
    return Drop(columns=flat)


def python(
    function: Callable[[Any], Any] | None = None, *, frame: str = "arrow", name: str | None = None
) -> Any:
    """A transform written in Python: ``@transforms.python`` or
    ``@transforms.python(frame="pandas")`` on ``def f(table) -> table``.

    The function gets the rows as an Arrow table (``frame="pandas"`` / ``"polars"``: a
    DataFrame) in chunks of up to 100 000 rows — in batch as in streaming, where a chunk is one
    micro-batch — so it must work row by row (or per chunk). It returns the new rows.
    """
    check_frame(frame)  # at once, so that @transforms.python(frame=...) fails where it is written

    def build(fn: Callable[[Any], Any]) -> PythonTransform:
        return PythonTransform(function=fn, frame=frame, name=name or "")

    return build if function is None else build(function)


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
