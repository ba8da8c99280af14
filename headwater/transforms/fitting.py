"""Statistics of cleaning steps: fitted once on a training range and stored, or per run.

A step with a fit range (``normalize``, ``standardize``, and ``fill_null`` / ``outliers`` given
``fit=``) uses numbers computed over the source rows whose event time is in ``[start, end)``,
after the steps before it. They are computed the first time a run (or a streaming worker)
needs them, stored in the registry keyed by the view and a digest of the step and the steps
before it, and reused by every later run and micro-batch: new data never moves them. They are
fitted again only when that key changes (the step, its fit range or an earlier step changed)
or when they are deleted (:func:`refit`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from headwater.definitions.steps import FitRange, Step, step_key
from headwater.errors import DefinitionError
from headwater.observability import get_logger
from headwater.sql import quote_ident as q
from headwater.stores.registry import FittedStatistics
from headwater.transforms.compile import Rows, needs, statistics_sql, where

if TYPE_CHECKING:
    import duckdb

    from headwater.config import ProjectConfig
    from headwater.definitions import FeatureView
    from headwater.stores.registry import Registry

log = get_logger("transforms")


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


def fitted_statistics(
    con: duckdb.DuckDBPyConnection,
    view: FeatureView,
    *,
    project: ProjectConfig,
    registry: Registry | None,
    salts: dict[str, str],
    store: bool = True,
) -> dict[int, dict[str, Any]]:
    """The fitted statistics of the view's steps, by step index: read from the registry, or
    fitted now (and stored unless ``store`` is false) when missing."""
    steps = view.transforms
    found: dict[int, dict[str, Any]] = {}
    missing: list[int] = []
    for index, step in enumerate(steps):
        if step.fit is None:
            continue
        stored = registry.fitted_statistics(view.name, step_key(steps, index)) if registry else []
        if stored:
            found[index] = stored[0].stats
        else:
            missing.append(index)
    if missing:
        _fit(con, view, project, registry, salts, found, missing, store)
    return found


def _fit(
    con: duckdb.DuckDBPyConnection,
    view: FeatureView,
    project: ProjectConfig,
    registry: Registry | None,
    salts: dict[str, str],
    found: dict[int, dict[str, Any]],
    missing: list[int],
    store: bool,
) -> None:
    """Read the training rows once (the hull of the missing steps' ranges) and fit each
    missing step in order, on the rows the steps before it produce."""
    from headwater.connectors import open_connector
    from headwater.transforms.pipeline import Pipeline
    from headwater.transforms.runtime import batch_python

    steps = view.transforms
    ranges = [r for r in (steps[i].fit for i in missing) if r is not None]
    hull = FitRange(start_ms=min(r.start_ms for r in ranges), end_ms=max(r.end_ms for r in ranges))
    cur = con.cursor()  # its own temporary tables, the same database and settings
    try:
        cur.execute("SET TimeZone = 'UTC'")
        connector = open_connector(view.source, project)
        ts = view.source.timestamp_field
        integer = _is_integer(connector.schema(), ts)
        scan = connector.scan(cur, checkpoint=None)
        staged = "__hw_fit_rows"
        cur.execute(
            f"CREATE OR REPLACE TEMP TABLE {staged} AS SELECT * FROM {scan.relation} "
            f"WHERE {_in_range(ts, integer)}",
            [hull.start_ms, hull.end_ms],
        )
        version = None
        if registry is not None:
            applied = registry.definition("feature_view", view.name)
            version = None if applied is None else applied.version
        for index in missing:
            step = steps[index]
            fit = step.fit
            assert fit is not None
            rows = Rows(
                f"SELECT * FROM {staged} WHERE {_in_range(ts, integer)}",
                [fit.start_ms, fit.end_ms],
            )
            temporary: list[str] = []
            pipeline = Pipeline(view, salts, found)
            rows = pipeline.walk(cur, rows, batch_python(cur, view.name, temporary), stop=index)
            stats = compute_statistics(cur, step, rows)
            for name in temporary:
                cur.execute(f"DROP TABLE IF EXISTS main.{name}")
            if not stats["rows"]:
                start, end = fit.to_spec()
                raise DefinitionError(
                    f"{where(pipeline.ctx, index + 1, step)}: no value of "
                    f"{getattr(step, 'column', '?')!r} to fit on: source "
                    f"{view.source.name!r} has no such rows with {ts} in [{start}, {end})",
                    fix="load the training period's data, or give fit= a period that has it",
                )
            record = FittedStatistics(
                view=view.name,
                step_key=step_key(steps, index),
                step=step.label,
                position=index + 1,
                fit_start_ms=fit.start_ms,
                fit_end_ms=fit.end_ms,
                stats=stats,
                rows=int(stats["rows"]),
                view_version=version,
                fitted_at=datetime.now(UTC),
            )
            if store and registry is not None:
                record = registry.save_fitted_statistics(record)
            found[index] = record.stats
            log.info(
                "transform statistics fitted",
                extra={
                    "fields": {
                        "view": view.name,
                        "step": step.label,
                        "rows": record.rows,
                        "fit": fit.to_spec(),
                        "stored": store,
                    }
                },
            )
    finally:
        cur.close()


def refit(
    view: FeatureView,
    *,
    project: ProjectConfig,
    registry: Registry,
    con: duckdb.DuckDBPyConnection,
) -> list[FittedStatistics]:
    """Forget the view's fitted statistics and fit them again now, from the source's current
    rows in each training range; return the new ones. Runs and streaming workers started
    afterwards use them (a running worker keeps the numbers it started with)."""
    from headwater.transforms.pipeline import read_salts

    registry.delete_fitted_statistics(view.name)
    fitted_statistics(con, view, project=project, registry=registry, salts=read_salts(view))
    return registry.fitted_statistics(view.name)


def _is_integer(schema: Any, column: str) -> bool:
    import pyarrow as pa

    index = schema.get_field_index(column)
    return index >= 0 and bool(pa.types.is_integer(schema.field(index).type))


def _in_range(column: str, integer: bool) -> str:
    """``column`` in ``[$1, $2)`` (epoch ms): integers are milliseconds, other columns are
    read as timestamps (without a zone: UTC), as the engine reads event times."""
    if integer:
        return f"CAST({q(column)} AS BIGINT) >= $1 AND CAST({q(column)} AS BIGINT) < $2"
    value = f"CAST({q(column)} AS TIMESTAMPTZ)"
    return (
        f"{value} >= CAST(make_timestamp(CAST($1 AS BIGINT) * 1000) AS TIMESTAMPTZ) "
        f"AND {value} < CAST(make_timestamp(CAST($2 AS BIGINT) * 1000) AS TIMESTAMPTZ)"
    )
