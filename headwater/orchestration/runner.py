"""Run feature views: read the source, compute, merge into the offline store, commit the cursor.

Order of effects, which makes a crash at any point safe: (1) results are merged into the offline
table, keyed by (join keys, event_timestamp), so a repeat writes nothing new; (2) then the
landing table (below) is upserted; (3) only then is the source cursor committed to the
registry (when the run built a new table version of the view, together with the switch to it:
:mod:`headwater.orchestration.versions`). A crash between any two re-reads from the old cursor
on the next run and converges to the same table.

Aggregations over incremental sources cannot be recomputed from the new rows alone, so such
views keep a *landing* Delta table of the source's current rows (keyed by the primary key, at
``<offline path>/_landing/<view>/``). Each run finds the windows touched by the new and the
replaced versions, recomputes exactly those windows from the landing table with the new rows
applied, deletes windows left empty, and upserts the new rows into the landing table only after
the offline write (so a failed run still finds the replaced versions when it is rerun).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from headwater.connectors import open_connector
from headwater.connectors.base import StreamScan, read_failure
from headwater.engines.progress import watch_queries
from headwater.errors import DefinitionError, HeadwaterError, RunFailed
from headwater.observability import get_logger
from headwater.orchestration.fitting import fitted_statistics
from headwater.orchestration.runs import RecordedRun, describe
from headwater.orchestration.versions import finish, target
from headwater.quality.gate import QualityGate, QualityReport
from headwater.transforms.runtime import apply_transforms

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.config import ProjectConfig
    from headwater.connectors.base import Scan, SourceConnector
    from headwater.definitions import FeatureView
    from headwater.engines.base import BatchEngine
    from headwater.orchestration.landing import Landing
    from headwater.stores.offline.base import OfflineStore, WriteStats
    from headwater.stores.registry import Registry

log = get_logger("orchestration.runner")


@dataclass
class RunResult:
    """The outcome of one view's run."""

    view: str
    run_id: str
    status: str
    rows_in: int = 0
    rows_out: int = 0
    rows_skipped: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    rows_quarantined: int = 0
    seconds: float = 0.0
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def cursor_checkpoint(view: str) -> str:
    return f"cursor:{view}"


class Runner:
    """Runs views one at a time against the configured engine and stores."""

    def __init__(
        self,
        project: ProjectConfig,
        registry: Registry,
        offline: OfflineStore,
        engine: BatchEngine,
    ) -> None:
        self.project = project
        self.registry = registry
        self.offline = offline
        self.engine = engine

    def run(
        self,
        view: FeatureView,
        *,
        full_refresh: bool = False,
        time_range: tuple[int, int] | None = None,
        on_step: Callable[[str], None] | None = None,
        on_rows: Callable[[int], None] | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> RunResult:
        """Run ``view``; with ``time_range`` (a backfill) only rows in ``[start, end)`` are
        recomputed, from a full read of the source, and no cursor is read or committed.

        ``on_step`` is told each step (``reading events``, ``writing spend``); ``on_rows`` the
        rows read so far, while a streamed source is read and once the count is known;
        ``on_progress`` the percent done of the DuckDB query under way while a source read
        inside DuckDB (files) is counted, computed and written (polled from a thread:
        :mod:`headwater.engines.progress`)."""
        step = on_step or (lambda _msg: None)
        rows = on_rows or (lambda _rows: None)
        kind = "run" if time_range is None else "backfill"
        details: dict[str, Any] = {"full_refresh": full_refresh}
        if time_range is not None:
            details["time_range_ms"] = list(time_range)
        started = time.perf_counter()
        recorded = RecordedRun(self.registry, view.name, kind, details)
        try:
            with recorded as run:
                con = self.engine.connect()
                try:
                    result = self._run(
                        con, view, run.run_id, full_refresh, time_range, step, rows, on_progress
                    )
                finally:
                    con.close()
                result.seconds = time.perf_counter() - started
                run.finish(
                    rows_in=result.rows_in,
                    rows_out=result.rows_out,
                    details={
                        "inserted": result.inserted,
                        "updated": result.updated,
                        "deleted": result.deleted,
                        "rows_skipped": result.rows_skipped,
                        "rows_quarantined": result.rows_quarantined,
                        "seconds": round(result.seconds, 3),
                    },
                )
        except HeadwaterError:
            raise
        except Exception as exc:
            raise RunFailed(
                f"view {view.name!r}: run {recorded.run_id} failed: {describe(exc)}"
            ) from exc
        return result

    def _run(
        self,
        con: duckdb.DuckDBPyConnection,
        view: FeatureView,
        run_id: str,
        full_refresh: bool,
        time_range: tuple[int, int] | None,
        step: Callable[[str], None],
        on_rows: Callable[[int], None],
        on_progress: Callable[[float], None] | None = None,
    ) -> RunResult:
        connector = open_connector(view.source, self.project)
        # The table version written: a new one (changed definition, full refresh) is built
        # from a full read and switched to once complete (orchestration.versions).
        into = target(
            self.registry, self.offline, view, full_refresh=full_refresh, time_range=time_range
        )
        if into.building:
            time_range = None  # a build computes every period
        incremental = view.source.incremental and time_range is None
        checkpoint = None
        if incremental and not full_refresh and not into.building:
            checkpoint = self.registry.get_checkpoint(cursor_checkpoint(view.name))
        landing: Landing | None = None
        if incremental and view.kind == "aggregation":
            from headwater.orchestration.landing import Landing

            landing = Landing(self.offline, into.view)
            if checkpoint is not None and not landing.exists():
                # Without the source's current rows, windows cannot be recomputed from an
                # increment: read the source in full again.
                log.warning(
                    "landing table missing; reading the source in full",
                    extra={"fields": {"view": view.name, "run_id": run_id}},
                )
                checkpoint = None
        step(f"reading {view.source.name}")
        # Data quality: schema contract and source checks (failed `fail` checks raise here).
        gate = QualityGate(
            con,
            view,
            run_id=run_id,
            registry=self.registry,
            offline=self.offline,
            table=into.view.name,
        )
        scan = self._scan(con, connector, view, checkpoint)
        if (
            isinstance(scan, StreamScan)
            and scan.watchers is not None
            and landing is None
            and not view.transforms
            and gate.passes_through(scan.relation)
        ):
            # Nothing needs the rows twice: compute from the stream as it comes.
            scan, seq, stats, rows_in, skipped = self._stream(
                con,
                connector,
                scan,
                checkpoint,
                view,
                gate,
                time_range,
                run_id,
                step,
                into.view,
                on_rows,
            )
            # Written already (the rows read were computed as they came); the cursor does not
            # move past a run that set aside too much.
            self._judge(view, rows_in, gate.rows_quarantined, skipped)
        else:
            # Read inside DuckDB queries (a file source): their progress is all there is to show.
            watch = None if scan.one_shot else on_progress
            with watch_queries(con, watch):
                scan, relation = self._read(
                    con, connector, checkpoint, view.name, run_id, scan, on_rows
                )
                relation = gate.source(relation)
                # Cleaning steps of the view, on the rows that passed the source checks.
                statistics = fitted_statistics(
                    con, view, project=self.project, registry=self.registry
                )
                cleaned = apply_transforms(
                    con, view, relation, statistics=statistics, run_id=run_id
                )
                relation = cleaned.relation
                rows_in, skipped = self.engine.unplaceable_rows(con, view, relation)
                if skipped:
                    gate.set_aside_unplaceable(relation)
                rows_in += gate.rows_quarantined - skipped + cleaned.rows_removed
                on_rows(rows_in)
                self._judge(view, rows_in, gate.rows_quarantined, skipped)
                step(f"computing {view.name}")
                if landing is not None:
                    output = landing.apply(con, self.engine, relation, fresh=checkpoint is None)
                else:
                    output = self.engine.compute(
                        con, view, relation, time_range=time_range, ordered=True
                    )
                output = gate.output(output)  # view checks, before anything is written
                step(f"writing {view.name}")
                seq = self.registry.next_seq()
                stats = self.offline.write(into.view, output, seq=seq)
        if skipped:
            log.info(
                "rows without an event time or join key were quarantined",
                extra={"fields": {"view": view.name, "run_id": run_id, "rows": skipped}},
            )
        if landing is not None:
            landing.commit()
        if view.sinks:
            # Warehouse sinks load what they lack (their mark commits with their rows), before
            # the cursor moves: a failed load fails the run and the rerun sends the rows again.
            from headwater.connectors.sinks import deliver

            step(f"loading the sinks of {view.name}")
            deliver(view, self.offline, self.project, seq=seq, run_id=run_id, table=into.view.name)
        gate.commit()  # quarantined rows, before the cursor moves past them
        new_checkpoint = scan.checkpoint() if incremental else None
        finish(self.registry, into, view.name, cursor_checkpoint(view.name), new_checkpoint)
        return RunResult(
            view=view.name,
            run_id=run_id,
            status="success",
            rows_in=rows_in,
            rows_out=stats.inserted + stats.updated,
            rows_skipped=skipped,
            inserted=stats.inserted,
            updated=stats.updated,
            deleted=stats.deleted,
            rows_quarantined=gate.rows_quarantined,
            details={
                "checkpoint": new_checkpoint,
                "table_version": into.version,
                "built": into.building,
            },
        )

    @staticmethod
    def _set_aside(con: duckdb.DuckDBPyConnection, gate: QualityGate, tally: _Tally) -> None:
        """Quarantine the rows of a stream without an event time or a join key."""
        import pyarrow as pa

        name = f"__hw_unplaced_{gate.run_id}"
        con.register(name, pa.Table.from_batches(tally.unplaced))
        try:
            gate.set_aside_unplaceable(name)
        finally:
            con.unregister(name)
        tally.unplaced.clear()

    def _judge(self, view: FeatureView, rows_in: int, set_aside: int, unplaced: int) -> None:
        """Fail the run when no row it read has a join key and an event time (a read that lost
        its columns), or when it set aside (quarantined, or without key or time) more of its
        rows than ``runs.max_skipped_ratio`` allows."""
        if rows_in <= 0 or set_aside <= 0:
            return
        limit = self.project.runs.max_skipped_ratio
        share = set_aside / rows_in
        if unplaced >= rows_in:
            raise RunFailed(
                f"view {view.name!r}: none of the {rows_in} rows read has both a join key "
                f"({', '.join(view.join_keys)}) and an event time "
                f"({view.source.timestamp_field}); the cursor stays where it was",
                fix=f"look at the source and its reader options (the rows are in "
                f"`headwater quarantine {view.name}`)",
            )
        if share > limit:
            raise RunFailed(
                f"view {view.name!r}: {set_aside} of {rows_in} rows read ({share:.0%}) were set "
                f"aside (quarantined or without a join key or event time), over the limit "
                f"runs.max_skipped_ratio={limit:g}; the cursor stays where it was",
                fix=f"see them with `headwater quarantine {view.name}` and fix the source or "
                "the checks, or raise runs.max_skipped_ratio in headwater.yaml",
            )

    def check(
        self,
        view: FeatureView,
        *,
        full: bool = False,
        on_step: Callable[[str], None] | None = None,
    ) -> QualityReport:
        """Evaluate ``view``'s checks on the rows its next run would read, writing and
        recording nothing (a dry run): the schema contract and source checks on the rows read,
        the view checks on the rows computed from them. ``full`` reads the source from the
        start instead of from its cursor."""
        step = on_step or (lambda _msg: None)
        con = self.engine.connect()
        try:
            checkpoint = None
            if view.source.incremental and not full:
                checkpoint = self.registry.get_checkpoint(cursor_checkpoint(view.name))
            step(f"reading {view.source.name}")
            connector = open_connector(view.source, self.project)
            _, relation = self._read(
                con,
                connector,
                checkpoint,
                view.name,
                "dry-run",
                self._scan(con, connector, view, checkpoint),
            )
            gate = QualityGate(
                con,
                view,
                run_id="dry-run",
                registry=self.registry,
                offline=self.offline,
                dry_run=True,
            )
            relation = gate.source(relation)
            if view.checks:
                step(f"checking {view.name}")
                statistics = fitted_statistics(
                    con, view, project=self.project, registry=self.registry, store=False
                )
                relation = apply_transforms(con, view, relation, statistics=statistics).relation
                gate.output(self.engine.compute(con, view, relation))
            return gate.report
        finally:
            con.close()

    def _scan(
        self,
        con: duckdb.DuckDBPyConnection,
        connector: SourceConnector,
        view: FeatureView,
        checkpoint: Any,
    ) -> Scan:
        """The connector's scan; a source without rows reads as an empty table of the columns
        recorded at ``apply`` (a run of 0 rows). A file source whose column changed type since
        ``apply`` has its values checked against the rows the view already stores."""
        scan = connector.scan(con, checkpoint=checkpoint)
        schema = self.registry.source_schema(view.source.name)
        changed_kinds = getattr(connector, "changed_kinds", None)  # file sources name files
        if changed_kinds is not None and schema is not None and not scan.empty:
            columns = changed_kinds(schema)
            if columns and self.offline.dataset(view.name) is not None:
                connector.check_values(con, schema, columns)  # type: ignore[attr-defined]  # files
        if not scan.empty:
            return scan
        if schema is None:
            raise DefinitionError(
                f"source {view.source.name!r} has no rows, and no columns were recorded for it",
                fix="run `headwater apply` once the source has rows",
            )
        con.register("__hw_empty_source", schema.empty_table())
        return replace(scan, relation="__hw_empty_source", empty=False)

    def _read(
        self,
        con: duckdb.DuckDBPyConnection,
        connector: SourceConnector,
        checkpoint: Any,
        view: str,
        run_id: str,
        scan: Scan | None = None,
        on_rows: Callable[[int], None] | None = None,
    ) -> tuple[Scan, str]:
        """Scan the source (``scan``: a first scan already made); a one-shot stream (database
        read) is kept in DuckDB (spills to disk) so it can be counted and read more than once.
        Nothing is written before it is complete, so a stream that lost its connection is read
        again whole, from the same checkpoint, as often as the connector allows (exponential
        backoff with jitter)."""
        attempt = 0
        while True:
            scan = scan or connector.scan(con, checkpoint=checkpoint)
            if not scan.one_shot:
                return scan, scan.relation
            if on_rows is not None and isinstance(scan, StreamScan) and scan.watchers is not None:
                scan.watchers.append(_Counter(on_rows))
            try:
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE __hw_src AS SELECT * FROM {scan.relation}"
                )
                return scan, "__hw_src"
            except Exception as exc:
                _read_again(scan, exc, attempt, view, run_id)
            attempt += 1
            scan = None

    def _stream(
        self,
        con: duckdb.DuckDBPyConnection,
        connector: SourceConnector,
        scan: StreamScan,
        checkpoint: Any,
        view: FeatureView,
        gate: QualityGate,
        time_range: tuple[int, int] | None,
        run_id: str,
        step: Callable[[str], None],
        into: FeatureView,
        on_rows: Callable[[int], None],
    ) -> tuple[Scan, int, WriteStats, int, int]:
        """Compute the view from a one-shot stream as it is read and write the result, with no
        copy of the rows read: ``(scan, seq, write stats, rows read, rows left out)``. The rows
        are counted on the way (as :meth:`DuckDBEngine.unplaceable_rows` counts them).

        The view's SQL ends in a sort (:meth:`DuckDBEngine.compute` ``ordered``), which gives no
        row before its input is complete, so nothing is written before the whole stream was
        read (checked: a row before that fails the run), and a read that lost its connection is
        started again whole, from the same checkpoint, as :meth:`_read` does.
        """
        attempt = 0
        while True:
            tally = _Tally(view, on_rows)
            assert scan.watchers is not None  # each scan of the connector calls its watchers
            scan.watchers.append(tally)
            try:
                relation = gate.source(scan.relation)  # passes it through
                step(f"computing {view.name}")
                output = self.engine.compute(
                    con, view, relation, time_range=time_range, ordered=True
                )
                output = gate.output(_after(scan, output))  # view checks, before any write
                step(f"writing {view.name}")
                seq = self.registry.next_seq()
                stats = self.offline.write(into, output, seq=seq)
                on_rows(tally.rows)
                if tally.skipped:
                    self._set_aside(con, gate, tally)
                return scan, seq, stats, tally.rows, tally.skipped
            except Exception as exc:
                _read_again(scan, exc, attempt, view.name, run_id)
            attempt += 1
            fresh = connector.scan(con, checkpoint=checkpoint)
            assert isinstance(fresh, StreamScan)  # the same connector, the same kind of scan
            scan = fresh


class _Counter:
    """Tells ``on_rows`` the rows of a stream read so far, batch by batch."""

    def __init__(self, on_rows: Callable[[int], None]) -> None:
        self.on_rows = on_rows
        self.rows = 0

    def __call__(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        self.on_rows(self.rows)


class _Tally:
    """Rows of a stream, and those without an event time or a join key (as
    :meth:`DuckDBEngine.unplaceable_rows` counts them in a kept copy), which are kept (in
    memory) to be quarantined."""

    def __init__(self, view: FeatureView, on_rows: Callable[[int], None]) -> None:
        self.columns = [view.source.timestamp_field, *view.join_keys]
        self.on_rows = on_rows
        self.rows = 0
        self.skipped = 0
        self.unplaced: list[pa.RecordBatch] = []

    def __call__(self, batch: pa.RecordBatch) -> None:
        import pyarrow.compute as pc

        self.rows += batch.num_rows
        self.on_rows(self.rows)
        missing = None
        for name in self.columns:
            column = batch.column(batch.schema.get_field_index(name))
            if column.null_count:
                nulls = column.is_null()
                missing = nulls if missing is None else pc.or_(missing, nulls)
        if missing is not None and missing.true_count:
            self.skipped += missing.true_count
            self.unplaced.append(batch.filter(missing))


def _after(scan: StreamScan, output: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """``output``, refusing to give a row before ``scan``'s stream was read whole."""
    import pyarrow as pa

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in output:
            if not scan.complete():
                raise RunFailed(
                    "internal error: the view gave rows before its source was read whole, so "
                    "a lost connection could no longer be retried safely",
                    fix="report this as a bug; rerun the view (nothing was written)",
                )
            yield batch

    return pa.RecordBatchReader.from_batches(output.schema, batches())


def _read_again(scan: Scan, exc: Exception, attempt: int, view: str, run_id: str) -> None:
    """Return (after a backoff) when the read that failed with ``exc`` on try ``attempt`` is to
    be started again; raise the error to report otherwise."""
    error, delay = read_failure(scan, exc, attempt)
    if delay < 0:
        if error is exc:
            raise exc
        raise error from None
    fields = {"view": view, "run_id": run_id, "attempt": attempt + 2, "error": str(error)}
    log.warning("source read lost its connection; reading it again", extra={"fields": fields})
    time.sleep(delay)
