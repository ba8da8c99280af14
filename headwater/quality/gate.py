"""The checks of one view's run: source rows before computing, computed rows before writing.

The runner calls :meth:`QualityGate.source` once the source's rows are in DuckDB (or, when
:meth:`QualityGate.passes_through` says it reads none of them, on the stream itself),
:meth:`QualityGate.output` on the computed rows, and :meth:`QualityGate.commit` after the
offline write (and before the cursor moves). A failed ``fail`` check raises
:class:`~headwater.errors.QualityFailed` from the stage that found it, so nothing — offline,
online, sinks, checkpoint — is written; the results are in the registry either way.
Quarantined rows are written by ``commit``, after the features: a crash before it re-reads the
same rows, and the quarantine table's merge keeps reruns from storing them twice.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.definitions.checks import Unique
from headwater.errors import QualityFailed
from headwater.observability import get_logger
from headwater.quality.contract import compare
from headwater.quality.evaluate import evaluate
from headwater.quality.privacy import Privacy
from headwater.quality.quarantine import write_quarantine
from headwater.quality.results import CheckResult, QualityOutcome, raise_for
from headwater.quality.rules import StoredKeys
from headwater.sql import quote_ident as q
from headwater.sql import sql_literal
from headwater.stores.registry import CheckRecord

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.definitions import FeatureView
    from headwater.stores.offline.base import OfflineStore
    from headwater.stores.registry import Registry

log = get_logger("quality")
_ids = itertools.count()
DELETED = "_deleted"


@dataclass
class QualityReport:
    """Every check of one view's run (or dry run), in order: source stage, then view stage.

    Attributes:
        view: the view.
        results: ``(stage, result)`` pairs; ``stage`` is ``source`` or ``view``.
        rows_quarantined: rows set aside in both stages.
    """

    view: str
    results: list[tuple[str, CheckResult]] = field(default_factory=list)
    rows_quarantined: int = 0

    @property
    def failures(self) -> list[CheckResult]:
        """Results that stop a run."""
        return [r for _, r in self.results if r.action == "failed"]

    @property
    def failed(self) -> bool:
        return bool(self.failures)


class QualityGate:
    """Run a view's source checks, schema contract and view checks inside one run.

    Args:
        con: the run's DuckDB connection.
        view: the view being run.
        run_id: the run's id (stored with results and quarantined rows).
        registry: where results are recorded and the source's applied schema is read.
        offline: the offline store: ``unique`` checks against stored rows, and the quarantine
            table.
        dry_run: evaluate and report only: record nothing, raise nothing, write nothing.
        now_ms: the clock of ``freshness`` checks (default: now).
        table: the offline table the run writes (a table version's; default the view's
            name): ``unique`` checks against stored rows read it.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        view: FeatureView,
        *,
        run_id: str,
        registry: Registry | None = None,
        offline: OfflineStore | None = None,
        dry_run: bool = False,
        now_ms: int | None = None,
        table: str | None = None,
    ) -> None:
        self.con = con
        self.table = table or view.name
        self.view = view
        self.run_id = run_id
        self.registry = registry
        self.offline = offline
        self.dry_run = dry_run
        self.now_ms = now_ms
        self.report = QualityReport(view.name)
        self._outcomes: list[QualityOutcome] = []
        self._pending: list[tuple[str, str]] = []
        self._temporary: list[tuple[str, str]] = []
        self._tag = f"__hw_gate{next(_ids)}"

    @property
    def rows_quarantined(self) -> int:
        return self.report.rows_quarantined

    # ------------------------------------------------------------------ stages
    def passes_through(self, relation: str) -> bool:
        """Whether :meth:`source` would hand ``relation`` on as it is without reading it: the
        source has no checks and its columns are the ones recorded at ``apply`` (their types
        are looked up, no row is read)."""
        source = self.view.source
        if source.checks:
            return False
        recorded = None if self.registry is None else self.registry.source_schema(source.name)
        return compare(self.con, source, relation, recorded, "").result is None

    def source(self, relation: str) -> str:
        """Check the source rows in ``relation``; return the relation of rows that go on."""
        source = self.view.source
        subject = f"source {source.name!r}"
        recorded = None if self.registry is None else self.registry.source_schema(source.name)
        contract = compare(self.con, source, relation, recorded, subject)
        if contract.result is not None:
            self._require_placing_columns(relation, contract.result.diagnostics)
        checks = [*contract.checks, *source.checks]
        if not checks and contract.result is None:
            return relation
        outcome = evaluate(
            self.con,
            checks,
            relation,
            subject=subject,
            run_id=self.run_id,
            timestamp_field=source.timestamp_field,
            now_ms=self.now_ms,
            privacy=Privacy.of(self.view),  # the rows are still as the source gave them
        )
        passing = outcome.relation
        if contract.select is not None:
            passing = f"{self._tag}_contract"
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW {passing} AS SELECT {contract.select} "
                f"FROM {outcome.relation}"
            )
            self._temporary.append(("VIEW", passing))
        results = ([contract.result] if contract.result else []) + outcome.results
        self._finish("source", outcome, results)
        return passing

    def _require_placing_columns(self, relation: str, diagnostics: dict[str, Any]) -> None:
        """Refuse a read that lost the event-time or a join-key column (a changed reader option
        can make a CSV read as one column): every row would be set aside."""
        view, source = self.view, self.view.source
        missing = set(diagnostics.get("missing") or ())
        roles = [(source.timestamp_field, "event time")] + [(k, "join key") for k in view.join_keys]
        for column, role in roles:
            if column in missing:
                found = [
                    str(r[0])
                    for r in self.con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
                ]
                shown = ", ".join(found[:6]) + (", …" if len(found) > 6 else "")
                raise QualityFailed(
                    f"view {view.name!r}: source {source.name!r} has no column {column!r} (the "
                    f"{role}) any more; it reads as {len(found)} column(s): {shown}",
                    fix="check the source's path and reader options (delimiter, header); if "
                    "the column was renamed, change the definitions and `headwater apply`",
                )

    def set_aside_unplaceable(self, relation: str) -> int:
        """Quarantine the rows of ``relation`` without an event time or a join key (the view
        cannot place them in time or by entity), with the reason; return how many there are.
        Written by :meth:`commit` with the other quarantined rows."""
        view = self.view
        roles = [(k, "join key") for k in view.join_keys]
        roles.append((view.source.timestamp_field, "event time"))
        bad = " OR ".join(f"{q(c)} IS NULL" for c, _ in roles)
        reasons = ", ".join(
            f"CASE WHEN {q(c)} IS NULL THEN {sql_literal(f'null {role} {c}')} END"
            for c, role in roles
        )
        checks = ", ".join(
            f"CASE WHEN {q(c)} IS NULL THEN {sql_literal(f'not_null({c})')} END" for c, _ in roles
        )
        table = f"{self._tag}_unplaced{next(_ids)}"
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT *, coalesce({checks}) AS _check, "
            f"concat_ws('; ', {reasons}) AS _reason, {sql_literal(self.run_id)} AS _run_id "
            f"FROM {relation} WHERE {bad}"
        )
        self._temporary.append(("TABLE", table))
        count = int(self.con.sql(f"SELECT count(*) FROM {table}").fetchall()[0][0])
        if count:
            self._pending.append(("source", table))
            self.report.rows_quarantined += count
        return count

    def output(self, data: pa.RecordBatchReader, batch_rows: int = 100_000) -> pa.RecordBatchReader:
        """Check the computed rows; return the rows to write."""
        if not self.view.checks:
            return data
        view = self.view
        staged, incoming = f"{self._tag}_out", f"{self._tag}_in"
        # ``data`` streams from a query still open on ``con``: stage it through a second
        # connection to the same database (DuckDB spills it to disk if it is large).
        cursor = self.con.cursor()
        try:
            cursor.register(incoming, data)
            cursor.execute(f"CREATE OR REPLACE TABLE main.{staged} AS SELECT * FROM {incoming}")
            cursor.unregister(incoming)
        finally:
            cursor.close()
        self._temporary.append(("TABLE", staged))
        tombstones = DELETED in data.schema.names
        relation = staged
        if tombstones:  # deletions of emptied windows are not rows to check
            relation = (
                f"(SELECT * EXCLUDE ({DELETED}) FROM {staged} WHERE NOT coalesce({DELETED}, false))"
            )
        stored = None
        if self.offline is not None and any(
            isinstance(c, Unique) and c.stored for c in view.checks
        ):
            dataset = self.offline.dataset(self.table)
            if dataset is not None:
                name = f"{self._tag}_stored"
                self.con.register(name, dataset)
                self._temporary.append(("ARROW", name))
                stored = StoredKeys(name, (*view.join_keys, "event_timestamp"))
        outcome = evaluate(
            self.con,
            view.checks,
            relation,
            subject=f"view {view.name!r}",
            run_id=self.run_id,
            stored_keys=stored,
            timestamp_field="event_timestamp",
            now_ms=self.now_ms,
        )
        self._finish("view", outcome, outcome.results)
        query = f"SELECT * FROM {outcome.relation}"
        if tombstones:
            query = (
                f"SELECT *, false AS {DELETED} FROM {outcome.relation} UNION ALL BY NAME "
                f"SELECT * FROM {staged} WHERE coalesce({DELETED}, false)"
            )
        return self.con.sql(query).to_arrow_reader(batch_rows)

    def _finish(self, stage: str, outcome: QualityOutcome, results: list[CheckResult]) -> None:
        self._outcomes.append(outcome)
        self.report.results += [(stage, r) for r in results]
        self.report.rows_quarantined += outcome.rows_quarantined
        if outcome.quarantine_relation is not None:
            self._pending.append((stage, outcome.quarantine_relation))
        for result in results:
            if result.action != "passed":
                log.warning(
                    "quality check " + result.action,
                    extra={
                        "fields": {
                            "view": self.view.name,
                            "run_id": self.run_id,
                            "check": result.check,
                            "rows_failed": result.rows_failed,
                            "message": result.message,
                        }
                    },
                )
        if self.dry_run:
            return
        if self.registry is not None:
            self.registry.record_checks([self._record(stage, r) for r in results])
        raise_for([r for r in results if r.action == "failed"])

    def _record(self, stage: str, result: CheckResult) -> CheckRecord:
        return CheckRecord(
            run_id=self.run_id,
            view=self.view.name,
            stage=stage,
            subject=result.subject,
            check=result.check,
            kind=result.kind,
            severity=result.severity,
            columns=result.columns,
            passed=result.passed,
            action=result.action,
            rows_checked=result.rows_checked,
            rows_failed=result.rows_failed,
            message=result.message,
            sample=result.to_dict()["sample"],
        )

    # ------------------------------------------------------------------ effects
    def commit(self) -> int:
        """Write the quarantined rows (after the features); return how many were new."""
        if self.dry_run or not self._pending:
            return 0
        if self.offline is None:
            raise RuntimeError("a quality gate that quarantines rows needs the offline store")
        written = 0
        for stage, relation in self._pending:
            written += write_quarantine(
                self.con, relation, stage=stage, offline=self.offline, view=self.view.name
            )
        self._pending.clear()
        return written

    def release(self) -> None:
        """Drop the temporary relations of this run's checks."""
        views = [(k, n) for k, n in self._temporary if k == "VIEW"]
        rest = [(k, n) for k, n in self._temporary if k != "VIEW"]
        for _, name in views:
            self.con.execute(f"DROP VIEW IF EXISTS {name}")
        for outcome in reversed(self._outcomes):
            outcome.release()
        for kind, name in rest:
            if kind == "ARROW":
                self.con.unregister(name)
            else:
                self.con.execute(f"DROP {kind} IF EXISTS {name}")
        self._temporary.clear()
