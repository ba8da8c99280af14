"""The statistics a cleaning step uses (mean, min, max, quartiles, standard deviation), computed
in DuckDB over the rows it gets."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from headwater.transforms.compile import Rows, needs, statistics_sql

if TYPE_CHECKING:
    import duckdb

    from headwater.definitions.steps import Step

Statistics = dict[int, dict[str, Any]]
"""Fitted statistics of a view's steps, by step index."""


def compute_statistics(con: duckdb.DuckDBPyConnection, step: Step, rows: Rows) -> dict[str, Any]:
    """The statistics ``step`` uses, over the finite non-null values of its column in
    ``rows``; ``{"rows": 0}`` when there are none."""
    wanted = needs(step)
    column: str = getattr(step, "column", "")
    first, second = statistics_sql(rows, column, wanted)
    found = con.execute(first, rows.params).fetchall()[0]
    count = int(found[0])
    if not count:
        return {"rows": 0}
    mean = float(found[1]) / count
    quartiles = found[4]
    values: dict[str, Any] = {
        "rows": count,
        "mean": mean,
        "min": float(found[2]),
        "max": float(found[3]),
        "q1": float(quartiles[0]),
        "median": float(quartiles[1]),
        "q3": float(quartiles[2]),
    }
    if second is not None:
        squares = con.execute(second, [*rows.params, mean]).fetchall()[0][0]
        values["std"] = math.sqrt(float(squares) / count)
    return {name: values[name] for name in ("rows", *wanted)}
