"""Checkpoints of a streaming view: each partition's next offset, committed with its window
state in one registry transaction, fenced by the offset the worker expects.

The writes a micro-batch produced are done before its checkpoint commits (the worker waits for
them), and they are idempotent; the commit is atomic and refused when another worker committed
the partition since this one took it (a rebalance moved it). A worker killed anywhere restarts
from the last commit and ends in the state of an uninterrupted run. What the state depends on —
features, window, keys, source columns, cleaning steps — is kept as a fingerprint beside it, so a
changed view is never resumed from a state it cannot read.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.errors import DefinitionError, StaleCheckpoint
from headwater.stores.registry import StreamPartition

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.definitions import FeatureView
    from headwater.engines.streaming.state import WindowState
    from headwater.engines.streaming.watermarks import PartitionProgress
    from headwater.stores.registry import Registry


def fingerprint(view: FeatureView, schema: pa.Schema) -> str:
    """What the saved window state depends on; a different value means the state is unusable."""
    source = view.source
    spec = {
        "features": [a.to_spec() for a in view.aggregations] or view.projections,
        "window": None if view.window is None else view.window.to_spec(),
        "keys": view.join_keys,
        "timestamp": source.timestamp_field,
        "created": source.created_timestamp_field,
        "schema": [(f.name, str(f.type)) for f in schema],
    }
    if view.transforms:  # cleaning steps change the values the state holds
        spec["transforms"] = [step.to_spec() for step in view.transforms]
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def schema_checkpoint(view: str) -> str:
    """The registry checkpoint holding the Arrow schema a view's events were decoded with."""
    return f"stream-schema:{view}"


def save_schema(registry: Registry, view: str, schema: pa.Schema) -> None:
    text = base64.b64encode(schema.serialize().to_pybytes()).decode()
    registry.set_checkpoint(schema_checkpoint(view), text)


def load_schema(registry: Registry, view: str) -> pa.Schema | None:
    import pyarrow as pa

    text = registry.get_checkpoint(schema_checkpoint(view))
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text))) if text else None


@dataclass
class Commit:
    """What a commit did: the partitions saved (with their next offsets), or the partitions
    another worker committed meanwhile (nothing was saved: take them again)."""

    saved: dict[int, int] = field(default_factory=dict)
    refused: list[int] = field(default_factory=list)
    reason: str = ""
    """Why the commit was refused."""


class Checkpoints:
    """The committed progress of one view over one topic.

    Args:
        registry: where progress is kept.
        view: the view's name.
        topic: the topic.
    """

    def __init__(self, registry: Registry, view: str, topic: str) -> None:
        self.registry = registry
        self.view = view
        self.topic = topic

    def load(self, partitions: list[int]) -> dict[int, StreamPartition]:
        """The saved progress of ``partitions`` (absent: never committed)."""
        return self.registry.stream_partitions(self.view, self.topic, partitions)

    def restore(
        self, state: WindowState, partition: int, saved: StreamPartition, expected: str | None
    ) -> None:
        """Load ``partition``'s saved window state into ``state``.

        Raises:
            DefinitionError: the state was saved by a different definition of the view.
        """
        found = saved.meta.get("fingerprint")
        if found is not None and found != expected:
            raise DefinitionError(
                f"view {self.view!r} changed (features, window, keys or source columns) "
                "since its streaming state was saved",
                fix=f"run `headwater stream --reset {self.view}` to start it over from the "
                "beginning of the topic",
            )
        state.restore(partition, saved.state, saved.meta.get("closed"), saved.pieces)

    def commit(
        self,
        partitions: Mapping[int, PartitionProgress],
        state: WindowState | None,
        *,
        fingerprint: str | None,
        run_id: str,
    ) -> Commit:
        """Save every dirty partition's next offset with its window state (pieces appended
        since the last save, or a snapshot), in one transaction, each only if its committed
        offset is still the one this worker expects."""
        from headwater.engines.streaming.state import Checkpoint

        dirty = {
            p: part.next_offset
            for p, part in partitions.items()
            if part.dirty and part.next_offset is not None
        }
        if not dirty:
            return Commit()
        points = state.checkpoints(list(dirty)) if state is not None else {}
        updates: list[tuple[int | None, StreamPartition]] = []
        for partition, next_offset in dirty.items():
            part = partitions[partition]
            closed = state.closed.get(partition) if state is not None else None
            meta: dict[str, Any] = {
                "max_ts": part.max_ts,
                "closed": closed,
                "fingerprint": fingerprint,
                "run_id": run_id,  # which worker committed it last
            }
            point = points.get(partition, Checkpoint(None))
            saved = StreamPartition(
                partition,
                next_offset,
                meta,
                point.state,
                piece=point.piece,
                piece_end=point.piece_end,
                prune_through=closed,
            )
            updates.append((part.expected, saved))
        try:
            self.registry.commit_stream(self.view, self.topic, updates)
        except StaleCheckpoint as exc:
            return Commit(refused=[u.partition for _e, u in updates], reason=exc.message)
        for _expected, saved in updates:
            part = partitions[saved.partition]
            part.expected = saved.next_offset
            part.dirty = False
        if state is not None:
            state.saved([saved.partition for _e, saved in updates])
        return Commit(saved={u.partition: u.next_offset for _e, u in updates})
