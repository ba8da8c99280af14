"""Fitted statistics of cleaning transforms (``normalize``, ``standardize``, and ``fill_null`` /
``outliers`` given ``fit=``): computed once over a training range, then reused by every run."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from headwater.stores.registry._sql import Db

_COLUMNS = (
    "view_name, step_key, step, position, fit_start_ms, fit_end_ms, stats, rows_fitted,"
    " view_version, fitted_at"
)


@dataclass(frozen=True)
class FittedStatistics:
    """The statistics one step of a view was fitted with.

    Attributes:
        view: the view.
        step_key: identity of the step and of the steps before it (a digest of their specs);
            a changed step or fit range gets a new key, hence new statistics.
        step: the step as messages name it, e.g. ``standardize(amount)``.
        position: the step's place in the view's ``transforms`` (1-based).
        fit_start_ms: start of the training range (inclusive), epoch milliseconds.
        fit_end_ms: end of the training range (exclusive).
        stats: the numbers, e.g. ``{"mean": 12.5, "std": 3.1, "rows": 1000}``.
        rows: values the statistics were computed from.
        view_version: the view's registry version when they were fitted (``None`` if the view
            was never applied).
        fitted_at: when.
    """

    view: str
    step_key: str
    step: str
    position: int
    fit_start_ms: int
    fit_end_ms: int
    stats: dict[str, Any] = field(default_factory=dict)
    rows: int = 0
    view_version: int | None = None
    fitted_at: datetime | None = None


class FittedRecords:
    """Registry methods for fitted statistics (mixed into ``Registry``)."""

    _db: Db
    _lock: threading.RLock

    def save_fitted_statistics(self, record: FittedStatistics) -> FittedStatistics:
        """Store ``record`` unless statistics with its key exist; return the stored ones.

        The first writer wins, so concurrent runs that fit the same step all go on with one set
        of numbers.
        """
        now = self._db.to_db_ts(record.fitted_at or datetime.now(UTC))
        with self._lock, self._db.transaction():
            self._db.run(
                f"INSERT INTO {{fitted_statistics}} ({_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (view_name, step_key) DO NOTHING",
                (
                    record.view,
                    record.step_key,
                    record.step,
                    record.position,
                    record.fit_start_ms,
                    record.fit_end_ms,
                    json.dumps(record.stats, sort_keys=True, allow_nan=False),
                    record.rows,
                    record.view_version,
                    now,
                ),
            )
            stored = self._select_fitted(record.view, record.step_key)
        return stored[0]

    def fitted_statistics(
        self, view: str | None = None, step_key: str | None = None
    ) -> list[FittedStatistics]:
        """Stored statistics, of one view (and one step key) or of all, by view and position."""
        with self._lock:
            return self._select_fitted(view, step_key)

    def delete_fitted_statistics(self, view: str) -> int:
        """Forget the statistics of ``view`` (its next run fits them again); return how many
        were forgotten."""
        with self._lock, self._db.transaction():
            rows = self._db.run(
                "DELETE FROM {fitted_statistics} WHERE view_name = ? RETURNING step_key", (view,)
            )
        return len(rows)

    def _select_fitted(self, view: str | None, step_key: str | None) -> list[FittedStatistics]:
        rows = self._db.run(
            f"SELECT {_COLUMNS} FROM {{fitted_statistics}}"
            " WHERE view_name = COALESCE(?, view_name) AND step_key = COALESCE(?, step_key)"
            " ORDER BY view_name, position, fitted_at",
            (view, step_key),
        )
        return [
            FittedStatistics(
                view=r[0],
                step_key=r[1],
                step=r[2],
                position=int(r[3]),
                fit_start_ms=int(r[4]),
                fit_end_ms=int(r[5]),
                stats=json.loads(r[6]),
                rows=int(r[7]),
                view_version=None if r[8] is None else int(r[8]),
                fitted_at=self._db.from_db_ts(r[9]),
            )
            for r in rows
        ]
