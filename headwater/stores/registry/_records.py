"""Records returned by the registry, and the definitions diff."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from headwater.errors import DefinitionError

if TYPE_CHECKING:
    from headwater.stores.registry._versions import VersionChange


@dataclass(frozen=True)
class RunRecord:
    """One pipeline run of a view: ``kind`` is run/backfill/materialize/stream, ``status``
    running/success/failed/interrupted/aborted (its process died without finishing it)."""

    run_id: str
    view: str
    kind: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    rows_in: int
    rows_out: int
    error: str | None
    details: dict[str, Any]

    @property
    def seconds(self) -> float | None:
        """How long the run took; ``None`` while it has not ended."""
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class DefinitionRecord:
    """One version of an applied definition."""

    kind: str
    name: str
    version: int
    spec: dict[str, Any]
    applied_at: datetime


@dataclass(frozen=True)
class ApplyDiff:
    """What applying a set of definitions changes, as ``(kind, name)`` pairs.

    ``changed`` holds ``(kind, name, new_version)``; ``versions`` what happened to the views'
    offline table versions (when the caller passed their rows fingerprints).
    """

    added: list[tuple[str, str]]
    changed: list[tuple[str, str, int]]
    unchanged: list[tuple[str, str]]
    removed: list[tuple[str, str]]
    versions: list[VersionChange] = field(default_factory=list)

    def changes(self) -> bool:
        """Whether applying would write anything."""
        return bool(self.added or self.changed or self.removed)


def canonical(spec: Any) -> str:
    """The canonical JSON text of a spec: sorted keys, no whitespace, no NaN."""
    return json.dumps(
        spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def canonical_specs(specs: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """Validate specs and return ``(kind, name) -> canonical JSON``.

    Raises:
        DefinitionError: A spec lacks ``kind``/``name``, is not JSON-able, or is duplicated.
    """
    wanted: dict[tuple[str, str], str] = {}
    for spec in specs:
        kind, name = (spec.get(key) if isinstance(spec, dict) else None for key in ("kind", "name"))
        if not isinstance(kind, str) or not kind or not isinstance(name, str) or not name:
            raise DefinitionError(
                f"a definition spec needs string 'kind' and 'name', got {spec!r:.200}",
                fix="build specs with the definitions' to_spec()",
            )
        if (kind, name) in wanted:
            raise DefinitionError(f"{kind} {name!r} is defined twice", fix="rename one of them")
        try:
            wanted[(kind, name)] = canonical(spec)
        except (TypeError, ValueError) as exc:
            raise DefinitionError(
                f"the spec of {kind} {name!r} is not JSON-able: {exc}",
                fix="use only str, int, float, bool, None, lists and dicts in specs",
            ) from exc
    return wanted


def diff_specs(
    wanted: dict[tuple[str, str], str], latest: dict[tuple[str, str], tuple[int, str, bool]]
) -> ApplyDiff:
    """Compare wanted specs with the stored ``(kind, name) -> (version, spec, removed)``."""
    added: list[tuple[str, str]] = []
    changed: list[tuple[str, str, int]] = []
    unchanged: list[tuple[str, str]] = []
    for key, text in sorted(wanted.items()):
        current = latest.get(key)
        if current is None or current[2]:
            added.append(key)
        elif canonical(json.loads(current[1])) != text:
            changed.append((*key, current[0] + 1))
        else:
            unchanged.append(key)
    removed = sorted(key for key, (_, _, gone) in latest.items() if not gone and key not in wanted)
    return ApplyDiff(added=added, changed=changed, unchanged=unchanged, removed=removed)


@dataclass(frozen=True)
class StreamPartition:
    """Saved progress of one Kafka partition of a streaming view.

    The window state is saved as a base (a whole snapshot) and pieces appended after it:
    together they hold the state's rows (rows of windows closed since may still be in them;
    the closed-through time in ``meta`` tells which to drop).

    Attributes:
        partition: the partition number.
        next_offset: the first offset not yet reflected in the state and the stores.
        meta: JSON-able details (greatest event time seen, closed-through time, fingerprint).
        state: the base as an Arrow IPC stream (``None``: empty). Written, it replaces the base
            and every piece — unless ``piece`` is given.
        pieces: read: the pieces after the base, oldest first.
        piece: written: a piece to append (the base is then left as it is), with
            ``piece_end``, the greatest window end of its rows.
        prune_through: written: pieces whose every window ended by then are dropped.
    """

    partition: int
    next_offset: int
    meta: dict[str, Any]
    state: bytes | None
    pieces: tuple[bytes, ...] = ()
    piece: bytes | None = None
    piece_end: int | None = None
    prune_through: int | None = None
