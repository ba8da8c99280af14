"""Compile cleaning steps to DuckDB SQL, one SELECT over the previous step's rows.

Every value — fill values, bounds, fitted statistics, salts, names compared with data — is bound
as a numbered parameter (``$n``), so a step's SQL is the same text in batch and in streaming
and a salt never appears in it. Identifiers are quoted. The batch runner and the streaming
worker run exactly this SQL (:mod:`headwater.transforms.pipeline`), which is what makes their
rows equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from headwater.definitions.steps import (
    Cast,
    Clip,
    Dedupe,
    Drop,
    FillNull,
    Hash,
    Mask,
    Normalize,
    Outliers,
    Pivot,
    Rename,
    Scale,
    Standardize,
    Step,
    Unpivot,
)
from headwater.errors import DefinitionError
from headwater.sql import hash_sql, mask_sql
from headwater.sql import quote_ident as q

_NUMERIC = re.compile(
    r"^(U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|FLOAT|DOUBLE|DECIMAL\(\d+,\s*\d+\))$"
)
_TEMPORAL = re.compile(r"^(DATE|TIME|TIMESTAMP.*)$")
_UNORDERED = re.compile(r"^(MAP|UNION)\(")


@dataclass
class Rows:
    """A SELECT over the rows so far: SQL text, its parameters, and the columns it yields
    (name -> DuckDB type, in order)."""

    sql: str
    params: list[Any] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)

    def bind(self, value: Any) -> str:
        """Append a parameter; return its placeholder."""
        self.params.append(value)
        return f"${len(self.params)}"


@dataclass(frozen=True)
class Context:
    """What a step needs to know of its view."""

    view: str
    join_keys: tuple[str, ...]
    timestamp_field: str
    created_field: str | None
    salts: dict[str, str]


def where(ctx: Context, position: int, step: Step) -> str:
    return f"view {ctx.view!r}: transform {position} ({step.label})"


def check_columns(
    ctx: Context, position: int, step: Step, rows: Rows, removed: dict[str, str]
) -> None:
    """Raise naming the view, the step and the column when an input is missing."""
    for column in (*step.inputs, *_defaults(ctx, step)):
        if column not in rows.columns:
            gone = removed.get(column)
            why = f" ({gone} removed it)" if gone else ""
            raise DefinitionError(
                f"{where(ctx, position, step)}: column {column!r} does not exist at this step"
                f"{why}; the rows have {', '.join(rows.columns)}",
                fix="name a column the rows have at that point (steps run in order), or move "
                "the step",
            )


def _defaults(ctx: Context, step: Step) -> tuple[str, ...]:
    if isinstance(step, Dedupe) and not step.order_by:
        return (ctx.timestamp_field,)
    if isinstance(step, FillNull) and step.strategy == "previous":
        return (
            *(() if step.by else ctx.join_keys),
            *(() if step.order_by else (ctx.timestamp_field,)),
        )
    return ()


def check_types(ctx: Context, position: int, step: Step, rows: Rows) -> None:
    """Statistics and scalings need numbers; clip needs numbers or times."""
    numeric = isinstance(step, Scale | Outliers) or (
        isinstance(step, FillNull) and step.strategy in ("mean", "median")
    )
    column = getattr(step, "column", None)
    if column is None or column not in rows.columns:
        return
    kind = rows.columns[column]
    ok = bool(_NUMERIC.match(kind)) or (isinstance(step, Clip) and bool(_TEMPORAL.match(kind)))
    if (numeric or isinstance(step, Clip)) and not ok:
        raise DefinitionError(
            f"{where(ctx, position, step)}: column {column!r} is {kind}, not a number",
            fix=f'cast it first: transforms.cast("{column}", "DOUBLE")',
        )


def step_sql(ctx: Context, step: Step, rows: Rows, stats: dict[str, float] | None) -> Rows:
    """The rows after ``step`` (columns left empty: the caller describes them)."""
    out = Rows("", list(rows.params))
    src = f"({rows.sql}) AS __hw_in"
    if isinstance(step, Rename):
        names = dict(step.names)
        select = ", ".join(f"{q(c)} AS {q(names[c])}" if c in names else q(c) for c in rows.columns)
        out.sql = f"SELECT {select} FROM {src}"
    elif isinstance(step, Drop):
        out.sql = f"SELECT * EXCLUDE ({', '.join(q(c) for c in step.columns)}) FROM {src}"
    elif isinstance(step, Cast):
        function = "CAST" if step.on_error == "fail" else "TRY_CAST"
        replaced = [f"{function}({q(c)} AS {t}) AS {q(c)}" for c, t in step.types]
        out.sql = f"SELECT * REPLACE ({', '.join(replaced)}) FROM {src}"
    elif isinstance(step, Dedupe):
        order = step.order_by or (ctx.timestamp_field,)
        ties = [c for c in rows.columns if c not in order and not _UNORDERED.match(rows.columns[c])]
        ordering = ", ".join(f"{q(c)} DESC NULLS LAST" for c in (*order, *ties))
        out.sql = (
            f"SELECT * FROM {src} QUALIFY row_number() OVER "
            f"(PARTITION BY {', '.join(q(k) for k in step.keys)} ORDER BY {ordering}) = 1"
        )
    elif isinstance(step, Pivot):
        cells = [
            f"{step.agg}({q(step.values)}) FILTER (WHERE CAST({q(step.column)} AS VARCHAR) = "
            f"{out.bind(value)}) AS {q(target)}"
            for value, target in step.names
        ]
        out.sql = (
            f"SELECT * EXCLUDE ({q(step.column)}, {q(step.values)}), {', '.join(cells)} "
            f"FROM {src} GROUP BY ALL"
        )
    elif isinstance(step, Unpivot):
        items = ", ".join(f"struct_pack(n := {out.bind(c)}, v := {q(c)})" for c in step.columns)
        excluded = ", ".join(q(c) for c in step.columns)
        out.sql = (
            f"SELECT * EXCLUDE (__hw_u), __hw_u.n AS {q(step.name)}, __hw_u.v AS {q(step.value)} "
            f"FROM (SELECT * EXCLUDE ({excluded}), unnest([{items}]) AS __hw_u FROM {src})"
        )
    else:
        column = getattr(step, "column", "")
        expr = _column_expr(ctx, step, out, q(column), rows.columns.get(column, ""), stats)
        if expr is None:
            return Rows(rows.sql, list(rows.params))
        target = getattr(step, "output", None)
        if target:
            out.sql = f"SELECT *, {expr} AS {q(target)} FROM {src}"
        else:
            out.sql = f"SELECT * REPLACE ({expr} AS {q(column)}) FROM {src}"
    return out


def _column_expr(
    ctx: Context, step: Step, out: Rows, col: str, kind: str, stats: dict[str, float] | None
) -> str | None:
    """The new value of one column, or None when the step has nothing to do."""
    if isinstance(step, FillNull):
        if step.strategy == "previous":
            by = step.by or ctx.join_keys
            order = step.order_by or (ctx.timestamp_field,)
            partition = f"PARTITION BY {', '.join(q(c) for c in by)} " if by else ""
            return (
                f"coalesce({col}, last_value({col} IGNORE NULLS) OVER ({partition}ORDER BY "
                f"{', '.join(q(c) + ' ASC NULLS FIRST' for c in order)} "
                "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))"
            )
        if step.strategy is None:
            value: Any = step.value
        else:
            value = None if stats is None else stats.get(step.strategy)
            if value is None:
                return None  # no value to compute a statistic from: nulls stay
        return f"coalesce({col}, CAST({out.bind(value)} AS {kind}))"
    if isinstance(step, Clip):
        return _bounded(out, col, kind, step.lower, step.upper, "clip")
    if isinstance(step, Outliers):
        bounds = outlier_bounds(step, stats)
        if bounds is None:
            return None
        return _bounded(out, col, "DOUBLE", bounds[0], bounds[1], step.action, kind)
    if isinstance(step, Normalize | Standardize):
        assert stats is not None
        if isinstance(step, Normalize):
            shift, scale = stats["min"], stats["max"] - stats["min"]
        else:
            shift, scale = stats["mean"], stats["std"]
        # A constant column scales to 0, as scikit-learn's scalers do.
        return (
            f"((CAST({col} AS DOUBLE) - {out.bind(float(shift))}) / "
            f"{out.bind(float(scale) or 1.0)})"
        )
    if isinstance(step, Hash):
        return hash_sql(col, out.bind(ctx.salts[step.salt_env]))
    if isinstance(step, Mask):
        return mask_sql(col, out.bind(step.keep_last), out.bind(step.char))
    raise AssertionError(f"no SQL for {step!r}")


def _bounded(
    out: Rows, col: str, kind: str, lower: Any, upper: Any, action: str, result: str = ""
) -> str:
    """Values below ``lower`` / above ``upper`` become the bound (``clip``) or null."""
    typed = f"CAST({col} AS {kind})" if result else col
    cases = []
    for bound, op in ((lower, "<"), (upper, ">")):
        if bound is None:
            continue
        placeholder = out.bind(bound)
        then = "NULL" if action == "null" else f"CAST({placeholder} AS {result or kind})"
        cases.append(f"WHEN {typed} {op} CAST({placeholder} AS {kind}) THEN {then}")
    return f"CASE {' '.join(cases)} ELSE {col} END"


def outlier_bounds(step: Outliers, stats: dict[str, float] | None) -> tuple[float, float] | None:
    if not stats or not stats.get("rows"):
        return None
    if step.method == "iqr":
        spread = stats["q3"] - stats["q1"]
        return stats["q1"] - step.factor * spread, stats["q3"] + step.factor * spread
    return (
        stats["mean"] - step.factor * stats["std"],
        stats["mean"] + step.factor * stats["std"],
    )


# ---------------------------------------------------------------------- statistics
def needs(step: Step) -> tuple[str, ...]:
    """The statistics a step uses."""
    if isinstance(step, Normalize):
        return ("min", "max")
    if isinstance(step, Standardize):
        return ("mean", "std")
    if isinstance(step, FillNull) and step.strategy in ("mean", "median"):
        return (step.strategy,)
    if isinstance(step, Outliers):
        return ("q1", "q3") if step.method == "iqr" else ("mean", "std")
    return ()


def statistics_sql(rows: Rows, column: str, wanted: tuple[str, ...]) -> tuple[str, str | None]:
    """Two queries over the finite, non-null values of ``column``: the first yields
    ``rows, sum, min, max, q1, median, q3``; the second (when a std is wanted) the sum of
    squared deviations from a mean bound as the last parameter.

    Sums use compensated summation (``fsum``), so a statistic does not depend on the order
    the rows arrive in — a topic and a file with the same rows give the same numbers.
    """
    values = (
        f"SELECT CAST({q(column)} AS DOUBLE) AS __v FROM ({rows.sql}) AS __hw_s "
        f"WHERE {q(column)} IS NOT NULL"
    )
    finite = f"(SELECT __v FROM ({values}) WHERE isfinite(__v))"
    first = (
        "SELECT count(__v), fsum(__v), min(__v), max(__v), "
        f"quantile_cont(__v, [0.25, 0.5, 0.75]) FROM {finite}"
    )
    if "std" not in wanted:
        return first, None
    mean = f"${len(rows.params) + 1}"
    return first, f"SELECT fsum((__v - {mean}) * (__v - {mean})) FROM {finite}"
