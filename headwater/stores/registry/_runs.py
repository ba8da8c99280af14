"""Run history of the registry: runs started, finished, kept alive and found dead.

A run is ``running`` from :meth:`RunRecords.start_run` until :meth:`RunRecords.finish_run`
records ``success`` or ``failed``. A process killed in between (SIGKILL, a lost machine) never
finishes its run, so each run also records its *owner* — host, process id and the process's
start time — and a *heartbeat* its owner refreshes while it works. The next run to start marks a
``running`` run ``aborted`` when its owner process is gone (same host: checked at once) or its
heartbeat is older than the lease (``runs.lease_s``, default :data:`LEASE_S`; any host).

The same owner and heartbeat make a *per-view lease*: a run or backfill of a view starts only
when no live run or backfill of that view is running (a materialization only when no live
materialization of it is); otherwise :meth:`RunRecords.start_run` raises :class:`ViewBusy`
naming the holder. The check and the insert are one serialised transaction, so of two runs
started at once exactly one gets the view. A dead holder's run is marked ``aborted`` first,
which frees the view.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from headwater.errors import NotFound, ViewBusy
from headwater.observability.redact import redact
from headwater.stores.registry._records import RunRecord
from headwater.stores.registry._sql import Db

RUN_KINDS = ("run", "materialize", "backfill", "stream")
FINAL_STATUSES = ("success", "failed", "interrupted")
STATUSES = ("running", *FINAL_STATUSES, "aborted")
LEASES = {
    "run": ("run", "backfill"),
    "backfill": ("run", "backfill"),
    "materialize": ("materialize",),
}
"""Kinds of runs of one view that exclude each other (streaming workers share a view's
partitions through Kafka instead)."""

HEARTBEAT_S = 20.0
"""How often a running run's owner refreshes its heartbeat."""
LEASE_S = 120.0
"""A running run whose heartbeat is older than this is taken for dead (six missed beats)."""

_SELECT_RUNS = (
    "SELECT run_id, view_name, kind, status, started_at, ended_at, rows_in, rows_out, error,"
    " details FROM {runs} WHERE view_name = COALESCE(?, view_name) AND kind = COALESCE(?, kind)"
    " AND status = COALESCE(?, status) ORDER BY started_at DESC, id DESC LIMIT ?"
)

_MATCH_RUN_IDS = (
    "SELECT run_id FROM {runs} WHERE substr(run_id, 1, ?) = ? ORDER BY started_at DESC LIMIT 2"
)


def process_owner() -> str:
    """``host:pid:start`` of this process (``start``: its start time in clock ticks since boot,
    read from ``/proc``; empty elsewhere), which tells it from a later process with its pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def _start_ticks(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            # The command name (field 2) may hold spaces: count fields after its ")".
            return handle.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return ""


def owner_alive(owner: str) -> bool | None:
    """Whether the process ``owner`` names is alive: ``None`` when it runs on another host (its
    heartbeat decides)."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return None
    host, pid_text, start = parts
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if start:
        return _start_ticks(pid) == start  # gone, or its pid taken by another process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_owner(owner: str | None) -> str:
    """``host:pid`` of an owner ``host:pid:start``."""
    if not owner:
        return "an unknown process"
    parts = owner.rsplit(":", 2)
    return ":".join(parts[:2]) if len(parts) == 3 else owner


class RunRecords:
    """Registry methods for the run history (mixed into ``Registry``)."""

    _db: Db
    _lock: threading.RLock
    lease_s: float = LEASE_S
    """Seconds without a heartbeat after which a running run is taken for dead."""

    @property
    def heartbeat_s(self) -> float:
        """How often a running run's owner refreshes its heartbeat (a sixth of the lease, at
        most :data:`HEARTBEAT_S`)."""
        return min(HEARTBEAT_S, self.lease_s / 6)

    def start_run(self, view: str, kind: str = "run", details: dict[str, Any] | None = None) -> str:
        """Record a run as ``running`` and return its id (32 hex characters, time-sortable).

        Runs left ``running`` by dead processes are marked ``aborted`` first.

        Raises:
            ViewBusy: a live run of ``view`` holds it (see :data:`LEASES`).
        """
        if kind not in RUN_KINDS:
            raise ValueError(f"run kind must be one of {RUN_KINDS}, got {kind!r}")
        run_id = f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"
        with self._lock, self._db.transaction():
            # A no-op write takes the row lock: starts of runs are serialised, so the check
            # below and the insert are one step.
            self._db.run("UPDATE {meta} SET value = value WHERE name = 'schema_version'")
            self._abort_dead()
            now = self._db.to_db_ts(_now())
            if kind in LEASES:
                self._check_lease(view, kind)
            self._db.run(
                "INSERT INTO {runs} (run_id, view_name, kind, status, started_at, details,"
                " owner, heartbeat_at) VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
                (run_id, view, kind, now, json.dumps(details or {}), process_owner(), now),
            )
        return run_id

    def heartbeat(self, run_id: str) -> None:
        """Tell that the running run ``run_id`` is alive."""
        with self._lock, self._db.transaction():
            self._db.run(
                "UPDATE {runs} SET heartbeat_at = ? WHERE run_id = ? AND status = 'running'",
                (self._db.to_db_ts(_now()), run_id),
            )

    def _check_lease(self, view: str, kind: str) -> None:
        kinds = LEASES[kind]
        marks = ", ".join("?" for _ in kinds)
        rows = self._db.run(
            "SELECT run_id, kind, owner, started_at FROM {runs} WHERE view_name = ?"
            f" AND status = 'running' AND kind IN ({marks}) ORDER BY started_at",
            (view, *kinds),
        )
        if not rows:
            return
        run_id, held_by, owner, started = rows[0]
        since = self._db.from_db_ts(started).strftime("%Y-%m-%d %H:%M:%S UTC")
        holder = describe_owner(owner)
        raise ViewBusy(
            f"view {view!r} is busy: {held_by} {run_id} by {holder}, started at {since}, "
            "is still running",
            fix="wait for it to end (`headwater run --wait SECONDS` waits), or stop that "
            f"process; a dead one frees the view after {self.lease_s:.0f}s without a heartbeat",
            holder=holder,
        )

    def abort_dead_runs(self, *, lease_s: float | None = None) -> list[str]:
        """Mark ``aborted`` the running runs whose owner process is gone, or whose heartbeat
        is older than ``lease_s`` (default: the registry's lease); return their ids."""
        with self._lock, self._db.transaction():
            return self._abort_dead(lease_s)

    def _abort_dead(self, lease_s: float | None = None) -> list[str]:
        lease_s = self.lease_s if lease_s is None else lease_s
        now = _now()
        with self._lock:
            rows = self._db.run(
                "SELECT run_id, owner, COALESCE(heartbeat_at, started_at) FROM {runs}"
                " WHERE status = 'running'"
            )
        dead: list[tuple[str, str]] = []
        for run_id, owner, beat in rows:
            alive = owner_alive(owner) if owner else None
            silent = now - self._db.from_db_ts(beat) > timedelta(seconds=lease_s)
            if alive is False:
                dead.append((run_id, f"its process ({owner}) ended without finishing it"))
            elif alive is None and silent:
                who = owner or "owner unknown"
                dead.append((run_id, f"no heartbeat for over {lease_s:.0f}s ({who})"))
        if not dead:
            return []
        ended = self._db.to_db_ts(now)
        with self._lock:
            for run_id, why in dead:
                self._db.run(
                    "UPDATE {runs} SET status = 'aborted', ended_at = ?, error = ?"
                    " WHERE run_id = ? AND status = 'running'",
                    (ended, f"aborted: {why}", run_id),
                )
        return [run_id for run_id, _ in dead]

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        rows_in: int = 0,
        rows_out: int = 0,
        error: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record the end of a run.

        Args:
            run_id: The id :meth:`start_run` returned.
            status: ``"success"`` or ``"failed"``.
            rows_in: Rows read.
            rows_out: Rows written.
            error: Error text; secrets in it are redacted before storing.
            details: Merged into the details given at start.

        Raises:
            NotFound: No run has this id.
        """
        if status not in FINAL_STATUSES:
            raise ValueError(f"a run finishes with one of {FINAL_STATUSES}, got {status!r}")
        with self._lock, self._db.transaction():
            rows = self._db.run("SELECT details FROM {runs} WHERE run_id = ?", (run_id,))
            if not rows:
                raise NotFound(f"no run with id {run_id!r}", fix="pass an id from start_run()")
            merged = {**json.loads(rows[0][0]), **(details or {})}
            self._db.run(
                "UPDATE {runs} SET status = ?, ended_at = ?, rows_in = ?, rows_out = ?,"
                " error = ?, details = ? WHERE run_id = ?",
                (
                    status,
                    self._db.to_db_ts(_now()),
                    rows_in,
                    rows_out,
                    None if error is None else redact(error),
                    json.dumps(merged),
                    run_id,
                ),
            )

    def runs(
        self, view: str | None = None, kind: str | None = None, limit: int = 20
    ) -> list[RunRecord]:
        """Recent runs, newest first, optionally of one view and/or kind."""
        return self._select_runs(view, kind, None, limit)

    def match_run_ids(self, prefix: str) -> list[str]:
        """The run ids that start with ``prefix`` (at most two: one is a match, two are
        ambiguous)."""
        with self._lock:
            rows = self._db.run(_MATCH_RUN_IDS, (len(prefix), prefix))
        return [str(r[0]) for r in rows]

    def last_run(
        self, view: str, kind: str = "run", status: str | None = "success"
    ) -> RunRecord | None:
        """The newest run of ``view`` of this kind with this status (any status if ``None``)."""
        found = self._select_runs(view, kind, status, 1)
        return found[0] if found else None

    def _select_runs(
        self, view: str | None, kind: str | None, status: str | None, limit: int
    ) -> list[RunRecord]:
        with self._lock:
            rows = self._db.run(_SELECT_RUNS, (view, kind, status, limit))
        return [
            RunRecord(
                run_id=r[0],
                view=r[1],
                kind=r[2],
                status=r[3],
                started_at=self._db.from_db_ts(r[4]),
                ended_at=None if r[5] is None else self._db.from_db_ts(r[5]),
                rows_in=int(r[6]),
                rows_out=int(r[7]),
                error=r[8],
                details=json.loads(r[9]),
            )
            for r in rows
        ]


def _now() -> datetime:
    return datetime.now(UTC)
