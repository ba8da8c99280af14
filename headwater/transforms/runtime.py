"""Where the engines call cleaning transforms: once per batch run, per streaming micro-batch,
and at ``apply``.

* :func:`apply_transforms` — the batch runner, on the source rows that passed the checks;
* :class:`StreamTransforms` — the streaming worker: built once (it refuses steps that have no
  per-micro-batch meaning and loads the fitted statistics), then ``apply(table)`` per batch;
* :func:`validate` — ``apply``: the steps on an empty batch with the source's columns, returning
  the columns the view computes from.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from headwater.definitions.steps import PythonTransform
from headwater.errors import DefinitionError, RunFailed
from headwater.observability import get_logger
from headwater.transforms.compile import Rows
from headwater.transforms.pipeline import (
    CHUNK_ROWS,
    Pipeline,
    call_function,
    call_in_chunks,
    first_line,
    probe_python,
    read_salts,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.definitions import FeatureView
    from headwater.transforms.statistics import Statistics

log = get_logger("transforms")
_ids = itertools.count()
PythonCall = Callable[[int, PythonTransform, Rows], Rows]


@dataclass
class Transformed:
    """The rows a batch run computes from.

    Attributes:
        relation: a DuckDB relation of the transformed rows (the input itself without steps).
        rows_in: rows the steps got.
        rows_out: rows they left (fewer after ``dedupe`` or ``pivot``, more after ``unpivot``).
    """

    relation: str
    rows_in: int = 0
    rows_out: int = 0

    @property
    def rows_removed(self) -> int:
        return self.rows_in - self.rows_out


def apply_transforms(
    con: duckdb.DuckDBPyConnection,
    view: FeatureView,
    relation: str,
    *,
    statistics: Statistics | None = None,
    run_id: str = "",
) -> Transformed:
    """Run the view's steps on ``relation`` (the source rows of a run, after its checks).

    ``statistics`` are the fitted statistics of the steps that have a fit range (see
    :mod:`headwater.orchestration.fitting`); steps with per-run statistics compute theirs from
    the rows. The result is staged in a temporary table of ``con``.

    Raises:
        DefinitionError: a salt is unset, a step names a column the rows lack, or the view
            reads a column the steps removed — naming the view, the step and the column.
        RunFailed: a Python step raised.
    """
    if not view.transforms:
        return Transformed(relation)
    import duckdb

    salts = read_salts(view)
    pipeline = Pipeline(view, salts, statistics or {})
    staged: list[str] = []
    try:
        rows = pipeline.walk(
            con, Rows(f"SELECT * FROM {relation}"), batch_python(con, view.name, staged)
        )
        pipeline.check_view(con, rows)
        output = f"__hw_tf{next(_ids)}"
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {output} AS {rows.sql}", rows.params)
        except duckdb.Error as exc:
            raise RunFailed(
                f"view {view.name!r}: the transforms failed on the rows: {first_line(exc)}",
                fix="correct the data, cast with on_error='null', or set bad rows aside first "
                "with a source check (severity='quarantine')",
            ) from None
    finally:
        for name in staged:
            con.execute(f"DROP TABLE IF EXISTS main.{name}")
    rows_in = _count(con, relation)
    result = Transformed(output, rows_in, _count(con, output))
    log.info(
        "transforms applied",
        extra={
            "fields": {
                "view": view.name,
                "run_id": run_id,
                "steps": [s.label for s in view.transforms],
                "rows_in": result.rows_in,
                "rows_out": result.rows_out,
            }
        },
    )
    return result


def validate(view: FeatureView, source_schema: pa.Schema) -> pa.Schema:
    """Check the view's steps against its source's columns (at ``apply``); return the columns
    after them — what the view's features and aggregations are computed from.

    Raises:
        DefinitionError: a salt variable is unset, a step names a column that does not exist
            at that step or has the wrong type, a Python step fails on an empty table, or the
            view reads a column the steps removed.
    """
    if not view.transforms:
        return source_schema
    import duckdb

    salts = read_salts(view)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("__hw_tf_source", source_schema.empty_table())
        pipeline = Pipeline(view, salts, probe=True)
        registered: list[str] = []
        rows = pipeline.walk(
            con, Rows("SELECT * FROM __hw_tf_source"), probe_python(con, view.name, registered)
        )
        pipeline.check_view(con, rows)
        empty = con.sql(f"SELECT * FROM ({rows.sql}) LIMIT 0", params=rows.params)
        return empty.to_arrow_table().schema
    finally:
        con.close()


class StreamTransforms:
    """The steps of a streaming view, applied to each decoded micro-batch.

    Built when the worker starts: steps without a per-micro-batch meaning are refused
    (:func:`check_streaming`), salts are read, and the fitted statistics given are kept. Every
    micro-batch then runs the same SQL as a batch run, with the same numbers.
    """

    def __init__(
        self,
        view: FeatureView,
        *,
        con: duckdb.DuckDBPyConnection,
        statistics: Statistics | None = None,
    ) -> None:
        self.view = view
        self.con = con
        self._schemas: dict[pa.Schema, pa.Schema] = {}
        if not view.transforms:
            return
        check_streaming(view)
        salts = read_salts(view)
        self.pipeline = Pipeline(view, salts, statistics or {})

    def schema(self, schema: pa.Schema) -> pa.Schema:
        """The columns of a micro-batch with ``schema`` after the steps."""
        if not self.view.transforms:
            return schema
        if schema not in self._schemas:
            self._schemas[schema] = self.apply(schema.empty_table()).schema
        return self._schemas[schema]

    def apply(self, table: pa.Table) -> pa.Table:
        """The micro-batch ``table`` after the steps."""
        if not self.view.transforms:
            return table
        con = self.con
        name = f"__hw_tfb{next(_ids)}"
        registered = [name]
        con.register(name, table)
        try:
            rows = self.pipeline.walk(
                con, Rows(f"SELECT * FROM {name}"), _table_python(con, self.view.name, registered)
            )
            return con.sql(rows.sql, params=rows.params).to_arrow_table()
        finally:
            for each in registered:
                con.unregister(each)


def check_streaming(view: FeatureView) -> None:
    """Refuse the steps that have no meaning per micro-batch (``dedupe``, ``pivot``,
    ``fill_null`` with ``"previous"``, and statistics computed per run — ``mean`` / ``median``
    fills and ``outliers`` without ``fit=``), so a streaming view never runs them differently.

    Raises:
        DefinitionError: naming the view, the step and what to do instead.
    """
    for position, step in enumerate(view.transforms, start=1):
        if not step.streaming:
            raise DefinitionError(
                f"view {view.name!r}: transform {position} ({step.label}) has no meaning "
                "per micro-batch, so a streaming view cannot run it: "
                + _why_not_streaming(step.kind),
                fix="compute the view in batch (`headwater run`), or drop the step from "
                "the streaming view" + _streaming_fix(step.kind),
            )


def batch_python(con: duckdb.DuckDBPyConnection, view: str, staged: list[str]) -> PythonCall:
    """Python steps in a batch run: the rows so far are staged, read back in chunks of
    :data:`CHUNK_ROWS` through a second connection, and the function's output is appended to
    a table (names of the tables created go to ``staged``)."""
    import pyarrow as pa

    def call(position: int, step: PythonTransform, rows: Rows) -> Rows:
        source, target = f"__hw_tfin{next(_ids)}", f"__hw_tfout{next(_ids)}"
        con.execute(f"CREATE TABLE main.{source} AS {rows.sql}", rows.params)
        staged.append(source)
        reader_con = con.cursor()
        created = False
        try:
            reader = reader_con.sql(f"SELECT * FROM main.{source}").to_arrow_reader(CHUNK_ROWS)
            for batch in reader:
                if batch.num_rows == 0:
                    continue
                out = call_function(view, position, step, pa.Table.from_batches([batch]))
                _append(con, target, out, created)
                created = True
            if not created:
                out = call_function(view, position, step, reader.schema.empty_table())
                _append(con, target, out, False)
        finally:
            reader_con.close()
        staged.append(target)
        con.execute(f"DROP TABLE main.{source}")
        return Rows(f"SELECT * FROM main.{target}")

    return call


def _append(con: duckdb.DuckDBPyConnection, target: str, table: pa.Table, exists: bool) -> None:
    chunk = f"__hw_tfchunk{next(_ids)}"
    con.register(chunk, table)
    try:
        if exists:
            con.execute(f"INSERT INTO main.{target} BY NAME SELECT * FROM {chunk}")
        else:
            con.execute(f"CREATE TABLE main.{target} AS SELECT * FROM {chunk}")
    finally:
        con.unregister(chunk)


def _table_python(con: duckdb.DuckDBPyConnection, view: str, registered: list[str]) -> PythonCall:
    """Python steps on a micro-batch: the rows so far as one Arrow table (in chunks of at most
    :data:`CHUNK_ROWS`, as in batch)."""

    def call(position: int, step: PythonTransform, rows: Rows) -> Rows:
        table = con.sql(rows.sql, params=rows.params).to_arrow_table()
        out = call_in_chunks(view, position, step, table)
        name = f"__hw_tfp{next(_ids)}"
        con.register(name, out)
        registered.append(name)
        return Rows(f"SELECT * FROM {name}")

    return call


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    return int(con.sql(f"SELECT count(*) FROM {relation}").fetchall()[0][0])


def _why_not_streaming(kind: str) -> str:
    return {
        "dedupe": "it keeps one row per key over all rows, and a micro-batch holds a few",
        "pivot": "it groups rows, and a micro-batch holds a few of each group",
        "fill_null": "'previous' needs the rows before, and statistics of one micro-batch "
        "would differ from every other's",
        "outliers": "its bounds would come from each micro-batch's own rows",
    }.get(kind, "it needs more rows than a micro-batch holds")


def _streaming_fix(kind: str) -> str:
    if kind in ("fill_null", "outliers"):
        return (
            '; for mean/median fills and outliers, give fit=("start", "end") so the '
            "statistics are fitted once and stored"
        )
    if kind == "dedupe":
        return "; the offline store already keeps one row per (keys, event_timestamp)"
    return ""
