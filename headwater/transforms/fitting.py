"""Fitting the statistics of cleaning steps on their training rows.

A step with a fit range (``normalize``, ``standardize``, and ``fill_null`` / ``outliers`` given
``fit=``) uses numbers computed over the source rows whose event time is in ``[start, end)``,
after the steps before it. This module computes them from training rows it is given; reading
those rows from the source and keeping the numbers in the registry is the orchestrator's
(:mod:`headwater.orchestration.fitting`), so that applying steps never reads a source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from headwater.definitions.steps import FitRange
from headwater.errors import DefinitionError
from headwater.sql import quote_ident as q
from headwater.transforms.compile import Rows, where
from headwater.transforms.pipeline import Pipeline
from headwater.transforms.runtime import batch_python
from headwater.transforms.statistics import Statistics, compute_statistics

if TYPE_CHECKING:
    import duckdb

    from headwater.definitions import FeatureView


def fitted_steps(view: FeatureView) -> list[int]:
    """Indexes of the view's steps whose statistics are fitted on a training range."""
    return [index for index, step in enumerate(view.transforms) if step.fit is not None]


def training_range(view: FeatureView, indexes: list[int]) -> FitRange:
    """The smallest range holding the training ranges of the steps at ``indexes``."""
    ranges = [r for r in (view.transforms[i].fit for i in indexes) if r is not None]
    return FitRange(start_ms=min(r.start_ms for r in ranges), end_ms=max(r.end_ms for r in ranges))


def fit(
    con: duckdb.DuckDBPyConnection,
    view: FeatureView,
    training: str,
    missing: list[int],
    known: Statistics,
    *,
    salts: dict[str, str],
    integer_time: bool,
) -> Statistics:
    """Fit the steps at indexes ``missing``, in order, each on the rows of ``training`` (a
    relation of source rows) in its range after the steps before it, using the ``known``
    statistics of earlier steps; return ``known`` with the new ones.

    Raises:
        DefinitionError: a step's range holds no value of its column.
    """
    found = dict(known)
    ts = view.source.timestamp_field
    for index in missing:
        step = view.transforms[index]
        span = step.fit
        assert span is not None
        rows = Rows(
            f"SELECT * FROM {training} WHERE {in_range_sql(ts, integer_time)}",
            [span.start_ms, span.end_ms],
        )
        temporary: list[str] = []
        pipeline = Pipeline(view, salts, found)
        try:
            rows = pipeline.walk(con, rows, batch_python(con, view.name, temporary), stop=index)
            stats = compute_statistics(con, step, rows)
        finally:
            for name in temporary:
                con.execute(f"DROP TABLE IF EXISTS main.{name}")
        if not stats["rows"]:
            start, end = span.to_spec()
            raise DefinitionError(
                f"{where(pipeline.ctx, index + 1, step)}: no value of "
                f"{getattr(step, 'column', '?')!r} to fit on: source "
                f"{view.source.name!r} has no such rows with {ts} in [{start}, {end})",
                fix="load the training period's data, or give fit= a period that has it",
            )
        found[index] = stats
    return found


def in_range_sql(column: str, integer: bool) -> str:
    """``column`` in ``[$1, $2)`` (epoch ms): integers are milliseconds, other columns are
    read as timestamps (without a zone: UTC), as the engine reads event times."""
    if integer:
        return f"CAST({q(column)} AS BIGINT) >= $1 AND CAST({q(column)} AS BIGINT) < $2"
    value = f"CAST({q(column)} AS TIMESTAMPTZ)"
    return (
        f"{value} >= CAST(make_timestamp(CAST($1 AS BIGINT) * 1000) AS TIMESTAMPTZ) "
        f"AND {value} < CAST(make_timestamp(CAST($2 AS BIGINT) * 1000) AS TIMESTAMPTZ)"
    )
