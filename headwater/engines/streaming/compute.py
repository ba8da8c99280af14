"""What one micro-batch computes, once its messages are decoded.

The source's checks (quarantined rows written before the offsets move past them), the view's
row-level cleaning steps, then either the fold into the window state (late events and events
without a join key become dead letters) and the windows the watermark closes, or — for views
without aggregations — the projection; the view's checks on the rows out. The result is the rows
to write and the dead letters; writing them and committing are the worker's
(:mod:`.worker`). No Kafka client is used here: messages are only read to make dead letters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.definitions.kafka import KAFKA_OFFSET, KAFKA_PARTITION
from headwater.sql import quote_ident as q

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.connectors.kafka.decode import Decoded
    from headwater.connectors.kafka.letters import DeadLetter
    from headwater.definitions import FeatureView
    from headwater.engines.streaming.options import StreamStats
    from headwater.engines.streaming.state import WindowState
    from headwater.engines.streaming.watermarks import Watermarks
    from headwater.quality.gate import QualityGate
    from headwater.stores.offline.base import OfflineStore
    from headwater.transforms.runtime import StreamTransforms


@dataclass
class Computed:
    """A micro-batch's effects: the rows to write (``None``: none) and the dead letters."""

    rows: pa.Table | None
    dead: list[DeadLetter] = field(default_factory=list)


class BatchCompute:
    """The computation of one view's micro-batches (see the module docstring).

    Args:
        view: the view.
        con: the worker's DuckDB connection.
        offline: the offline store (quarantine tables, ``unique`` checks against stored rows).
        transforms: the view's cleaning steps, per micro-batch.
        clock: the worker's watermarks (the fold reports each partition's newest event).
        stats: the worker's running totals.
    """

    def __init__(
        self,
        view: FeatureView,
        con: duckdb.DuckDBPyConnection,
        offline: OfflineStore,
        transforms: StreamTransforms,
        clock: Watermarks,
        stats: StreamStats,
    ) -> None:
        self.view = view
        self.con = con
        self.offline = offline
        self.transforms = transforms
        self.clock = clock
        self.stats = stats
        self.state: WindowState | None = None
        self._checked = bool(view.source.checks or view.checks)

    def start_state(self, schema: pa.Schema) -> WindowState:
        """The view's window state for events of ``schema`` (decoded, before the steps)."""
        from headwater.engines.streaming.state import WindowState

        self.state = WindowState(
            self.con,
            self.view,
            self.transforms.schema(schema),  # the state holds the transformed columns
            partition_column=KAFKA_PARTITION,
            offset_column=KAFKA_OFFSET,
        )
        return self.state

    def suspects(self, decoded: Decoded, messages: list[Any]) -> list[Any]:
        """The messages of a decoded chunk that folding may yet turn into dead letters (late,
        or without a join key): all of them when some row is keyless or may be late, when
        transforms may change keys and times, or before the window state exists; none
        otherwise (the common case: no event older than what has closed)."""
        table = decoded.table
        if not table.num_rows:
            return []
        if self.view.transforms or (self.view.kind == "aggregation" and self.state is None):
            return messages
        if any(
            k not in table.column_names or table.column(k).null_count for k in self.view.join_keys
        ):
            return messages
        if self.state is not None and self.state.may_be_late(table):
            return messages
        return []

    # ------------------------------------------------------------------ a micro-batch
    def compute(self, decoded: Decoded, kept: list[Any], count: int, now: float) -> Computed:
        """The effects of a micro-batch of ``count`` messages decoded as ``decoded``
        (``kept``: the messages that may become dead letters)."""
        dead: list[DeadLetter] = list(decoded.dead)
        table = decoded.table
        gate = self._gate() if self._checked else None
        try:
            if gate is not None and table.num_rows:
                table = self._checked_source(gate, table)
            table = self.transforms.apply(table)  # the view's row-level cleaning steps
            out: list[pa.Table] = []
            if self.view.kind == "aggregation" and self.state is not None:
                result = self.state.add(table)
                if result.late or result.keyless:
                    dead += _letters(kept, result.late, "late", self._late_reason)
                    dead += _letters(kept, result.keyless, "schema", self._keyless_reason)
                self.clock.observe(result.max_ts, now)
                if self.view.emit == "update":
                    out.append(self.state.updates())
                out.append(self.close(now))
                self.stats.late += len(result.late)
            else:
                rows, keyless = self._project(table)
                out.append(rows)
                dead += _letters(kept, keyless, "schema", self._keyless_reason)
            self.stats.messages += count
            self.stats.events += table.num_rows
            combined = self._combine(out)
            if combined is not None and gate is not None and self.view.checks:
                # The view's checks, before anything is written.
                combined = gate.output(combined.to_reader()).read_all()
            if gate is not None:
                gate.commit()  # quarantined rows, before the offsets move past them
                self._count_quality(gate)
        finally:
            if gate is not None:
                gate.release()
        return Computed(combined, dead)

    def close(self, now: float) -> pa.Table:
        """Close the windows the watermark passed; return their rows."""
        assert self.state is not None
        watermark, closing = self.clock.closing(now, self.state.closed)
        if watermark is not None and (
            self.stats.watermark_ms is None or watermark > self.stats.watermark_ms
        ):
            self.stats.watermark_ms = watermark
        return self.state.close(closing)

    def close_quiet(self, now: float) -> pa.Table | None:
        """No message arrived: idle partitions, or partitions just taken over with their saved
        state, may now let windows close. The closed windows' rows, or ``None`` when nothing
        changed (the partitions are marked dirty when something did)."""
        if self.view.kind != "aggregation" or self.state is None:
            return None
        before = dict(self.state.closed)
        out = self.close(now)
        if not out.num_rows and self.state.closed == before:
            return None
        self.clock.touch_all()
        return out

    def _project(self, table: pa.Table) -> tuple[pa.Table, list[tuple[int, int]]]:
        """A projection's rows, and the (partition, offset) of events without a join key."""
        from headwater.engines.compile import compile_view

        con = self.con
        con.register("__hw_batch", table)
        try:
            keys_null = " OR ".join(f"{q(k)} IS NULL" for k in self.view.join_keys)
            keyless = con.execute(
                f"SELECT {q(KAFKA_PARTITION)}, {q(KAFKA_OFFSET)} FROM __hw_batch WHERE {keys_null}"
            ).fetchall()
            rows = con.sql(compile_view(self.view, "__hw_batch", table.schema)).to_arrow_table()
        finally:
            con.unregister("__hw_batch")
        return rows, [(int(p), int(o)) for p, o in keyless]

    def _combine(self, outputs: list[pa.Table]) -> pa.Table | None:
        """One table of the batch's output rows (``None``: none). A window that both updated
        and closed in the batch comes twice with the same values: kept once."""
        import pyarrow as pa

        tables = [t for t in outputs if t.num_rows]
        if len(tables) < 2:
            return tables[0] if tables else None
        self.con.register("__hw_out", pa.concat_tables(tables))
        try:
            return self.con.sql("SELECT DISTINCT * FROM __hw_out").to_arrow_table()
        finally:
            self.con.unregister("__hw_out")

    # ------------------------------------------------------------------ quality
    def _gate(self) -> QualityGate:
        from headwater.quality.gate import QualityGate

        # Results are summed into the run's details rather than recorded per micro-batch.
        return QualityGate(
            self.con, self.view, run_id=self.stats.run_id, registry=None, offline=self.offline
        )

    def _checked_source(self, gate: QualityGate, table: pa.Table) -> pa.Table:
        self.con.register("__hw_decoded", table)
        try:
            relation = gate.source("__hw_decoded")
            return self.con.sql(f"SELECT * FROM {relation}").to_arrow_table()
        finally:
            self.con.unregister("__hw_decoded")

    def _count_quality(self, gate: QualityGate) -> None:
        quality = self.stats.quality
        for _stage, result in gate.report.results:
            if result.action == "passed":
                continue
            entry = quality.setdefault(result.check, {"action": result.action, "rows_failed": 0})
            entry["rows_failed"] += result.rows_failed
        self.stats.rows_quarantined += gate.rows_quarantined

    # ------------------------------------------------------------------ dead letters
    def _late_reason(self, message: Any) -> str:
        closed = self.state.closed.get(message.partition()) if self.state else None
        return (
            f"late event: every window it belongs to closed when the watermark of partition "
            f"{message.partition()} passed {closed} ms (allowed lateness "
            f"{self.clock.lateness_ms} ms)"
        )

    def _keyless_reason(self, message: Any) -> str:
        return f"join key {', '.join(self.view.join_keys)} missing or null"


def _letters(
    messages: list[Any], where: list[tuple[int, int]], check: str, reason: Callable[[Any], str]
) -> list[DeadLetter]:
    """Dead letters of the ``messages`` at ``where`` (partition, offset)."""
    if not where:
        return []
    from headwater.connectors.kafka.letters import DeadLetter

    wanted = set(where)
    return [
        DeadLetter.of(message, check, reason(message))
        for message in messages
        if (message.partition(), message.offset()) in wanted
    ]
