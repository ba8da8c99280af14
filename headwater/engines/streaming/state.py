"""Window state of one streaming view, per Kafka partition, held in DuckDB.

Rows are partial aggregates per (partition, entity keys, window start). Each partition also has
a *closed-through* time: every window ending at or before it has been emitted and freed, and an
event all of whose windows ended by then is late. A partition's state is saved as one Arrow IPC
blob together with its offset, so a worker that takes the partition over (after a crash or a
rebalance) resumes exactly where the last commit left it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from headwater.definitions.naming import quote_ident as q
from headwater.engines.streaming.aggregate import OFFSET, PARTITION, WINDOW, StreamAggregation

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.definitions import FeatureView

STATE = "__hw_state"
CLOSED = "__hw_closed"
EVENTS = "__hw_events"


@dataclass
class BatchResult:
    """What one micro-batch did to the state."""

    events: int = 0
    late: list[tuple[int, int]] = field(default_factory=list)
    """(partition, offset) of events whose every window had already closed."""
    keyless: list[tuple[int, int]] = field(default_factory=list)
    """(partition, offset) of events without a join key."""
    max_ts: dict[int, int] = field(default_factory=dict)
    """Greatest event time seen per partition in this batch."""


class WindowState:
    """Partial aggregates of one view, for the partitions a worker owns."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        view: FeatureView,
        schema: pa.Schema,
        *,
        partition_column: str,
        offset_column: str,
    ) -> None:
        self.con = con
        self.view = view
        self.agg = StreamAggregation(view, schema)
        self.closed: dict[int, int | None] = {}
        self._partition_column = partition_column
        self._offset_column = offset_column
        con.register("__hw_empty_events", schema.empty_table())
        self._set_closed({})
        events = self.agg.events_sql("__hw_empty_events", partition_column, offset_column)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {STATE} AS "
            f"SELECT * FROM ({self.agg.partials_sql(events, CLOSED)}) LIMIT 0"
        )
        con.unregister("__hw_empty_events")
        self.state_schema = con.sql(f"SELECT * FROM {STATE} LIMIT 0").to_arrow_table().schema

    # ------------------------------------------------------------------ partitions
    def restore(self, partition: int, blob: bytes | None, closed: int | None) -> None:
        """Take ``partition`` over with its saved state (``None``: from nothing)."""
        import pyarrow as pa

        self.drop(partition)
        self.closed[partition] = closed
        if blob:
            table = pa.ipc.open_stream(blob).read_all()
            self.con.register("__hw_restore", table)
            try:
                self.con.execute(f"INSERT INTO {STATE} BY NAME SELECT * FROM __hw_restore")
            finally:
                self.con.unregister("__hw_restore")

    def drop(self, partition: int) -> None:
        """Forget ``partition`` (it was revoked)."""
        self.closed.pop(partition, None)
        self.con.execute(f"DELETE FROM {STATE} WHERE {PARTITION} = ?", [partition])

    def snapshot(self, partition: int) -> bytes:
        """The state of ``partition`` as an Arrow IPC stream."""
        import pyarrow as pa

        table = self.con.sql(
            f"SELECT * FROM {STATE} WHERE {PARTITION} = {int(partition)}"
        ).to_arrow_table()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return bytes(sink.getvalue().to_pybytes())

    def rows(self, partition: int | None = None) -> int:
        where = "" if partition is None else f" WHERE {PARTITION} = {int(partition)}"
        return int(self.con.sql(f"SELECT count(*) FROM {STATE}{where}").fetchall()[0][0])

    # ------------------------------------------------------------------ batches
    def add(self, batch: pa.Table) -> BatchResult:
        """Fold a decoded micro-batch into the state (late events are reported, not folded)."""
        con = self.con
        result = BatchResult(events=batch.num_rows)
        if batch.num_rows == 0:
            return result
        self._set_closed(self.closed)
        con.register("__hw_batch", batch)
        try:
            keys_null = " OR ".join(f"{q(k)} IS NULL" for k in self.view.join_keys)
            keyless = con.execute(
                f"SELECT {q(self._partition_column)}, {q(self._offset_column)} FROM __hw_batch "
                f"WHERE {keys_null}"
            ).fetchall()
            result.keyless = [(int(p), int(o)) for p, o in keyless]
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {EVENTS} AS "
                + self.agg.events_sql("__hw_batch", self._partition_column, self._offset_column)
            )
        finally:
            con.unregister("__hw_batch")
        late = con.execute(
            f"SELECT e.{PARTITION}, e.{OFFSET} FROM {EVENTS} AS e JOIN {CLOSED} AS c "
            f"ON c.{PARTITION} = e.{PARTITION} "
            f"WHERE {self.agg.last_window_end_sql()} <= c.__closed ORDER BY 1, 2"
        ).fetchall()
        result.late = [(int(p), int(o)) for p, o in late]
        result.max_ts = {
            int(p): int(ts)
            for p, ts in con.execute(
                f"SELECT {PARTITION}, max(__ts) FROM {EVENTS} GROUP BY 1"
            ).fetchall()
        }
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __hw_partials AS {self.agg.partials_sql(EVENTS, CLOSED)}"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {STATE} AS {self.agg.merge_sql(STATE, '__hw_partials')}"
        )
        return result

    def close(self, closed: dict[int, int]) -> pa.Table:
        """Advance the closed-through time of partitions (never backwards); return the output
        rows of the windows that closed, and free them."""
        for partition, through in closed.items():
            previous = self.closed.get(partition)
            if previous is None or through > previous:
                self.closed[partition] = through
        self._set_closed(self.closed)
        if self.agg.lifetime:
            return self._close_lifetime()
        con = self.con
        predicate = self.agg.closing_predicate()
        closing = (
            f"SELECT s.* FROM {STATE} AS s JOIN {CLOSED} AS c USING ({PARTITION}) WHERE {predicate}"
        )
        out = con.sql(self.agg.output_sql(f"({closing})")).to_arrow_table()
        if out.num_rows:
            on_state = predicate.replace(WINDOW, "s." + WINDOW)
            con.execute(
                f"DELETE FROM {STATE} AS s USING {CLOSED} AS c "
                f"WHERE s.{PARTITION} = c.{PARTITION} AND {on_state}"
            )
        return out

    def updates(self) -> pa.Table:
        """``emit="update"``: the running values of every window the last batch touched."""
        keys = " AND ".join(f"s.{q(k)} = t.{q(k)}" for k in self.view.join_keys)
        touched = (
            f"SELECT s.* FROM {STATE} AS s SEMI JOIN __hw_partials AS t "
            f"ON s.{PARTITION} = t.{PARTITION} AND s.{WINDOW} = t.{WINDOW} AND {keys}"
        )
        if self.agg.lifetime:
            folded = self.agg.lifetime_fold_sql(
                f"(SELECT * FROM {STATE} AS s WHERE s.{WINDOW} IS NULL OR EXISTS "
                f"(SELECT 1 FROM __hw_partials AS t WHERE t.{PARTITION} = s.{PARTITION} "
                f"AND {keys}))"
            )
            touched_folded = (
                f"SELECT f.* FROM ({folded}) AS f SEMI JOIN __hw_partials AS t "
                f"ON f.{PARTITION} = t.{PARTITION} AND f.{WINDOW} = t.{WINDOW} AND "
                + keys.replace("s.", "f.")
            )
            return self.con.sql(
                self.agg.lifetime_output_sql(f"({touched_folded})")
            ).to_arrow_table()
        return self.con.sql(self.agg.output_sql(f"({touched})")).to_arrow_table()

    def _close_lifetime(self) -> pa.Table:
        con = self.con
        keys = " AND ".join(f"s.{q(k)} = x.{q(k)}" for k in self.view.join_keys)
        pending = (
            f"SELECT s.* FROM {STATE} AS s JOIN {CLOSED} AS c USING ({PARTITION}) "
            f"WHERE {self.agg.closing_predicate()}"
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE __hw_closing AS {pending}")
        if not con.sql("SELECT count(*) FROM __hw_closing").fetchall()[0][0]:
            return con.sql(
                self.agg.lifetime_output_sql(f"(SELECT * FROM {STATE} WHERE false)")
            ).to_arrow_table()
        base = (
            f"SELECT s.* FROM {STATE} AS s WHERE s.{WINDOW} IS NULL AND EXISTS "
            f"(SELECT 1 FROM __hw_closing AS x WHERE x.{PARTITION} = s.{PARTITION} AND {keys})"
        )
        con.execute(
            "CREATE OR REPLACE TEMP TABLE __hw_folded AS "
            + self.agg.lifetime_fold_sql(
                f"(SELECT * FROM ({base}) UNION ALL BY NAME SELECT * FROM __hw_closing)"
            )
        )
        out = con.sql(self.agg.lifetime_output_sql("__hw_folded")).to_arrow_table()
        con.execute(
            f"DELETE FROM {STATE} AS s USING __hw_closing AS x "
            f"WHERE s.{PARTITION} = x.{PARTITION} AND {keys} "
            f"AND (s.{WINDOW} IS NULL OR s.{WINDOW} = x.{WINDOW})"
        )
        key_cols = ", ".join(q(k) for k in self.view.join_keys)
        con.execute(
            f"INSERT INTO {STATE} BY NAME SELECT * REPLACE (NULL::BIGINT AS {WINDOW}) "
            f"FROM __hw_folded QUALIFY row_number() OVER "
            f"(PARTITION BY {PARTITION}, {key_cols} ORDER BY {WINDOW} DESC NULLS LAST) = 1"
        )
        return out

    def _set_closed(self, closed: dict[int, int | None]) -> None:
        import pyarrow as pa

        table = pa.table(
            {
                PARTITION: pa.array(list(closed), pa.int32()),
                "__closed": pa.array(list(closed.values()), pa.int64()),
            }
        )
        self.con.register(CLOSED, table)
