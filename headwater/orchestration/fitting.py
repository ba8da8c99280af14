"""Fitted statistics of cleaning steps: read from the registry, or fitted once and stored.

The statistics of a step with a fit range are computed the first time a run (or a streaming
worker) needs them — the source is read for the training range, the steps before it applied
(:mod:`headwater.transforms.fitting`) — stored in the registry keyed by the view and a digest of
the step and the steps before it, and reused by every later run and micro-batch: new data never
moves them. They are fitted again only when that key changes (the step, its fit range or an
earlier step changed) or when they are deleted (:func:`refit`). Runs and workers are given the
statistics; steps never read a source or the registry themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from headwater.connectors import open_connector
from headwater.definitions.steps import step_key
from headwater.observability import get_logger
from headwater.stores.registry import FittedStatistics
from headwater.transforms.fitting import fit, fitted_steps, in_range_sql, training_range
from headwater.transforms.pipeline import read_salts
from headwater.transforms.statistics import Statistics

if TYPE_CHECKING:
    import duckdb

    from headwater.config import ProjectConfig
    from headwater.definitions import FeatureView
    from headwater.stores.registry import Registry

log = get_logger("transforms")


def fitted_statistics(
    con: duckdb.DuckDBPyConnection,
    view: FeatureView,
    *,
    project: ProjectConfig,
    registry: Registry | None,
    store: bool = True,
) -> Statistics:
    """The fitted statistics of the view's steps, by step index: read from the registry, or
    fitted now from the source (and stored unless ``store`` is false) when missing."""
    steps = view.transforms
    found: Statistics = {}
    missing: list[int] = []
    for index in fitted_steps(view):
        stored = registry.fitted_statistics(view.name, step_key(steps, index)) if registry else []
        if stored:
            found[index] = stored[0].stats
        else:
            missing.append(index)
    if not missing:
        return found
    fitted = _fit_from_source(con, view, project, missing, found)
    version = None
    if registry is not None:
        applied = registry.definition("feature_view", view.name)
        version = None if applied is None else applied.version
    for index in missing:
        step = steps[index]
        span = step.fit
        assert span is not None
        record = FittedStatistics(
            view=view.name,
            step_key=step_key(steps, index),
            step=step.label,
            position=index + 1,
            fit_start_ms=span.start_ms,
            fit_end_ms=span.end_ms,
            stats=fitted[index],
            rows=int(fitted[index]["rows"]),
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
                    "fit": span.to_spec(),
                    "stored": store,
                }
            },
        )
    return found


def _fit_from_source(
    con: duckdb.DuckDBPyConnection,
    view: FeatureView,
    project: ProjectConfig,
    missing: list[int],
    known: Statistics,
) -> Statistics:
    """Read the training rows once (the hull of the missing steps' ranges) and fit each
    missing step on them."""
    import pyarrow as pa

    hull = training_range(view, missing)
    cur = con.cursor()  # its own temporary tables, the same database and settings
    try:
        cur.execute("SET TimeZone = 'UTC'")
        connector = open_connector(view.source, project)
        ts = view.source.timestamp_field
        schema = connector.schema()
        index = schema.get_field_index(ts)
        integer = index >= 0 and bool(pa.types.is_integer(schema.field(index).type))
        scan = connector.scan(cur, checkpoint=None)
        relation = scan.relation
        if scan.empty:  # no rows to fit on: the steps' own defaults for empty input
            cur.register("__hw_fit_empty", schema.empty_table())
            relation = "__hw_fit_empty"
        staged = "__hw_fit_rows"
        cur.execute(
            f"CREATE OR REPLACE TEMP TABLE {staged} AS SELECT * FROM {relation} "
            f"WHERE {in_range_sql(ts, integer)}",
            [hull.start_ms, hull.end_ms],
        )
        return fit(cur, view, staged, missing, known, salts=read_salts(view), integer_time=integer)
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
    registry.delete_fitted_statistics(view.name)
    fitted_statistics(con, view, project=project, registry=registry)
    return registry.fitted_statistics(view.name)
