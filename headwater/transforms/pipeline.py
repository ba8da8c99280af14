"""Run a view's cleaning steps on its source rows: in a batch run, per streaming micro-batch,
and on an empty batch at ``apply`` (to check them).

The steps compile to one chain of DuckDB SELECTs (:mod:`headwater.transforms.compile`); a
Python step splits the chain: the rows so far are handed to the function in chunks and its
output becomes the input of the next SQL step. Batch runs stage the result in a temporary
table (DuckDB spills it to disk), so the rows are read once and every later stage sees the same
snapshot.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headwater.definitions.steps import Clip, FillNull, Hash, PythonTransform, Step
from headwater.errors import DefinitionError, RunFailed
from headwater.sql import quote_ident as q
from headwater.transforms.compile import (
    Context,
    Rows,
    check_columns,
    check_types,
    needs,
    step_sql,
    where,
)
from headwater.transforms.statistics import compute_statistics

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.definitions import FeatureView

CHUNK_ROWS = 100_000
"""Most rows a Python transform gets in one call."""
_ids = itertools.count()
_MISSING = re.compile(r'(?:column|Referenced column) "([^"]+)" not found', re.IGNORECASE)
Statistics = dict[int, dict[str, Any]]


def context(view: FeatureView, salts: dict[str, str]) -> Context:
    source = view.source
    return Context(
        view=view.name,
        join_keys=tuple(view.join_keys),
        timestamp_field=source.timestamp_field,
        created_field=source.created_timestamp_field,
        salts=salts,
    )


def read_salts(view: FeatureView) -> dict[str, str]:
    """The salts of the view's ``hash`` steps, from the environment.

    Raises:
        DefinitionError: a salt variable is unset or empty (naming the variable, not a value).
    """
    salts: dict[str, str] = {}
    for position, step in enumerate(view.transforms, start=1):
        if isinstance(step, Hash) and step.salt_env not in salts:
            value = os.environ.get(step.salt_env, "")
            if not value:
                raise DefinitionError(
                    f"view {view.name!r}: transform {position} ({step.label}) reads its salt "
                    f"from the environment variable {step.salt_env}, which is not set",
                    fix=f"export {step.salt_env}=<a long random secret> (keep it stable: "
                    "changing it changes every hash)",
                )
            salts[step.salt_env] = value
    return salts


class Pipeline:
    """The steps of one view, with its salts and fitted statistics.

    ``statistics`` maps a step's index to its fitted statistics; steps with per-run
    statistics compute theirs from the rows they get. ``probe=True`` runs on empty rows to
    learn the columns: statistics are placeholders then.
    """

    def __init__(
        self,
        view: FeatureView,
        salts: dict[str, str],
        statistics: Statistics | None = None,
        *,
        probe: bool = False,
    ) -> None:
        self.view = view
        self.ctx = context(view, salts)
        self.statistics = statistics or {}
        self.probe = probe
        self.removed: dict[str, str] = {}
        self.keep = _kept_columns(view)
        self._converted: set[tuple[int, str, str]] = set()

    def walk(
        self,
        con: duckdb.DuckDBPyConnection,
        rows: Rows,
        call_python: Callable[[int, PythonTransform, Rows], Rows],
        stop: int | None = None,
    ) -> Rows:
        """The rows after the steps before index ``stop`` (all by default)."""
        rows.columns = rows.columns or describe(con, rows, self.ctx.view, None)
        self.removed = {}
        steps = self.view.transforms[:stop]
        for position, step in enumerate(steps, start=1):
            check_columns(self.ctx, position, step, rows, self.removed)
            check_types(self.ctx, position, step, rows)
            self._check_values(con, position, step, rows)
            if isinstance(step, PythonTransform):
                before = set(rows.columns)
                rows = call_python(position, step, rows)
                rows.columns = describe(con, rows, self.ctx.view, (position, step))
                self._check_kept(position, step, before, rows)
                continue
            stats = self.statistics.get(position - 1)
            if needs(step) and stats is None:
                if self.probe:
                    stats = {name: 1.0 for name in needs(step)} | {"rows": 1, "max": 2.0}
                elif step.per_run_statistics:
                    stats = compute_statistics(con, step, rows)
                else:
                    raise AssertionError(f"{step.label} has no fitted statistics")
            rows = step_sql(self.ctx, step, rows, stats)
            rows.columns = describe(con, rows, self.ctx.view, (position, step))
            for column in step.removes:
                self.removed[column] = f"transform {position} ({step.label})"
        return rows

    def _check_values(
        self, con: duckdb.DuckDBPyConnection, position: int, step: Step, rows: Rows
    ) -> None:
        """A fill value or clip bound must convert to its column's type."""
        import duckdb

        if isinstance(step, FillNull) and step.strategy is None:
            values = [step.value]
        elif isinstance(step, Clip):
            values = [v for v in (step.lower, step.upper) if v is not None]
        else:
            return
        kind = rows.columns[step.column]
        for value in values:
            if (position, kind, repr(value)) in self._converted:
                continue
            try:
                con.execute(f"SELECT CAST($1 AS {kind})", [value]).fetchall()
            except duckdb.Error as exc:
                raise DefinitionError(
                    f"{where(self.ctx, position, step)}: {value!r} does not convert to {kind}, "
                    f"the type of column {step.column!r}: {first_line(exc)}",
                    fix="give a value of the column's type, or cast the column first",
                ) from None
            self._converted.add((position, kind, repr(value)))

    def _check_kept(self, position: int, step: Step, before: set[str], rows: Rows) -> None:
        lost = [c for c in self.keep if c in before and c not in rows.columns]
        if lost:
            raise DefinitionError(
                f"{where(self.ctx, position, step)}: the function's rows lack column "
                f"{lost[0]!r}, which the view needs",
                fix="return the table with that column (transform the others)",
            )
        for column in before - set(rows.columns):
            self.removed[column] = f"transform {position} ({step.label})"

    def check_view(self, con: duckdb.DuckDBPyConnection, rows: Rows) -> None:
        """The view's columns must exist after the steps: event time, join keys, aggregation
        inputs, and every column its feature expressions read."""
        import duckdb

        view = self.view
        needed = [
            (view.source.timestamp_field, "timestamp_field"),
            *((key, f"join key of entity {view.entity.name!r}") for key in view.join_keys),
            *(
                (a.column, f"input of aggregation {a.name!r}")
                for a in view.aggregations
                if a.column
            ),
        ]
        if view.has_created_timestamp and view.source.created_timestamp_field:
            needed.append((view.source.created_timestamp_field, "created_timestamp_field"))
        for column, role in needed:
            if column not in rows.columns:
                self._missing(column, f"its {role}", rows)
        for name, expression in view.projections.items():
            try:
                con.execute(
                    f"DESCRIBE SELECT ({expression}) AS {q(name)} FROM ({rows.sql})", rows.params
                ).fetchall()
                continue
            except duckdb.Error as exc:
                error = first_line(exc)
            found = _MISSING.search(error)
            if found:
                self._missing(found.group(1), f"feature {name!r} ({expression!r})", rows)
            raise DefinitionError(
                f"view {view.name!r}: feature {name!r}: expression {expression!r} is invalid "
                f"over the transformed rows: {error}",
                fix=f"write it over the columns the steps leave ({', '.join(rows.columns)})",
            )

    def _missing(self, column: str, role: str, rows: Rows) -> None:
        gone = self.removed.get(column)
        cause = f"{gone} removed it" if gone else "no transform yields it"
        raise DefinitionError(
            f"view {self.view.name!r}: {role} reads column {column!r}, which the rows do not "
            f"have after the transforms ({cause}; columns: {', '.join(rows.columns)})",
            fix="read a column the steps leave, or change the steps",
        )


def describe(
    con: duckdb.DuckDBPyConnection, rows: Rows, view: str, step: tuple[int, Step] | None
) -> dict[str, str]:
    """The columns of ``rows`` (name -> DuckDB type); a step whose SQL does not bind is a
    definition error naming it."""
    import duckdb

    try:
        described = con.execute(f"DESCRIBE {rows.sql}", rows.params).fetchall()
    except duckdb.Error as exc:
        if step is None:
            raise
        raise DefinitionError(
            f"view {view!r}: transform {step[0]} ({step[1].label}) cannot run on these rows: "
            f"{first_line(exc)}",
            fix="check the step's columns and types (steps run in order)",
        ) from None
    return {str(r[0]): str(r[1]) for r in described}


# ---------------------------------------------------------------------- Python steps
def call_function(view: str, position: int, step: PythonTransform, table: pa.Table) -> pa.Table:
    """Call ``step`` on ``table`` in the frame it asked for; return an Arrow table."""
    import pyarrow as pa

    data: Any = table
    if step.frame == "pandas":
        data = table.to_pandas()
    elif step.frame == "polars":
        import polars as pl

        data = pl.from_arrow(table)
    label = f"view {view!r}: transform {position} ({step.label})"
    try:
        result = step.function(data)
    except Exception as exc:
        raise RunFailed(f"{label} raised {type(exc).__name__}: {exc}") from exc
    if isinstance(result, pa.Table):
        return result
    if isinstance(result, pa.RecordBatch):
        return pa.Table.from_batches([result])
    module = type(result).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(result, preserve_index=False)
    if module == "polars":
        return result.to_arrow()
    raise DefinitionError(
        f"{label} returned {type(result).__name__}, not a table",
        fix="return a pyarrow.Table (or a pandas / polars DataFrame)",
    )


def call_in_chunks(view: str, position: int, step: PythonTransform, table: pa.Table) -> pa.Table:
    """The function over ``table`` in chunks of at most :data:`CHUNK_ROWS` rows."""
    import pyarrow as pa

    if table.num_rows <= CHUNK_ROWS:
        return call_function(view, position, step, table)
    parts = [
        call_function(view, position, step, table.slice(start, CHUNK_ROWS))
        for start in range(0, table.num_rows, CHUNK_ROWS)
    ]
    return pa.concat_tables(parts, promote_options="permissive")


def probe_python(
    con: duckdb.DuckDBPyConnection, view: str, registered: list[str]
) -> Callable[[int, PythonTransform, Rows], Rows]:
    """Python steps called on an empty table of the columns they get (at ``apply``)."""

    def call(position: int, step: PythonTransform, rows: Rows) -> Rows:
        empty = con.sql(f"SELECT * FROM ({rows.sql}) LIMIT 0", params=rows.params).to_arrow_table()
        try:
            out = call_function(view, position, step, empty)
        except RunFailed as exc:
            raise DefinitionError(
                f"{exc.message} on an empty table of its input columns",
                fix="make the function accept a table without rows",
            ) from None
        name = f"__hw_tfp{next(_ids)}"
        con.register(name, out)
        registered.append(name)
        return Rows(f"SELECT * FROM {name}", [])

    return call


def _kept_columns(view: FeatureView) -> list[str]:
    source = view.source
    kept = [source.timestamp_field, *view.join_keys, *source.primary_key]
    if source.created_timestamp_field:
        kept.append(source.created_timestamp_field)
    if source.kind == "kafka":
        from headwater.definitions.kafka import KAFKA_OFFSET, KAFKA_PARTITION

        kept += [KAFKA_PARTITION, KAFKA_OFFSET]
    return kept


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__
