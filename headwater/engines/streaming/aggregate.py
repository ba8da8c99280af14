"""SQL for streaming aggregation: partial aggregates per window, their merge, and final values.

Window state holds rows per (partition, entity keys, window start) with *partial* aggregates
that can be combined in any order (a group may have several rows, one per micro-batch that
touched it, until they are merged): a count, a sum, a min or max, the ``(time, created, value)``
struct of ``Last``, the list of distinct values of ``CountDistinct``. Nothing else of an event is
kept. Finalising a row casts exactly as the batch compiler does (:mod:`headwater.engines.compile`),
so a closed window gives the very row the batch engine computes.

Lifetime views keep, per entity, a *base* row (``__ws`` NULL: everything already emitted) and
pending rows per distinct event time (``__ws`` = the event time). Emitting folds the pending
rows into the base in time order, one output row per distinct event time, as the batch engine's
running window does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from headwater.engines.compile import event_ms_sql, ms_to_ts_sql
from headwater.engines.windows import floormod_sql
from headwater.sql import quote_ident as q

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.definitions import Aggregation, FeatureView

PARTITION = "__p"
WINDOW = "__ws"
OFFSET = "__o"
_MIN_BIGINT = "(-9223372036854775807 - 1)"


@dataclass(frozen=True)
class _Part:
    name: str
    merge: str  # how two partial rows combine (over a GROUP BY)
    running: str  # the same, as a running window aggregate (``{over}`` slot)


def _parts(index: int, agg: Aggregation) -> list[_Part]:
    base = f"__a{index}"
    n, s, v, last, distinct = (f"{base}_{x}" for x in ("n", "s", "v", "l", "d"))
    function = agg.function
    if function == "count":
        return [_Part(n, f"CAST(sum({q(n)}) AS BIGINT)", f"CAST(sum({q(n)}) {{over}} AS BIGINT)")]
    if function == "sum":
        return [_Part(s, f"sum({q(s)})", f"sum({q(s)}) {{over}}")]
    if function == "avg":
        return [
            _Part(s, f"sum({q(s)})", f"sum({q(s)}) {{over}}"),
            _Part(n, f"CAST(sum({q(n)}) AS BIGINT)", f"CAST(sum({q(n)}) {{over}} AS BIGINT)"),
        ]
    if function in ("min", "max"):
        return [_Part(v, f"{function}({q(v)})", f"{function}({q(v)}) {{over}}")]
    if function == "last":
        return [_Part(last, f"max({q(last)})", f"max({q(last)}) {{over}}")]
    # count_distinct: the distinct values themselves, and their count while the row is one
    # micro-batch's partial (NULL once merged: read from the values then)
    return [
        _Part(
            distinct,
            f"list_distinct(flatten(list({q(distinct)})))",
            f"list_distinct(flatten(list({q(distinct)}) {{over}}))",
        ),
        _Part(f"{base}_c", "NULL::BIGINT", "NULL::BIGINT"),
    ]


def _partial_exprs(index: int, agg: Aggregation, whole: frozenset[str] = frozenset()) -> list[str]:
    """Partial aggregates of ``agg`` over the events of one group (``whole``: columns known to
    hold no null, which need no filter)."""
    base = f"__a{index}"
    col = q(agg.column) if agg.column else ""
    function = agg.function
    if function == "count":
        return [f"count({col or '*'}) AS {q(base + '_n')}"]
    if function == "sum":
        return [f"sum({col}) AS {q(base + '_s')}"]
    if function == "avg":
        return [f"sum({col}) AS {q(base + '_s')}", f"count({col}) AS {q(base + '_n')}"]
    if function in ("min", "max"):
        return [f"{function}({col}) AS {q(base + '_v')}"]
    present = "" if agg.column in whole else f" FILTER (WHERE {col} IS NOT NULL)"
    if function == "last":
        packed = f"struct_pack(t := __ts, c := coalesce(__cts, {_MIN_BIGINT}), v := {col})"
        return [f"max({packed}){present} AS {q(base + '_l')}"]
    values = f"list(DISTINCT {col}){present}"
    return [f"{values} AS {q(base + '_d')}", f"len({values}) AS {q(base + '_c')}"]


def _final_expr(index: int, agg: Aggregation, schema: pa.Schema, counted: bool = False) -> str:
    """The feature value from merged partials, typed as the batch engine types it
    (``counted``: rows a single micro-batch wrote, whose distinct values are counted already)."""
    import pyarrow as pa

    base = f"__a{index}"
    function = agg.function
    if function == "count":
        expr = f"coalesce({q(base + '_n')}, 0)"
    elif function == "sum":
        expr = q(base + "_s")
        index_col = schema.get_field_index(agg.column or "")
        if index_col >= 0 and pa.types.is_integer(schema.field(index_col).type):
            expr = f"CAST({expr} AS BIGINT)"
    elif function == "avg":
        s, n = q(base + "_s"), q(base + "_n")
        expr = f"CASE WHEN {n} > 0 THEN CAST({s} AS DOUBLE) / {n} END"
    elif function in ("min", "max"):
        expr = q(base + "_v")
    elif function == "last":
        expr = f"({q(base + '_l')}).v"
    elif counted:
        expr = f"coalesce({q(base + '_c')}, 0)"
    else:
        expr = f"CAST(coalesce(len({q(base + '_d')}), 0) AS BIGINT)"
    return f"{expr} AS {q(agg.name)}"


class StreamAggregation:
    """The SQL of one aggregation view over micro-batches of events."""

    def __init__(self, view: FeatureView, schema: pa.Schema) -> None:
        self.view = view
        self.schema = schema
        self.keys = ", ".join(q(k) for k in view.join_keys)
        window = view.window_ms
        self.lifetime = window is None
        self.size, self.hop = window if window is not None else (1, 1)
        self.parts = [p for i, a in enumerate(view.aggregations) for p in _parts(i, a)]
        source = view.source
        ts_index = schema.get_field_index(source.timestamp_field)
        # A lifetime row stands at its last event's time, rounded up (as in batch).
        self.ts_ms = event_ms_sql(
            source.timestamp_field,
            schema.field(ts_index).type if ts_index >= 0 else None,
            ceil=self.lifetime,
        )
        cts = source.created_timestamp_field
        cts_index = schema.get_field_index(cts) if cts else -1
        self.cts_ms = (
            event_ms_sql(cts, schema.field(cts_index).type) if cts and cts_index >= 0 else "NULL"
        )

    # ------------------------------------------------------------------ events
    def events_sql(self, relation: str, partition_col: str, offset_col: str) -> str:
        """Events with their event time in ms (``__ts``), created time, partition and offset,
        leaving out rows without an event time or a join key (as the batch engine does)."""
        view = self.view
        inputs = sorted({a.column for a in view.aggregations if a.column})
        valid = " AND ".join(
            [f"{q(view.source.timestamp_field)} IS NOT NULL"]
            + [f"{q(k)} IS NOT NULL" for k in view.join_keys]
        )
        columns = [
            f"CAST({q(partition_col)} AS INTEGER) AS {PARTITION}",
            f"CAST({q(offset_col)} AS BIGINT) AS {OFFSET}",
            self.keys,
            f"{self.ts_ms} AS __ts",
            f"CAST({self.cts_ms} AS BIGINT) AS __cts",
            *(q(c) for c in inputs),
        ]
        return f"SELECT {', '.join(columns)} FROM {relation} WHERE {valid}"

    def last_window_end(self, ts: int) -> int:
        """:meth:`last_window_end_sql` of one event time."""
        if self.lifetime:
            return ts + 1
        return ts - ts % self.hop + self.size

    def last_window_end_sql(self) -> str:
        """For an event row (``__ts``): the end of the last window it belongs to. The event is
        late when that window has already closed."""
        if self.lifetime:
            return "(__ts + 1)"
        return f"(__ts - {floormod_sql('__ts', self.hop)} + {self.size})"

    # ------------------------------------------------------------------ partials
    def partials_sql(
        self, events: str, closed: str | None, whole: frozenset[str] = frozenset()
    ) -> str:
        """Partial aggregates per (partition, keys, window start) of the events in ``events``,
        skipping windows already closed: ``closed`` is a relation ``(__p, __closed)`` giving
        each partition's closed-through time (windows ending at or before it are closed;
        ``None``: no event falls in a closed window). ``whole``: input columns without nulls."""
        aggs = ", ".join(
            e for i, a in enumerate(self.view.aggregations) for e in _partial_exprs(i, a, whole)
        )
        if self.lifetime:
            assigned = f"SELECT *, __ts AS {WINDOW} FROM ({events})"
            end = f"{WINDOW} + 1"
        elif self.size == self.hop:
            assigned = (
                f"SELECT *, __ts - {floormod_sql('__ts', self.hop)} AS {WINDOW} FROM ({events})"
            )
            end = f"{WINDOW} + {self.size}"
        else:
            assigned = (
                f"SELECT e.*, __ts - {floormod_sql('__ts', self.hop)} - __hw_i.i * {self.hop} "
                f"AS {WINDOW} FROM ({events}) AS e "
                f"CROSS JOIN range(0, {self.size // self.hop}) AS __hw_i(i)"
            )
            end = f"{WINDOW} + {self.size}"
        open_only = (
            ""
            if closed is None
            else f"LEFT JOIN {closed} AS c ON c.{PARTITION} = a.{PARTITION} "
            f"WHERE c.__closed IS NULL OR {end} > c.__closed "
        )
        return (
            f"SELECT a.{PARTITION}, {self._prefixed('a')}, a.{WINDOW}, {aggs} "
            f"FROM ({assigned}) AS a {open_only}"
            f"GROUP BY a.{PARTITION}, {self._prefixed('a')}, a.{WINDOW}"
        )

    @property
    def hopping(self) -> bool:
        """Whether an event belongs to several windows (some may be closed, others open)."""
        return not self.lifetime and self.size != self.hop

    def _prefixed(self, alias: str) -> str:
        return ", ".join(f"{alias}.{q(k)}" for k in self.view.join_keys)

    def merge_sql(self, rows: str) -> str:
        """The partial rows in ``rows`` combined into one row per group
        (partition, keys, window start)."""
        merges = ", ".join(f"{p.merge} AS {q(p.name)}" for p in self.parts)
        group = f"{PARTITION}, {self.keys}, {WINDOW}"
        return f"SELECT {group}, {merges} FROM {rows} GROUP BY {group}"

    def closing_output_sql(self, rows: str, batch: str) -> str:
        """Output rows of the windows (not lifetime views) in ``rows``, whose column ``batch``
        says which micro-batch appended a row (NULL: unknown, restored or merged). A window
        whose rows one micro-batch appended holds one row per group — most windows, when
        micro-batches are longer than windows: those rows go out as they are (distinct values
        counted already), and only the rows of the other windows are merged (merging lists is
        the costly part)."""
        one = f"bool_and({batch} IS NOT NULL) AND min({batch}) = max({batch})"
        windows = (
            f"SELECT {PARTITION}, {WINDOW}, {one} AS __one FROM {rows} "
            f"GROUP BY {PARTITION}, {WINDOW}"
        )
        on = f"r.{PARTITION} = w.{PARTITION} AND r.{WINDOW} = w.{WINDOW}"
        single = f"(SELECT r.* FROM {rows} AS r SEMI JOIN __hw_w AS w ON {on} AND w.__one)"
        several = f"(SELECT r.* FROM {rows} AS r SEMI JOIN __hw_w AS w ON {on} AND NOT w.__one)"
        return (
            f"WITH __hw_w AS ({windows}) {self.output_sql(single, counted=True)} "
            f"UNION ALL {self.output_sql(f'({self.merge_sql(several)})')}"
        )

    # ------------------------------------------------------------------ output
    def final_columns(self, counted: bool = False) -> str:
        return ", ".join(
            _final_expr(i, a, self.schema, counted) for i, a in enumerate(self.view.aggregations)
        )

    def output_sql(self, rows: str, counted: bool = False) -> str:
        """Output rows (keys, event_timestamp, features) of merged window rows in ``rows``
        (``counted``: rows as one micro-batch wrote them, which need not read distinct values)."""
        end = f"{WINDOW} + {self.size}"
        return (
            f"SELECT {self.keys}, {ms_to_ts_sql(end)} AS event_timestamp, "
            f"{self.final_columns(counted)} FROM {rows}"
        )

    def closing_predicate(self) -> str:
        """Rows of the state (joined with ``(__p, __closed)`` as ``c``) whose window closed."""
        if self.lifetime:
            return f"{WINDOW} IS NOT NULL AND {WINDOW} + 1 <= c.__closed"
        return f"{WINDOW} + {self.size} <= c.__closed"

    def lifetime_fold_sql(self, rows: str) -> str:
        """For lifetime views: running values over ``rows`` (base rows first, then pending rows
        in event-time order), one row per (partition, keys, event time)."""
        over = (
            f"OVER (PARTITION BY {PARTITION}, {self.keys} ORDER BY {WINDOW} NULLS FIRST "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
        )
        running = ", ".join(f"{p.running.format(over=over)} AS {q(p.name)}" for p in self.parts)
        return f"SELECT {PARTITION}, {self.keys}, {WINDOW}, {running} FROM {rows}"

    def lifetime_output_sql(self, folded: str) -> str:
        return (
            f"SELECT {self.keys}, {ms_to_ts_sql(WINDOW)} AS event_timestamp, "
            f"{self.final_columns()} FROM {folded} WHERE {WINDOW} IS NOT NULL"
        )
