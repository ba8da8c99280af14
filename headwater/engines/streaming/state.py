"""Window state of one streaming view, per Kafka partition, held in DuckDB.

Rows are partial aggregates per (partition, entity keys, window start). A micro-batch appends
its partial rows; a group's rows are merged when its window closes (or its running value is
emitted), so each event is aggregated about once rather than once per batch its window stays
open. When the state has doubled since its last merge (long windows, many batches), it is
merged whole — amortised, each row is merged a bounded number of times. Each partition also has
a *closed-through* time: every window ending at or before it has been emitted and freed, and an
event all of whose windows ended by then is late. A partition's state is saved as one Arrow IPC
blob together with its offset, so a worker that takes the partition over (after a crash or a
rebalance) resumes exactly where the last commit left it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from headwater.engines.streaming.aggregate import OFFSET, PARTITION, WINDOW, StreamAggregation
from headwater.sql import quote_ident as q

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.definitions import FeatureView

_COMPACT_MIN_ROWS = 500_000
"""The state is merged into one row per group once it holds twice the rows its last merge left,
and at least this many."""
BATCH = "__b"
"""State column: the micro-batch that appended the row (NULL: saved already, or merged)."""
STATE = "__hw_state"
CLOSED = "__hw_closed"


@dataclass
class Checkpoint:
    """What to save of one partition's state: a whole snapshot (``piece is None``), or a piece
    of the rows appended since the last save, with the greatest window end among them
    (``b""``: nothing was appended)."""

    state: bytes | None
    piece: bytes | None = None
    piece_end: int | None = None


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
            f"CREATE OR REPLACE TEMP TABLE {STATE} AS SELECT *, NULL::BIGINT AS {BATCH} "
            f"FROM ({self.agg.partials_sql(events, CLOSED)}) LIMIT 0"
        )
        con.unregister("__hw_empty_events")
        self._merged_rows = 0  # rows of the state after its last merge
        self._batch = 0  # micro-batches folded in
        self._saved_batch: dict[int, int] = {}  # per partition: the last batch saved
        self._whole: set[int] = set()  # partitions whose next save must be a snapshot

    # ------------------------------------------------------------------ partitions
    def restore(
        self,
        partition: int,
        blob: bytes | None,
        closed: int | None,
        pieces: tuple[bytes, ...] = (),
    ) -> None:
        """Take ``partition`` over with its saved state: the base snapshot ``blob`` and the
        ``pieces`` appended after it (all empty: from nothing). Rows of windows closed by
        ``closed`` are left out."""
        import pyarrow as pa

        self.drop(partition)
        self.closed[partition] = closed
        self._saved_batch[partition] = self._batch
        for saved in (blob, *pieces):
            if not saved:
                continue
            table = pa.ipc.open_stream(saved).read_all()
            self.con.register("__hw_restore", table)
            try:
                self.con.execute(f"INSERT INTO {STATE} BY NAME SELECT * FROM __hw_restore")
            finally:
                self.con.unregister("__hw_restore")
        if (blob or pieces) and closed is not None and not self.agg.lifetime:
            # The base and pieces were saved before later windows closed.
            self._set_closed(self.closed)
            self._delete_closed(partition)

    def drop(self, partition: int) -> None:
        """Forget ``partition`` (it was revoked)."""
        self.closed.pop(partition, None)
        self._saved_batch.pop(partition, None)
        self._whole.discard(partition)
        self.con.execute(f"DELETE FROM {STATE} WHERE {PARTITION} = ?", [partition])

    def snapshot(self, partition: int) -> bytes:
        """The state of ``partition`` as an Arrow IPC stream."""
        return self._ipc(f"{PARTITION} = {int(partition)}")

    def checkpoint(self, partition: int) -> Checkpoint:
        """What to save of ``partition`` now: see :meth:`checkpoints`."""
        return self.checkpoints([partition])[partition]

    def checkpoints(self, partitions: list[int]) -> dict[int, Checkpoint]:
        """What to save of each of ``partitions`` now: the rows appended since its last save
        (the windows they belong to are still open), or a whole snapshot after a merge of the
        state and for lifetime views (whose emitted base rows change in place). One read of the
        state serves every partition. Call :meth:`saved` once they are committed."""
        import pyarrow as pa
        import pyarrow.compute as pc

        points: dict[int, Checkpoint] = {}
        appended: list[str] = []
        for partition in partitions:
            if self.agg.lifetime or partition in self._whole:
                points[partition] = Checkpoint(self.snapshot(partition))
            else:
                since = self._saved_batch.get(partition, 0)
                appended.append(f"({PARTITION} = {int(partition)} AND {BATCH} > {since})")
        if not appended:
            return points
        rows = self.con.sql(
            f"SELECT * EXCLUDE ({BATCH}) FROM {STATE} WHERE {' OR '.join(appended)}"
        ).to_arrow_table()
        for partition in partitions:
            if partition in points:
                continue
            mine = rows.filter(pc.equal(rows.column(PARTITION), pa.scalar(partition, pa.int32())))
            if not mine.num_rows:  # nothing new: the saved base and pieces stand
                points[partition] = Checkpoint(None, b"", None)
                continue
            end = pc.max(mine.column(WINDOW)).as_py() + self.agg.size
            points[partition] = Checkpoint(None, _ipc_bytes(mine), int(end))
        return points

    def saved(self, partitions: list[int]) -> None:
        """The checkpoints of ``partitions`` were committed."""
        for partition in partitions:
            self._saved_batch[partition] = self._batch
            self._whole.discard(partition)

    def _ipc(self, where: str) -> bytes:
        table = self.con.sql(
            f"SELECT * EXCLUDE ({BATCH}) FROM {STATE} WHERE {where}"
        ).to_arrow_table()
        return _ipc_bytes(table)

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
        # A merge of the whole state is due once it doubled since the last one; done before
        # this batch's rows go in, so that they stay marked with their batch until the next.
        if self.rows() > max(2 * self._merged_rows, _COMPACT_MIN_ROWS):
            self.compact()
        self._set_closed(self.closed)
        con.register("__hw_batch", batch)
        try:
            if any(batch.column(k).null_count for k in self.view.join_keys):
                keys_null = " OR ".join(f"{q(k)} IS NULL" for k in self.view.join_keys)
                keyless = con.execute(
                    f"SELECT {q(self._partition_column)}, {q(self._offset_column)} "
                    f"FROM __hw_batch WHERE {keys_null}"
                ).fetchall()
                result.keyless = [(int(p), int(o)) for p, o in keyless]
            # The events are read from the Arrow batch where they are (no copy): once for the
            # oldest and newest time of each partition, once for the partials.
            events = self.agg.events_sql("__hw_batch", self._partition_column, self._offset_column)
            bounds = con.execute(
                f"SELECT {PARTITION}, min(__ts), max(__ts) FROM ({events}) GROUP BY 1"
            ).fetchall()
            late_possible = False
            for partition, oldest, newest in bounds:
                result.max_ts[int(partition)] = int(newest)
                closed = self.closed.get(int(partition))
                # The last window of an event ends later the later the event: only a partition
                # whose oldest event is late can hold late events.
                late_possible |= closed is not None and self.agg.last_window_end(oldest) <= closed
            if late_possible:
                result.late = self._late(events)
            # Without late events, only hopping windows can have closed windows to skip.
            closed_relation = CLOSED if result.late or self.agg.hopping else None
            whole = frozenset(n for n in batch.column_names if not batch.column(n).null_count)
            self._batch += 1
            con.execute(
                f"INSERT INTO {STATE} BY NAME SELECT *, {self._batch} AS {BATCH} FROM "
                f"({self.agg.partials_sql(events, closed_relation, whole)})"
            )
        finally:
            con.unregister("__hw_batch")
        return result

    def may_be_late(self, batch: pa.Table) -> bool:
        """Whether some event of a decoded ``batch`` may be late (:meth:`add` would report it):
        a cheap, conservative test — the last window of the oldest event ends after every
        partition's closed-through time, or the event times are not read here."""
        closed = [c for c in self.closed.values() if c is not None]
        if not closed or not batch.num_rows:
            return False
        oldest = _oldest_ms(batch, self.view.source.timestamp_field)
        return oldest is None or self.agg.last_window_end(oldest) <= max(closed)

    def _late(self, events: str) -> list[tuple[int, int]]:
        """(partition, offset) of the events whose every window has closed."""
        late = f"c.__closed IS NOT NULL AND {self.agg.last_window_end_sql()} <= c.__closed"
        rows = self.con.execute(
            f"SELECT e.{PARTITION}, e.{OFFSET} FROM ({events}) AS e JOIN {CLOSED} AS c "
            f"ON c.{PARTITION} = e.{PARTITION} WHERE {late} ORDER BY 1, 2"
        ).fetchall()
        return [(int(p), int(o)) for p, o in rows]

    def compact(self) -> None:
        """Merge the state into one row per group (the next save of each partition is then a
        whole snapshot)."""
        con = self.con
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {STATE} AS SELECT *, NULL::BIGINT AS {BATCH} "
            f"FROM ({self.agg.merge_sql(STATE)})"
        )
        self._merged_rows = self.rows()
        self._whole.update(self._saved_batch)

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
        out = con.sql(self.agg.closing_output_sql(f"({closing})", BATCH)).to_arrow_table()
        if out.num_rows:
            self._delete_closed()
        return out

    def _delete_closed(self, partition: int | None = None) -> None:
        """Free the rows of windows closed by the closed-through times (of one partition)."""
        on_state = self.agg.closing_predicate().replace(WINDOW, "s." + WINDOW)
        only = "" if partition is None else f" AND s.{PARTITION} = {int(partition)}"
        self.con.execute(
            f"DELETE FROM {STATE} AS s USING {CLOSED} AS c "
            f"WHERE s.{PARTITION} = c.{PARTITION} AND {on_state}{only}"
        )

    def updates(self) -> pa.Table:
        """``emit="update"``: the running values of every window the last batch touched."""
        partials = f"(SELECT * FROM {STATE} WHERE {BATCH} = {self._batch})"  # the batch's rows
        keys = " AND ".join(f"s.{q(k)} = t.{q(k)}" for k in self.view.join_keys)
        touched = (
            f"SELECT s.* FROM {STATE} AS s SEMI JOIN {partials} AS t "
            f"ON s.{PARTITION} = t.{PARTITION} AND s.{WINDOW} = t.{WINDOW} AND {keys}"
        )
        if self.agg.lifetime:
            entities = self.agg.merge_sql(
                f"(SELECT * FROM {STATE} AS s WHERE s.{WINDOW} IS NULL OR EXISTS "
                f"(SELECT 1 FROM {partials} AS t WHERE t.{PARTITION} = s.{PARTITION} "
                f"AND {keys}))"
            )
            folded = self.agg.lifetime_fold_sql(f"({entities})")
            touched_folded = (
                f"SELECT f.* FROM ({folded}) AS f SEMI JOIN {partials} AS t "
                f"ON f.{PARTITION} = t.{PARTITION} AND f.{WINDOW} = t.{WINDOW} AND "
                + keys.replace("s.", "f.")
            )
            return self.con.sql(
                self.agg.lifetime_output_sql(f"({touched_folded})")
            ).to_arrow_table()
        merged = self.agg.merge_sql(f"({touched})")
        return self.con.sql(self.agg.output_sql(f"({merged})")).to_arrow_table()

    def _close_lifetime(self) -> pa.Table:
        con = self.con
        keys = " AND ".join(f"s.{q(k)} = x.{q(k)}" for k in self.view.join_keys)
        pending = (
            f"SELECT s.* FROM {STATE} AS s JOIN {CLOSED} AS c USING ({PARTITION}) "
            f"WHERE {self.agg.closing_predicate()}"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE __hw_closing AS {self.agg.merge_sql(f'({pending})')}"
        )
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


def _oldest_ms(table: pa.Table, field: str) -> int | None:
    """The oldest event time in ``table`` in epoch ms, floored as the engine floors it
    (``None``: no time, or text, which is not read here)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if field not in table.column_names:
        return None
    column = table.column(field)
    kind = column.type
    if pa.types.is_timestamp(kind):
        scalar = pc.min(column)
        if not scalar.is_valid:
            return None
        multiply, divide = {"s": (1000, 1), "ms": (1, 1), "us": (1, 1000), "ns": (1, 10**6)}[
            kind.unit
        ]
        return int(scalar.value) * multiply // divide
    if pa.types.is_integer(kind):
        value = pc.min(column).as_py()
        return None if value is None else int(value)
    return None


def _ipc_bytes(table: pa.Table) -> bytes:
    """``table`` as an Arrow IPC stream."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())
