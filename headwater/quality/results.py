"""What evaluating checks produces: one result per check, and the outcome of a batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from headwater.errors import QualityFailed

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

ACTIONS = ("passed", "warned", "quarantined", "failed")
"""What a check's result led to: nothing, a warning, rows set aside, or a stopped run."""

QUARANTINE_COLUMNS = ("_check", "_reason", "_run_id")
"""Columns a quarantined row carries besides its own: the first check it failed (in
declaration order), the reasons of every quarantine check it failed, and the run."""


@dataclass(frozen=True)
class CheckResult:
    """The result of one check on one batch.

    Attributes:
        subject: what was checked, e.g. ``source 'orders'`` or ``view 'user_orders'``.
        check: the check's name.
        kind: ``not_null``, ``between``, ... (``schema_mode`` for a source's schema contract).
        severity: the declared severity.
        columns: the columns the check reads.
        passed: whether the check passed (``mostly`` taken into account).
        action: ``passed``, ``warned``, ``quarantined`` or ``failed`` (a check that could not be
            evaluated — its column is gone, its function raised — fails whatever its severity).
        message: one line naming the subject, the check, the column and what was found.
        rows_checked: rows the check applied to (row-level checks skip null values).
        rows_failed: offending rows.
        sample: a few offending values (one column) or rows (several columns).
        diagnostics: details by check kind (observed count, newest value, types, ...).
    """

    subject: str
    check: str
    kind: str
    severity: str
    columns: tuple[str, ...]
    passed: bool
    action: str
    message: str
    rows_checked: int = 0
    rows_failed: int = 0
    sample: list[Any] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-able values."""
        return {
            "subject": self.subject,
            "check": self.check,
            "kind": self.kind,
            "severity": self.severity,
            "columns": list(self.columns),
            "passed": self.passed,
            "action": self.action,
            "message": self.message,
            "rows_checked": self.rows_checked,
            "rows_failed": self.rows_failed,
            "sample": jsonable(self.sample),
            "diagnostics": jsonable(self.diagnostics),
        }


@dataclass
class QualityOutcome:
    """The checks of one batch, evaluated.

    Attributes:
        subject: what was checked.
        run_id: the run the batch belongs to (stored in quarantined rows).
        relation: a DuckDB relation of the rows that go on (the input relation itself when no
            row-level check ran); select from it on the connection given to ``evaluate``.
        quarantine_relation: a DuckDB view of the quarantined rows with ``_check``,
            ``_reason`` and ``_run_id``, or ``None`` when no row was set aside.
        results: one per check, in declaration order.
        rows_in: rows in the batch.
        rows_quarantined: rows set aside (each once, however many checks it failed).
    """

    subject: str
    run_id: str
    relation: str
    quarantine_relation: str | None
    results: list[CheckResult]
    rows_in: int
    rows_quarantined: int
    _con: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)
    _temporary: list[tuple[str, str]] = field(default_factory=list, repr=False)

    @property
    def rows_passed(self) -> int:
        """Rows that go on: ``rows_in - rows_quarantined``."""
        return self.rows_in - self.rows_quarantined

    @property
    def failures(self) -> list[CheckResult]:
        """Results that stop the run."""
        return [r for r in self.results if r.action == "failed"]

    @property
    def warnings(self) -> list[CheckResult]:
        """Results recorded as warnings."""
        return [r for r in self.results if r.action == "warned"]

    @property
    def quarantined(self) -> pa.Table:
        """The quarantined rows as an Arrow table (original columns, then ``_check``,
        ``_reason``, ``_run_id``). Empty — with the input's columns — when none were."""
        import pyarrow as pa

        if self._con is None:
            return pa.table({name: pa.array([], pa.string()) for name in QUARANTINE_COLUMNS})
        if self.quarantine_relation is None:
            empty = self._con.sql(f"SELECT * FROM {self.relation} LIMIT 0").to_arrow_table()
            for name in QUARANTINE_COLUMNS:
                empty = empty.append_column(name, pa.array([], pa.string()))
            return empty
        return self._con.sql(f"SELECT * FROM {self.quarantine_relation}").to_arrow_table()

    def raise_for_failures(self) -> None:
        """Raise :class:`~headwater.errors.QualityFailed` listing every failed check."""
        raise_for(self.failures)

    def release(self) -> None:
        """Drop the temporary tables and views this evaluation created (after use)."""
        if self._con is None:
            return
        for kind, name in reversed(self._temporary):
            self._con.execute(f"DROP {kind} IF EXISTS {name}")
        self._temporary.clear()


def raise_for(failures: Sequence[CheckResult]) -> None:
    """Raise :class:`QualityFailed` for ``failures`` (nothing if empty)."""
    if not failures:
        return
    count = f"{len(failures)} check{'s' if len(failures) > 1 else ''} failed"
    raise QualityFailed(
        f"{count}, nothing was written: " + "; ".join(r.message for r in failures),
        fix="correct the data at its source, or lower the check's severity to 'quarantine' "
        "(set the rows aside) or 'warn' (record and go on)",
        failures=list(failures),
    )


def jsonable(value: Any) -> Any:
    """``value`` with dates, decimals and bytes turned into JSON-able values."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        return "NaN"
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value[:64].hex()
    return str(value)
