"""Compile feature views into DuckDB SQL over a source relation.

The SQL implements the brief's semantics exactly: window arithmetic is in integer milliseconds,
windows align to the epoch and are ``[start, end)``, a window row's ``event_timestamp`` is its
end, a projection row keeps its source's time to the microsecond, a lifetime row stands at the
millisecond at or after its last event (never before a value it includes), and projections keep
one row per (keys, event_timestamp), the greatest created timestamp winning. Rows without an
event time or a join key cannot be placed and are left out; the engine counts them so the run
reports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from headwater.engines.windows import floormod_sql
from headwater.sql import quote_ident as q

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.definitions import Aggregation, FeatureView

_MIN_BIGINT = "(-9223372036854775807 - 1)"


def event_ms_sql(column: str, arrow_type: pa.DataType | None, *, ceil: bool = False) -> str:
    """SQL turning a source time column into epoch milliseconds (integers are taken as ms).

    Finer times are floored to the millisecond (DuckDB's ``epoch_ms`` and casts from
    nanoseconds round, which would move an event just before a window end into the next one):
    the window an event belongs to is the window of its floored time, exactly. With ``ceil``
    they are rounded up instead, for a time that stamps a value (a lifetime aggregation's row):
    a value never stands at a time before an event it includes.
    """
    import pyarrow as pa

    if arrow_type is not None and pa.types.is_integer(arrow_type):
        return f"CAST({q(column)} AS BIGINT)"
    divide = _ceil_div if ceil else _floor_div
    if arrow_type is not None and pa.types.is_timestamp(arrow_type) and arrow_type.unit == "ns":
        return divide(f"epoch_ns({q(column)})", 1_000_000)
    return divide(f"epoch_us(CAST({q(column)} AS TIMESTAMPTZ))", 1_000)


def event_us_sql(column: str, arrow_type: pa.DataType | None) -> str:
    """SQL turning a source time column into epoch microseconds, the precision of DuckDB's
    and the offline stores' timestamps: a finer (nanosecond) time is rounded up, never down,
    so no point-in-time join can take the value before its time (decision 26)."""
    import pyarrow as pa

    if arrow_type is not None and pa.types.is_integer(arrow_type):
        return f"(CAST({q(column)} AS BIGINT) * 1000)"
    if arrow_type is not None and pa.types.is_timestamp(arrow_type) and arrow_type.unit == "ns":
        return _ceil_div(f"epoch_ns({q(column)})", 1_000)
    return f"epoch_us(CAST({q(column)} AS TIMESTAMPTZ))"


def _floor_div(expr: str, divisor: int) -> str:
    """SQL for ``floor(expr / divisor)`` on integers (DuckDB's ``//`` truncates toward zero)."""
    return f"((({expr}) - {floormod_sql(expr, divisor)}) // {divisor})"


def _ceil_div(expr: str, divisor: int) -> str:
    """SQL for ``ceil(expr / divisor)`` on integers."""
    return f"(-{_floor_div(f'-({expr})', divisor)})"


def ms_to_ts_sql(expr: str) -> str:
    """SQL for the instant ``expr`` epoch milliseconds stand for, as a ``TIMESTAMPTZ``.

    Built from microseconds: a cast of ``epoch_ms``'s naive timestamp would read it in the
    session's time zone, row by row (about ten times slower, and wrong outside UTC)."""
    return f"make_timestamptz(CAST({expr} AS BIGINT) * 1000)"


def us_to_ts_sql(expr: str) -> str:
    """SQL for the instant ``expr`` epoch microseconds stand for, as a ``TIMESTAMPTZ``."""
    return f"make_timestamptz(CAST({expr} AS BIGINT))"


@dataclass(frozen=True)
class Restriction:
    """Limit an aggregation to some (keys, window start) pairs, or keys for lifetime views.

    ``relation`` names a registered relation with the join keys and, for windowed views, a
    ``__ws`` column of window starts in ms. ``min_ts``/``max_ts`` bound the events read.
    """

    relation: str
    min_ts: int
    max_ts: int


def compile_view(
    view: FeatureView,
    relation: str,
    schema: pa.Schema,
    restriction: Restriction | None = None,
    time_range: tuple[int, int] | None = None,
) -> str:
    """The SELECT computing ``view``'s output rows from ``relation`` (with ``schema``).

    ``time_range`` ``(start_ms, end_ms)`` limits the output to rows whose event_timestamp is in
    ``[start, end)``, reading only the events those rows need (a backfill of a period).
    """
    if time_range is not None:
        start, end = time_range
        inner = compile_view(
            view, _events_for(view, relation, schema, start, end), schema, restriction
        )
        return f"SELECT * FROM ({inner}) WHERE {_in_period(start, end)}"
    keys = ", ".join(q(k) for k in view.join_keys)
    ts_type = _type_of(schema, view.source.timestamp_field)
    ts_ms = event_ms_sql(view.source.timestamp_field, ts_type)
    valid = _placeable(view)
    if view.kind == "projection":
        return _projection(view, relation, schema, keys, valid)
    if view.window is None:
        # A lifetime row stands at its last event's time: rounded up, never before it.
        ts_ms = event_ms_sql(view.source.timestamp_field, ts_type, ceil=True)
    cts = view.source.created_timestamp_field
    cts_ms = event_ms_sql(cts, _type_of(schema, cts)) if cts and cts in schema.names else "NULL"
    inputs = sorted({a.column for a in view.aggregations if a.column})
    event_cols = ", ".join(
        [keys, f"{ts_ms} AS __ts", f"CAST({cts_ms} AS BIGINT) AS __cts"] + [q(c) for c in inputs]
    )
    where = valid
    if restriction is not None:
        where += (
            f" AND ({keys}) IN (SELECT {keys} FROM {restriction.relation})"
            f" AND {ts_ms} >= {restriction.min_ts} AND {ts_ms} < {restriction.max_ts}"
        )
    events = f"SELECT {event_cols} FROM {relation} WHERE {where}"
    if view.window is None:
        return _lifetime(view, events, keys, schema)
    return _windowed(view, events, keys, schema, restriction)


def _in_period(start: int, end: int) -> str:
    """The condition of output rows whose event_timestamp is in ``[start, end)`` (ms)."""
    return (
        f"event_timestamp >= {ms_to_ts_sql(str(start))} "
        f"AND event_timestamp < {ms_to_ts_sql(str(end))}"
    )


def _placeable(view: FeatureView) -> str:
    """The condition of rows that have an event time and every join key."""
    columns = [view.source.timestamp_field, *view.join_keys]
    return " AND ".join(f"{q(c)} IS NOT NULL" for c in columns)


def _events_for(view: FeatureView, relation: str, schema: pa.Schema, start: int, end: int) -> str:
    """A sub-select of ``relation`` holding the events that rows in ``[start, end)`` need."""
    ts_type = _type_of(schema, view.source.timestamp_field)
    ts_ms = event_ms_sql(view.source.timestamp_field, ts_type)
    if view.kind == "projection":  # its rows keep the source's microseconds: compare those
        ts_us = event_us_sql(view.source.timestamp_field, ts_type)
        return (
            f"(SELECT * FROM {relation} WHERE {ts_us} >= {start * 1000} AND {ts_us} < {end * 1000})"
        )
    if view.window is None:
        low: int | None = None  # lifetime rows need every earlier event
    else:
        low = start - (view.window_ms or (0, 0))[0]
    where = f"{ts_ms} < {end}" + (f" AND {ts_ms} >= {low}" if low is not None else "")
    return f"(SELECT * FROM {relation} WHERE {where})"


def _type_of(schema: pa.Schema, column: str) -> pa.DataType | None:
    index = schema.get_field_index(column)
    return None if index < 0 else schema.field(index).type


def _projection(view: FeatureView, relation: str, schema: pa.Schema, keys: str, valid: str) -> str:
    rows, order = _projection_rows(view, relation, schema, keys, valid)
    return (
        f"SELECT * FROM ({rows}) QUALIFY row_number() OVER (PARTITION BY {keys}, event_timestamp "
        f"ORDER BY {', '.join(order)}) = 1"
    )


def _projection_rows(
    view: FeatureView, relation: str, schema: pa.Schema, keys: str, valid: str
) -> tuple[str, list[str]]:
    """The rows of a projection before they are reduced to one per (keys, event_timestamp),
    and the order that picks that one: greatest created timestamp, then feature values."""
    cts = view.source.created_timestamp_field
    # The source's own precision (microseconds): a row never stands before its time.
    ts_us = event_us_sql(view.source.timestamp_field, _type_of(schema, view.source.timestamp_field))
    columns = [keys, f"{us_to_ts_sql(ts_us)} AS event_timestamp"]
    order = []
    if view.has_created_timestamp and cts:
        cts_us = event_us_sql(cts, _type_of(schema, cts))
        columns.append(f"{us_to_ts_sql(cts_us)} AS created_timestamp")
        order.append("created_timestamp DESC NULLS LAST")
    columns += [f"({expr}) AS {q(name)}" for name, expr in view.projections.items()]
    # Exact duplicates on (keys, time, created) resolve by feature values: deterministic.
    order += [f"{q(name)} DESC NULLS LAST" for name in view.projections]
    return f"SELECT {', '.join(columns)} FROM {relation} WHERE {valid}", order


@dataclass(frozen=True)
class Ordered:
    """A view's output rows in ``event_timestamp`` order (see :func:`compile_ordered`).

    Attributes:
        sql: the SELECT, ordered by ``event_timestamp`` (then the join keys, for projections).
        run: columns whose runs of equal values stand for one output row (empty when the
            SELECT's rows are unique): :meth:`picks` chooses it.
        order: the order choosing a run's row (the first in it).
    """

    sql: str
    run: tuple[str, ...] = ()
    order: tuple[str, ...] = ()

    def picks(self, relation: str, position: str) -> str:
        """The SELECT of ``position`` of the row chosen in each run of ``relation`` (rows of
        the SELECT, with a ``position`` column)."""
        partition = ", ".join(q(c) for c in self.run)
        return (
            f"SELECT {q(position)} FROM {relation} QUALIFY row_number() OVER "
            f"(PARTITION BY {partition} ORDER BY {', '.join(self.order)}) = 1"
        )


def compile_ordered(
    view: FeatureView,
    relation: str,
    schema: pa.Schema,
    restriction: Restriction | None = None,
    time_range: tuple[int, int] | None = None,
) -> Ordered:
    """:func:`compile_view`'s rows ordered by ``event_timestamp``, for writers that store them
    by event date and so need them in that order anyway.

    A projection keeps one row per (keys, event_timestamp), chosen by an order. Here the sort
    that puts the rows in time order puts the keys after the time, so the rows of one (keys,
    event_timestamp) come together, in runs: one sort does the work of two (the window's and
    the writer's), and the order chooses a row only in the rare runs of more than one row
    (:meth:`Ordered.picks`). That holds when the keys compare in Arrow as in DuckDB
    (:func:`run_key`); other keys, and aggregations (one row per group already), sort
    :func:`compile_view`'s rows.
    """
    keys = [*view.join_keys]
    types = [_type_of(schema, k) for k in keys]
    if view.kind != "projection" or restriction is not None or not all(map(run_key, types)):
        inner = compile_view(view, relation, schema, restriction, time_range)
        return Ordered(f"SELECT * FROM ({inner}) ORDER BY event_timestamp")
    where = ""
    if time_range is not None:
        start, end = time_range
        relation = _events_for(view, relation, schema, start, end)
        where = f" WHERE {_in_period(start, end)}"
    quoted = ", ".join(q(k) for k in keys)
    rows, order = _projection_rows(view, relation, schema, quoted, _placeable(view))
    return Ordered(
        f"SELECT * FROM ({rows}){where} ORDER BY event_timestamp, {quoted}",
        run=(*keys, "event_timestamp"),
        order=tuple(order),
    )


def run_key(arrow_type: pa.DataType | None) -> bool:
    """Whether a join key of this type can tell runs apart in Arrow: equal in Arrow exactly when
    DuckDB puts the values in one partition (NaNs aside, which the reader handles)."""
    import pyarrow as pa

    if arrow_type is None:
        return False
    checks = (
        pa.types.is_integer,
        pa.types.is_floating,
        pa.types.is_decimal,
        pa.types.is_string,
        pa.types.is_large_string,
        pa.types.is_binary,
        pa.types.is_large_binary,
        pa.types.is_boolean,
        pa.types.is_date,
        pa.types.is_timestamp,
        pa.types.is_time,
    )
    return any(check(arrow_type) for check in checks)


def _aggregate_sql(agg: Aggregation, schema: pa.Schema, over: str = "") -> str:
    import pyarrow as pa

    col = q(agg.column) if agg.column else ""
    function = agg.function
    if function == "count":
        expr = f"count({col or '*'}){over}"
    elif function == "count_distinct":
        expr = f"count(DISTINCT {col}){over}"
    elif function == "avg":
        expr = f"CAST(avg({col}){over} AS DOUBLE)"
    elif function == "sum":
        expr = f"sum({col}){over}"
        col_type = _type_of(schema, agg.column or "")
        if col_type is not None and pa.types.is_integer(col_type):
            expr = f"CAST({expr} AS BIGINT)"
    elif function == "last":
        packed = f"struct_pack(t := __ts, c := coalesce(__cts, {_MIN_BIGINT}), v := {col})"
        expr = f"(max({packed}) FILTER (WHERE {col} IS NOT NULL){over}).v"
    else:  # min, max
        expr = f"{function}({col}){over}"
    return f"{expr} AS {q(agg.name)}"


def _windowed(
    view: FeatureView,
    events: str,
    keys: str,
    schema: pa.Schema,
    restriction: Restriction | None,
) -> str:
    size, hop = view.window_ms or (0, 0)
    last_start = f"(__ts - {floormod_sql('__ts', hop)})"
    if size == hop:
        assigned = f"SELECT *, {last_start} AS __ws FROM ({events})"
    else:
        assigned = (
            f"SELECT e.*, {last_start} - __hw_i.i * {hop} AS __ws "
            f"FROM ({events}) AS e CROSS JOIN range(0, {size // hop}) AS __hw_i(i)"
        )
    aggs = ", ".join(_aggregate_sql(a, schema) for a in view.aggregations)
    having = ""
    if restriction is not None:
        having = f" HAVING ({keys}, __ws) IN (SELECT {keys}, __ws FROM {restriction.relation})"
    return (
        f"SELECT {keys}, {ms_to_ts_sql(f'__ws + {size}')} AS event_timestamp, {aggs} "
        f"FROM ({assigned}) GROUP BY {keys}, __ws{having}"
    )


def _lifetime(view: FeatureView, events: str, keys: str, schema: pa.Schema) -> str:
    over = (
        f" OVER (PARTITION BY {keys} ORDER BY __ts "
        "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
    )
    aggs = ", ".join(_aggregate_sql(a, schema, over) for a in view.aggregations)
    return (
        f"SELECT {keys}, {ms_to_ts_sql('__ts')} AS event_timestamp, {aggs} FROM ({events}) "
        f"QUALIFY row_number() OVER (PARTITION BY {keys}, __ts ORDER BY __ts) = 1"
    )
