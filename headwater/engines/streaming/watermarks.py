"""Event-time progress of a streaming worker: the watermark, idle partitions and caught-up.

For each partition it owns, a worker knows the newest event time seen and when an event last
arrived. The rules, in one place:

* **watermark** = min over the owned partitions that delivered events of (newest event time)
  - allowed lateness; a partition that delivered nothing for ``idle_timeout`` stops holding it
  back, and when every such partition is idle the stream is quiet: the newest event time of any
  of them decides, so windows still close. Running ``--until-caught-up`` there is no idleness
  (a bounded read must not close windows early because a partition is slow to deliver).
* a window closes (is emitted, then freed) once ``window_end <= watermark``; the partitions whose
  closed-through time moves are *dirty*: their state must be committed again.
* **caught up**: the worker's partitions reached the end offsets seen at start, and the committed
  progress of every other partition of the topic did too — and, for stateful views, the windows
  the slowest partition allows to close are closed there as well.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass
class PartitionProgress:
    """What a worker knows of one partition it owns."""

    expected: int | None
    """The committed next offset (``None``: never committed)."""
    next_offset: int | None
    """The next offset to read (``None``: from the beginning)."""
    max_ts: int | None
    """Newest event time seen, in epoch milliseconds."""
    last_event_at: float
    """When an event last arrived (monotonic seconds)."""
    dirty: bool = False
    """Progress (offset, state or closed-through time) not committed yet."""


def watermark_of(newest: Iterable[int | None], lateness_ms: int) -> int | None:
    """The watermark of partitions whose newest event times are ``newest`` (``None``: no
    event yet, not counted); ``None`` when none has seen an event."""
    known = [ts for ts in newest if ts is not None]
    return min(known) - lateness_ms if known else None


class Watermarks:
    """The owned partitions' progress and the watermark rule.

    Args:
        lateness_ms: the source's allowed lateness.
        idle_s: a partition without events for this long stops holding the watermark back.
        ignore_idle: never treat a partition as idle (bounded runs).
    """

    def __init__(self, lateness_ms: int, idle_s: float, *, ignore_idle: bool = False) -> None:
        self.lateness_ms = lateness_ms
        self.idle_s = idle_s
        self.ignore_idle = ignore_idle
        self.partitions: dict[int, PartitionProgress] = {}

    # ------------------------------------------------------------------ ownership
    def own(self, partition: int, offset: int | None, max_ts: int | None, now: float) -> None:
        """Take ``partition`` from its committed ``offset`` and newest event time."""
        self.partitions[partition] = PartitionProgress(offset, offset, max_ts, now)

    def release(self, partition: int) -> None:
        self.partitions.pop(partition, None)

    def owned(self) -> list[int]:
        return sorted(self.partitions)

    # ------------------------------------------------------------------ progress
    def consumed(self, last_offsets: Mapping[int, int]) -> None:
        """Messages up to ``last_offsets`` (inclusive) of owned partitions were taken."""
        for partition, offset in last_offsets.items():
            part = self.partitions.get(partition)
            if part is not None:
                part.next_offset = offset + 1
                part.dirty = True

    def observe(self, newest: Mapping[int, int], now: float) -> None:
        """Events arrived, the newest of each partition at ``newest[partition]``."""
        for partition, ts in newest.items():
            part = self.partitions.get(partition)
            if part is not None:
                part.max_ts = ts if part.max_ts is None else max(part.max_ts, ts)
                part.last_event_at = now

    def touch_all(self) -> None:
        """Mark every owned partition dirty (its state changed)."""
        for part in self.partitions.values():
            part.dirty = True

    # ------------------------------------------------------------------ the rules
    def watermark(self, now: float) -> int | None:
        """The watermark at ``now`` (see the module docstring); ``None`` before any event."""
        seen = [p for p in self.partitions.values() if p.max_ts is not None]
        if not seen:
            return None
        active = [p.max_ts for p in seen if self.ignore_idle or now - p.last_event_at < self.idle_s]
        if not active:  # every partition is idle: the stream is quiet
            newest = max(p.max_ts for p in seen if p.max_ts is not None)
            return newest - self.lateness_ms
        return watermark_of(active, self.lateness_ms)

    def closing(
        self, now: float, closed: Mapping[int, int | None]
    ) -> tuple[int | None, dict[int, int]]:
        """The watermark, and the closed-through time each partition that saw events moves
        to (``closed``: where they are now); partitions that move become dirty."""
        watermark = self.watermark(now)
        if watermark is None:
            return None, {}
        moving = {p: watermark for p, part in self.partitions.items() if part.max_ts is not None}
        for partition in moving:
            if closed.get(partition) != watermark:
                self.partitions[partition].dirty = True
        return watermark, moving


def caught_up(
    end_offsets: Mapping[int, int],
    owned: Mapping[int, PartitionProgress],
    *,
    position: Callable[[int], int],
    saved: Callable[[list[int]], Mapping[int, Any]],
    lateness_ms: int,
    stateful: bool,
) -> bool:
    """Whether a worker may stop ``--until-caught-up``.

    True once the worker's partitions reached their ``end_offsets`` *and* the committed
    progress of every other partition of the topic did: a partition of a worker that died is
    taken over (after the group notices) rather than left behind. For stateful views a
    partition another member finished may still hold windows its worker's watermark did not
    close (the worker died, or owned slower partitions): it is done only once closed as far as
    the slowest partition of the topic allows.

    Args:
        end_offsets: the topic's end offset per partition when the run started.
        owned: this worker's partitions.
        position: the consumer's position in an owned partition (transaction markers occupy
            offsets that no message reports).
        saved: the committed progress (``next_offset``, ``meta``) of partitions.
        lateness_ms: the allowed lateness.
        stateful: whether the view keeps window state.
    """
    for partition, part in owned.items():
        end = end_offsets.get(partition, 0)
        if end <= 0:
            continue
        if (part.next_offset is None or part.next_offset < end) and position(partition) < end:
            return False
    pending = [p for p, end in end_offsets.items() if end > 0 and p not in owned]
    if not pending:
        return True
    found = saved(pending)
    if not all(p in found and found[p].next_offset >= end_offsets[p] for p in pending):
        return False
    if not stateful:
        return True
    newest = [found[p].meta.get("max_ts") for p in pending]
    newest += [part.max_ts for part in owned.values()]
    watermark = watermark_of(newest, lateness_ms)
    if watermark is None:
        return True
    return all(
        found[p].meta.get("max_ts") is None
        or (found[p].meta.get("closed") is not None and found[p].meta["closed"] >= watermark)
        for p in pending
    )
