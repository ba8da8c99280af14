"""Data-quality records of the registry: check results per run, and source schemas at apply."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from headwater.stores.registry._sql import Db

_SELECT_CHECKS = (
    "SELECT run_id, view_name, stage, subject, check_name, kind, severity, column_names,"
    " passed, action, rows_checked, rows_failed, message, sample, recorded_at"
    " FROM {check_results} WHERE view_name = COALESCE(?, view_name)"
    " AND run_id = COALESCE(?, run_id) ORDER BY run_id DESC, position LIMIT ?"
)


@dataclass(frozen=True)
class CheckRecord:
    """One check's result in one run, as the registry stores it.

    ``stage`` is ``source`` (checks on the rows read, and the source's schema contract) or
    ``view`` (checks on the computed rows); ``action`` is ``passed``, ``warned``,
    ``quarantined`` or ``failed``.
    """

    run_id: str
    view: str
    stage: str
    subject: str
    check: str
    kind: str
    severity: str
    columns: tuple[str, ...]
    passed: bool
    action: str
    rows_checked: int
    rows_failed: int
    message: str
    sample: list[Any] = field(default_factory=list)
    recorded_at: datetime | None = None


class QualityRecords:
    """Registry methods for check results and source schemas (mixed into ``Registry``)."""

    _db: Db
    _lock: threading.RLock

    def record_checks(self, records: Sequence[CheckRecord]) -> None:
        """Store check results; recording a run's stage again replaces its results."""
        if not records:
            return
        now = self._db.to_db_ts(datetime.now(UTC))
        with self._lock, self._db.transaction():
            for position, r in enumerate(records):
                self._db.run(
                    "INSERT INTO {check_results} (run_id, view_name, stage, subject, check_name,"
                    " position, kind, severity, column_names, passed, action, rows_checked,"
                    " rows_failed, message, sample, recorded_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (run_id, stage, check_name) DO UPDATE SET"
                    " subject = excluded.subject, position = excluded.position,"
                    " kind = excluded.kind, severity = excluded.severity,"
                    " column_names = excluded.column_names, passed = excluded.passed,"
                    " action = excluded.action, rows_checked = excluded.rows_checked,"
                    " rows_failed = excluded.rows_failed, message = excluded.message,"
                    " sample = excluded.sample, recorded_at = excluded.recorded_at",
                    (
                        r.run_id,
                        r.view,
                        r.stage,
                        r.subject,
                        r.check,
                        position if r.stage == "source" else 1000 + position,
                        r.kind,
                        r.severity,
                        json.dumps(list(r.columns)),
                        1 if r.passed else 0,
                        r.action,
                        r.rows_checked,
                        r.rows_failed,
                        r.message,
                        json.dumps(r.sample, default=str),
                        now,
                    ),
                )

    def check_results(
        self, view: str | None = None, *, run_id: str | None = None, limit: int = 500
    ) -> list[CheckRecord]:
        """Recorded check results, newest run first (in check order within a run)."""
        with self._lock:
            rows = self._db.run(_SELECT_CHECKS, (view, run_id, limit))
        return [
            CheckRecord(
                run_id=r[0],
                view=r[1],
                stage=r[2],
                subject=r[3],
                check=r[4],
                kind=r[5],
                severity=r[6],
                columns=tuple(json.loads(r[7])),
                passed=bool(r[8]),
                action=r[9],
                rows_checked=int(r[10]),
                rows_failed=int(r[11]),
                message=r[12],
                sample=json.loads(r[13]),
                recorded_at=self._db.from_db_ts(r[14]),
            )
            for r in rows
        ]

    def set_source_schema(self, source: str, schema: pa.Schema) -> None:
        """Record the columns a source had at ``apply`` (its schema contract compares them)."""
        data = schema.serialize().to_pybytes()
        with self._lock, self._db.transaction():
            self._db.run(
                "INSERT INTO {source_schemas} (source_name, arrow_schema, updated_at)"
                " VALUES (?, ?, ?) ON CONFLICT (source_name) DO UPDATE SET"
                " arrow_schema = excluded.arrow_schema, updated_at = excluded.updated_at",
                (source, data, self._db.to_db_ts(datetime.now(UTC))),
            )

    def source_schema(self, source: str) -> pa.Schema | None:
        """The columns recorded for ``source`` at the last ``apply``, or ``None``."""
        with self._lock:
            rows = self._db.run(
                "SELECT arrow_schema FROM {source_schemas} WHERE source_name = ?", (source,)
            )
        return pa.ipc.read_schema(pa.py_buffer(bytes(rows[0][0]))) if rows else None
