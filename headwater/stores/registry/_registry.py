"""The registry: applied definitions and their versions, view schemas, runs and checkpoints."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.errors import ConfigError, StaleCheckpoint
from headwater.plugins import load_plugin
from headwater.stores.registry._checks import QualityRecords
from headwater.stores.registry._fitted import FittedRecords
from headwater.stores.registry._records import (
    ApplyDiff,
    DefinitionRecord,
    StreamPartition,
    canonical_specs,
    diff_specs,
)
from headwater.stores.registry._runs import FINAL_STATUSES, RUN_KINDS, STATUSES, RunRecords
from headwater.stores.registry._sql import BASELINE, DDL, MIGRATIONS, SCHEMA_VERSION, Db
from headwater.stores.registry._versions import VersionRecords

if TYPE_CHECKING:
    from types import TracebackType

    from headwater.config.models import ProjectConfig, RegistryConfig

_LATEST = (
    "SELECT kind, name, version, spec, applied_at, removed_at FROM {definitions} d"
    " WHERE version = (SELECT MAX(version) FROM {definitions} m"
    " WHERE m.kind = d.kind AND m.name = d.name) ORDER BY kind, name"
)

_APPLIED_MARKER = (
    "SELECT (SELECT COUNT(*) FROM {definitions}), (SELECT MAX(applied_at) FROM {definitions}),"
    " (SELECT MAX(removed_at) FROM {definitions}), (SELECT MAX(updated_at) FROM {view_schemas})"
)


class Registry(RunRecords, QualityRecords, FittedRecords, VersionRecords):
    """Metadata of a project: definitions, view schemas, checkpoints and a counter (the run
    history: :class:`RunRecords`; check results and source schemas: :class:`QualityRecords`;
    statistics of fitted transforms: :class:`FittedRecords`; the physical versions of views'
    offline tables: :class:`VersionRecords`).

    An instance is safe to share between threads (calls are serialised); several instances
    and processes may use the same registry concurrently.
    """

    def __init__(self, config: RegistryConfig, project: ProjectConfig) -> None:
        """Connect and create the tables if needed.

        Args:
            config: Which backend (``registry.type``, looked up in
                :data:`headwater.plugins.REGISTRIES`), and where.
            project: The project, used to resolve a relative SQLite path.

        Raises:
            ConnectionFailed: PostgreSQL is unreachable (the message shows the DSN redacted).
            MissingDependency: ``psycopg`` is not installed for a PostgreSQL registry.
            ConfigError: The registry cannot be opened or was written by a newer headwater.
        """
        self.config = config
        self.lease_s = project.runs.lease_s
        self._lock = threading.RLock()
        backend: type[Db] = load_plugin("headwater.registries", config.type)
        self._db = backend.open(config, project)
        try:
            self._bootstrap()
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def open(cls, project: ProjectConfig) -> Registry:
        """Open the registry configured in ``project.registry``."""
        return cls(project.registry, project)

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _bootstrap(self) -> None:
        """Create the tables of a new registry, or upgrade an older one in place: the
        migrations from its version on run in order, in one transaction with the version
        update (a failed step leaves the registry as it was). A registry of a newer schema
        is refused before anything is written."""
        with self._db.transaction():
            self._db.prelude()
            self._db.run(DDL[0])  # meta: where the version is
            rows = self._db.run("SELECT value FROM {meta} WHERE name = 'schema_version'")
            found = int(rows[0][0]) if rows else None
            if found is not None and found > SCHEMA_VERSION:
                raise ConfigError(
                    f"the registry has schema version {found}, but this headwater supports up "
                    f"to {SCHEMA_VERSION}",
                    fix="upgrade headwater to the version that wrote the registry",
                )
            for statement in DDL[1:]:
                self._db.run(statement)
            if found is None:
                found = BASELINE
                self._db.run(
                    "INSERT INTO {meta} (name, value) VALUES ('schema_version', ?)", (str(found),)
                )
            while found < SCHEMA_VERSION:
                if found not in MIGRATIONS:
                    raise ConfigError(
                        f"the registry has schema version {found}, which this headwater cannot "
                        "upgrade",
                        fix="upgrade it with the headwater release that followed the one that "
                        "wrote it",
                    )
                for statement in MIGRATIONS[found]:
                    self._db.run(statement)
                found += 1
                self._db.run(
                    "UPDATE {meta} SET value = ? WHERE name = 'schema_version'", (str(found),)
                )
                self._db.run(
                    "INSERT INTO {meta} (name, value) VALUES (?, ?)",
                    (f"migrated:{found}", _now().isoformat(timespec="seconds")),
                )

    # -------------------------------------------------------------- definitions
    def apply(
        self,
        specs: list[dict[str, Any]],
        rows: dict[str, tuple[str | None, str]] | None = None,
    ) -> ApplyDiff:
        """Record ``specs`` as the current definitions, in one transaction.

        A definition gets a new version when its canonical JSON changed; definitions absent
        from ``specs`` are marked removed (their history is kept).

        Args:
            specs: JSON-able dicts, each with a ``kind`` and a ``name``.
            rows: per view, the rows fingerprints of its applied and of its new definition:
                a changed fingerprint records a new table version to build
                (:class:`VersionRecords`).

        Returns:
            What was added, changed, left unchanged and removed.

        Raises:
            DefinitionError: A spec lacks ``kind``/``name``, is not JSON-able, or is duplicated.
        """
        wanted = canonical_specs(specs)
        with self._lock, self._db.transaction():
            # A no-op write takes the row lock: concurrent applies run one after the other.
            self._db.run("UPDATE {meta} SET value = value WHERE name = 'schema_version'")
            latest = self._latest()
            diff = diff_specs(wanted, latest)
            now = self._db.to_db_ts(_now())
            insert = (
                "INSERT INTO {definitions} (kind, name, version, spec, applied_at)"
                " VALUES (?, ?, ?, ?, ?)"
            )
            for kind, name in diff.added:
                version = latest[(kind, name)][0] + 1 if (kind, name) in latest else 1
                self._db.run(insert, (kind, name, version, wanted[(kind, name)], now))
            for kind, name, version in diff.changed:
                self._db.run(insert, (kind, name, version, wanted[(kind, name)], now))
            for kind, name in diff.removed:
                self._db.run(
                    "UPDATE {definitions} SET removed_at = ? WHERE kind = ? AND name = ?"
                    " AND version = ?",
                    (now, kind, name, latest[(kind, name)][0]),
                )
            versions = self._sync_versions(rows or {}, write=True)
        return replace(diff, versions=versions)

    def plan(
        self,
        specs: list[dict[str, Any]],
        rows: dict[str, tuple[str | None, str]] | None = None,
    ) -> ApplyDiff:
        """The diff :meth:`apply` would produce, without writing anything."""
        wanted = canonical_specs(specs)
        with self._lock:
            diff = diff_specs(wanted, self._latest())
            return replace(diff, versions=self._sync_versions(rows or {}, write=False))

    def definitions(self, kind: str | None = None) -> list[DefinitionRecord]:
        """Current (not removed) definitions, optionally of one kind, sorted by kind and name."""
        with self._lock:
            rows = self._db.run(_LATEST)
        return [self._definition(row) for row in rows if row[5] is None and kind in (None, row[0])]

    def definition(self, kind: str, name: str) -> DefinitionRecord | None:
        """The current version of one definition, or ``None`` if absent or removed."""
        with self._lock:
            rows = self._db.run(
                "SELECT kind, name, version, spec, applied_at, removed_at FROM {definitions}"
                " WHERE kind = ? AND name = ? ORDER BY version DESC LIMIT 1",
                (kind, name),
            )
        return self._definition(rows[0]) if rows and rows[0][5] is None else None

    def history(self, kind: str, name: str) -> list[DefinitionRecord]:
        """Every recorded version of one definition, oldest first (removed ones included)."""
        with self._lock:
            rows = self._db.run(
                "SELECT kind, name, version, spec, applied_at FROM {definitions}"
                " WHERE kind = ? AND name = ? ORDER BY version",
                (kind, name),
            )
        return [self._definition(row) for row in rows]

    def applied_marker(self) -> tuple[Any, ...]:
        """A value that changes whenever ``apply`` records something (a definition added,
        changed or removed, a view's schema stored): cheap enough to ask on every request."""
        with self._lock:
            rows = self._db.run(_APPLIED_MARKER)
        return tuple(str(value) for value in rows[0])

    def _latest(self) -> dict[tuple[str, str], tuple[int, str, bool]]:
        """``(kind, name) -> (version, spec, removed)`` of each definition's latest version."""
        return {(r[0], r[1]): (int(r[2]), r[3], r[5] is not None) for r in self._db.run(_LATEST)}

    def _definition(self, row: tuple[Any, ...]) -> DefinitionRecord:
        return DefinitionRecord(
            kind=row[0],
            name=row[1],
            version=int(row[2]),
            spec=json.loads(row[3]),
            applied_at=self._db.from_db_ts(row[4]),
        )

    # -------------------------------------------------------------- schemas
    def set_schema(self, view: str, schema: pa.Schema) -> None:
        """Store the output schema of a view (field metadata included)."""
        data = schema.serialize().to_pybytes()
        with self._lock, self._db.transaction():
            self._db.run(
                "INSERT INTO {view_schemas} (view_name, arrow_schema, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (view_name) DO UPDATE SET arrow_schema = excluded.arrow_schema,"
                " updated_at = excluded.updated_at",
                (view, data, self._db.to_db_ts(_now())),
            )

    def schema(self, view: str) -> pa.Schema | None:
        """The stored output schema of a view, or ``None``."""
        with self._lock:
            rows = self._db.run(
                "SELECT arrow_schema FROM {view_schemas} WHERE view_name = ?", (view,)
            )
        return pa.ipc.read_schema(pa.py_buffer(bytes(rows[0][0]))) if rows else None

    # -------------------------------------------------------------- checkpoints
    def get_checkpoint(self, name: str) -> Any | None:
        """The JSON value stored under ``name``, or ``None``."""
        with self._lock:
            rows = self._db.run("SELECT value FROM {checkpoints} WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else None

    def set_checkpoint(self, name: str, value: Any) -> None:
        """Store (or overwrite) a JSON-able value under ``name``."""
        text = json.dumps(value, sort_keys=True, allow_nan=False)
        with self._lock, self._db.transaction():
            self._db.run(
                "INSERT INTO {checkpoints} (name, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value,"
                " updated_at = excluded.updated_at",
                (name, text, self._db.to_db_ts(_now())),
            )

    def delete_checkpoint(self, name: str) -> None:
        """Forget a checkpoint (no error if it does not exist)."""
        with self._lock, self._db.transaction():
            self._db.run("DELETE FROM {checkpoints} WHERE name = ?", (name,))

    # -------------------------------------------------------------- streaming partitions
    def stream_partitions(
        self, view: str, topic: str, partitions: list[int]
    ) -> dict[int, StreamPartition]:
        """The saved progress of ``partitions`` of ``topic`` for ``view`` (absent: none)."""
        if not partitions:
            return {}
        marks = ", ".join("?" for _ in partitions)
        with self._lock, self._db.transaction():
            rows = self._db.run(
                "SELECT kafka_partition, next_offset, meta, state FROM {stream_partitions}"
                f" WHERE view_name = ? AND topic = ? AND kafka_partition IN ({marks})",
                (view, topic, *partitions),
            )
            found = self._db.run(
                "SELECT kafka_partition, state FROM {stream_state_pieces}"
                f" WHERE view_name = ? AND topic = ? AND kafka_partition IN ({marks})"
                " ORDER BY kafka_partition, next_offset",
                (view, topic, *partitions),
            )
        pieces: dict[int, list[bytes]] = {}
        for partition, blob in found:
            pieces.setdefault(int(partition), []).append(bytes(blob))
        return {
            int(r[0]): StreamPartition(
                int(r[0]),
                int(r[1]),
                json.loads(r[2]),
                None if r[3] is None else bytes(r[3]),
                pieces=tuple(pieces.get(int(r[0]), ())),
            )
            for r in rows
        }

    def commit_stream(
        self, view: str, topic: str, updates: list[tuple[int | None, StreamPartition]]
    ) -> None:
        """Save new partition progress in one transaction, each only if the stored offset is
        still the expected one (``None``: no row yet) — a worker that lost a partition in a
        rebalance cannot overwrite its new owner's progress.

        Raises:
            StaleCheckpoint: a partition moved on; nothing was saved.
        """
        now = self._db.to_db_ts(_now())
        with self._lock, self._db.transaction():
            for expected, part in updates:
                meta = json.dumps(part.meta, sort_keys=True)
                where = (view, topic, part.partition)
                appending = part.piece is not None
                if expected is None:
                    rows = self._db.run(
                        "INSERT INTO {stream_partitions} (view_name, topic, kafka_partition,"
                        " next_offset, meta, state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (view_name, topic, kafka_partition) DO NOTHING"
                        " RETURNING kafka_partition",
                        (*where, part.next_offset, meta, None if appending else part.state, now),
                    )
                elif appending:
                    rows = self._db.run(
                        "UPDATE {stream_partitions} SET next_offset = ?, meta = ?, updated_at = ?"
                        " WHERE view_name = ? AND topic = ? AND kafka_partition = ?"
                        " AND next_offset = ? RETURNING kafka_partition",
                        (part.next_offset, meta, now, *where, expected),
                    )
                else:
                    rows = self._db.run(
                        "UPDATE {stream_partitions} SET next_offset = ?, meta = ?, state = ?,"
                        " updated_at = ? WHERE view_name = ? AND topic = ?"
                        " AND kafka_partition = ? AND next_offset = ? RETURNING kafka_partition",
                        (part.next_offset, meta, part.state, now, *where, expected),
                    )
                if not rows:
                    raise StaleCheckpoint(
                        f"view {view!r}: partition {part.partition} of topic {topic!r} was"
                        " committed by another worker",
                        fix="nothing to do: the partition's new owner continues from its commit",
                    )
                self._save_pieces(part, where)

    def _save_pieces(self, part: StreamPartition, where: tuple[str, str, int]) -> None:
        """The pieces side of :meth:`commit_stream` (inside its transaction)."""
        match = " WHERE view_name = ? AND topic = ? AND kafka_partition = ?"
        if part.piece is None:  # a new base: the pieces are in it
            self._db.run("DELETE FROM {stream_state_pieces}" + match, where)
            return
        if part.piece:  # b"": nothing new to append
            self._db.run(
                "INSERT INTO {stream_state_pieces} (view_name, topic, kafka_partition,"
                " next_offset, window_end, state) VALUES (?, ?, ?, ?, ?, ?)",
                (*where, part.next_offset, part.piece_end, part.piece),
            )
        if part.prune_through is not None:
            self._db.run(
                "DELETE FROM {stream_state_pieces}" + match + " AND window_end <= ?",
                (*where, part.prune_through),
            )

    def reset_stream(self, view: str) -> int:
        """Forget the streaming progress and window state of ``view``; return the partitions
        forgotten."""
        with self._lock, self._db.transaction():
            rows = self._db.run(
                "DELETE FROM {stream_partitions} WHERE view_name = ? RETURNING kafka_partition",
                (view,),
            )
            self._db.run("DELETE FROM {stream_state_pieces} WHERE view_name = ?", (view,))
        return len(rows)

    # -------------------------------------------------------------- counter
    def next_seq(self) -> int:
        """The next value of the registry-wide counter; concurrent callers get distinct values."""
        with self._lock, self._db.transaction():
            rows = self._db.run(
                "INSERT INTO {counters} AS c (name, value) VALUES ('seq', 1)"
                " ON CONFLICT (name) DO UPDATE SET value = c.value + 1 RETURNING value"
            )
        return int(rows[0][0])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()


def _now() -> datetime:
    return datetime.now(UTC)


__all__ = [
    "FINAL_STATUSES",
    "RUN_KINDS",
    "SCHEMA_VERSION",
    "STATUSES",
    "Registry",
]
