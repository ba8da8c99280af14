"""Physical versions of a view's offline table.

A definition change that alters computed rows (:mod:`headwater.definitions.changes`) gets a new
*table version*: a new offline table (``<view>__v<N>``; version 1 is the table named like the
view), recorded here as ``building`` by ``apply``. The next ``run`` of the view fills it from a
full read of the source and then, in one registry transaction with the source cursor, makes it
``active`` and the previous one ``retired``. Until that switch the active version serves every
read (training sets, ``materialize``, ``get``, ``serve``). Retired versions stay, for
reproducing past training sets, until ``headwater prune`` removes them. A building version
whose change was reverted before it was built becomes ``abandoned`` (also pruned).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from headwater.stores.registry._sql import Db

Action = Literal["new", "same", "building", "abandoned"]

STATUSES = ("building", "active", "retired", "abandoned")
_COLUMNS = (
    "view_name, version, table_name, fingerprint, status, reason, created_at, activated_at,"
    " retired_at"
)


def table_name(view: str, version: int) -> str:
    """The offline table of ``view``'s table version ``version`` (``__`` is reserved in view
    names, so no view's table can be another view's version)."""
    return view if version == 1 else f"{view}__v{version}"


@dataclass(frozen=True, kw_only=True)
class TableVersion:
    """One physical version of a view's offline table."""

    view: str
    version: int
    table: str
    fingerprint: str
    """:func:`~headwater.definitions.changes.rows_fingerprint` of the definition it holds."""
    status: str
    reason: str
    created_at: datetime
    activated_at: datetime | None = None
    retired_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class VersionChange:
    """What ``apply`` did to a view's table versions.

    ``action``: ``new`` (first version of a new view), ``same`` (rows unchanged), ``building``
    (a new version to be built by the next run), ``abandoned`` (a version not built yet is no
    longer needed: the definition went back to the active one's rows).
    """

    view: str
    action: Action
    version: int
    serving: int
    """The version that serves reads until the next run."""


class VersionRecords:
    """Registry methods for table versions (mixed into ``Registry``)."""

    _db: Db
    _lock: threading.RLock

    def table_versions(self, view: str | None = None) -> list[TableVersion]:
        """Every recorded table version (of one view), by view and version."""
        where, params = ("", ()) if view is None else (" WHERE view_name = ?", (view,))
        with self._lock:
            rows = self._db.run(
                f"SELECT {_COLUMNS} FROM {{view_tables}}{where} ORDER BY view_name, version",
                params,
            )
        return [self._version(r) for r in rows]

    def serving_version(self, view: str) -> TableVersion | None:
        """The active table version of ``view`` (``None`` before its first ``apply``)."""
        return self._one(view, "active")

    def serving_table(self, view: str) -> str:
        """The offline table serving ``view``'s reads (the view's name before any version)."""
        active = self.serving_version(view)
        return view if active is None else active.table

    def building_version(self, view: str) -> TableVersion | None:
        """The table version waiting to be built by the next run, if any."""
        return self._one(view, "building")

    def start_version(self, view: str, fingerprint: str, reason: str) -> TableVersion:
        """Record a new ``building`` version (``run --full-refresh``), or return the one that
        is already waiting."""
        with self._lock, self._db.transaction():
            found = self._rows(view)
            for row in found:
                if row.status == "building":
                    return row
            version = max((r.version for r in found), default=0) + 1
            if not found:  # never applied: version 1 is the table named like the view
                self._insert(view, 1, fingerprint, "active", "first run")
                version = 2
            self._insert(view, version, fingerprint, "building", reason)
        result = self.building_version(view)
        assert result is not None  # just written
        return result

    def activate_version(
        self, view: str, version: int, *, checkpoint: tuple[str, Any | None] | None = None
    ) -> None:
        """Switch ``view`` to its built ``version`` atomically: it becomes active, the active
        one retired, and ``checkpoint`` (a source cursor ``(name, value)``; ``None`` value:
        deleted) is saved in the same transaction."""
        import json

        now = self._db.to_db_ts(datetime.now(UTC))
        with self._lock, self._db.transaction():
            self._db.run(
                "UPDATE {view_tables} SET status = 'retired', retired_at = ?"
                " WHERE view_name = ? AND status = 'active'",
                (now, view),
            )
            self._db.run(
                "UPDATE {view_tables} SET status = 'active', activated_at = ?"
                " WHERE view_name = ? AND version = ?",
                (now, view, version),
            )
            if checkpoint is not None:
                name, value = checkpoint
                self._db.run("DELETE FROM {checkpoints} WHERE name = ?", (name,))
                if value is not None:
                    self._db.run(
                        "INSERT INTO {checkpoints} (name, value, updated_at) VALUES (?, ?, ?)",
                        (name, json.dumps(value, sort_keys=True, allow_nan=False), now),
                    )

    def forget_version(self, view: str, version: int) -> None:
        """Remove a retired or abandoned version's record (its table is removed first)."""
        with self._lock, self._db.transaction():
            self._db.run(
                "DELETE FROM {view_tables} WHERE view_name = ? AND version = ?"
                " AND status IN ('retired', 'abandoned')",
                (view, version),
            )

    def _sync_versions(
        self, wanted: dict[str, tuple[str | None, str]], *, write: bool
    ) -> list[VersionChange]:
        """The table-version side of ``apply`` (inside its transaction when ``write``):
        ``wanted`` maps each view to ``(fingerprint of its applied definition or None,
        fingerprint of the new one)``."""
        changes = []
        action: Action
        for view, (old_fp, new_fp) in sorted(wanted.items()):
            rows = self._rows(view)
            if not rows:
                if old_fp is None or old_fp == new_fp:  # new, or applied before versions
                    if write:
                        reason = "first apply" if old_fp is None else "applied before versions"
                        self._insert(view, 1, new_fp, "active", reason)
                    action = "new" if old_fp is None else "same"
                    changes.append(VersionChange(view=view, action=action, version=1, serving=1))
                    continue
                rows = [self._adopt(view, old_fp, write)]
            active = next((r for r in rows if r.status == "active"), None)
            building = next((r for r in rows if r.status == "building"), None)
            serving = active.version if active is not None else 0
            top = max(r.version for r in rows)
            if building is not None and building.fingerprint == new_fp:
                action, version = "building", building.version
            elif building is not None and active is not None and active.fingerprint == new_fp:
                action, version = "abandoned", building.version
                if write:
                    self._set_status(view, version, "abandoned")
            elif building is not None:
                action, version = "building", building.version
                if write:  # another change before the build: the same version, rebuilt
                    self._db.run(
                        "UPDATE {view_tables} SET fingerprint = ? WHERE view_name = ?"
                        " AND version = ?",
                        (new_fp, view, version),
                    )
            elif active is not None and active.fingerprint == new_fp:
                action, version = "same", active.version
            else:
                action, version = "building", top + 1
                if write:
                    self._insert(view, version, new_fp, "building", "definition changed")
            changes.append(
                VersionChange(view=view, action=action, version=version, serving=serving)
            )
        return changes

    def _adopt(self, view: str, fingerprint: str, write: bool) -> TableVersion:
        """Version 1 for a view applied before table versions existed."""
        if write:
            self._insert(view, 1, fingerprint, "active", "applied before versions")
        return TableVersion(
            view=view,
            version=1,
            table=table_name(view, 1),
            fingerprint=fingerprint,
            status="active",
            reason="applied before versions",
            created_at=datetime.now(UTC),
        )

    def _one(self, view: str, status: str) -> TableVersion | None:
        with self._lock:
            found = [r for r in self._rows(view) if r.status == status]
        return found[-1] if found else None

    def _rows(self, view: str) -> list[TableVersion]:
        rows = self._db.run(
            f"SELECT {_COLUMNS} FROM {{view_tables}} WHERE view_name = ? ORDER BY version",
            (view,),
        )
        return [self._version(r) for r in rows]

    def _insert(self, view: str, version: int, fingerprint: str, status: str, reason: str) -> None:
        now = self._db.to_db_ts(datetime.now(UTC))
        self._db.run(
            f"INSERT INTO {{view_tables}} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                view,
                version,
                table_name(view, version),
                fingerprint,
                status,
                reason,
                now,
                now if status == "active" else None,
                None,
            ),
        )

    def _set_status(self, view: str, version: int, status: str) -> None:
        self._db.run(
            "UPDATE {view_tables} SET status = ? WHERE view_name = ? AND version = ?",
            (status, view, version),
        )

    def _version(self, row: tuple[Any, ...]) -> TableVersion:
        def ts(value: Any) -> datetime | None:
            return None if value is None else self._db.from_db_ts(value)

        created = ts(row[6])
        assert created is not None  # NOT NULL
        return TableVersion(
            view=row[0],
            version=int(row[1]),
            table=row[2],
            fingerprint=row[3],
            status=row[4],
            reason=row[5],
            created_at=created,
            activated_at=ts(row[7]),
            retired_at=ts(row[8]),
        )
